// checkpoint/layout.hpp — private to checkpoint/: a checkpoint directory's names (step
// directories, `latest`, hidden leftovers) and the file operations on them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cohort::checkpoint::detail {

namespace fs = std::filesystem;

inline constexpr std::string_view kStateFile = "state.h5";
inline constexpr std::string_view kManifestFile = "manifest.json";
inline constexpr std::string_view kLatestFile = "latest";

std::string step_dir_name(std::int64_t step);  // "step-00000040"
std::string rank_file_name(int rank);          // "rank-00003.h5"
bool is_rank_file_name(std::string_view name);
std::optional<std::int64_t> parse_step_dir_name(std::string_view name);
std::vector<std::int64_t> committed_steps(const fs::path& dir);  // ascending
std::optional<std::int64_t> read_latest(const fs::path& dir);

// A fresh suffix for hidden temporary names.
std::string nonce();
std::string utc_now();

// Asks the kernel to start reading byte ranges of a file ahead of HDF5's own reads, so
// that storage sees a whole tensor's worth of requests at once rather than one block at a
// time. Advice only: failures are ignored, reads stay correct without it.
class ReadAhead {
 public:
  explicit ReadAhead(const fs::path& path);
  ~ReadAhead();
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;
  void advise(std::uint64_t offset, std::uint64_t size) const noexcept;

 private:
  int fd_ = -1;
};

// The size of a checkpoint's file, which must be a regular file (common/fd.hpp's
// open_regular): one that is a symbolic link, a FIFO, a device or a directory could lead
// outside the checkpoint, block for ever or never end, and is refused as damage.
std::uint64_t regular_file_size(const fs::path& path);
// Swaps the entries `a` and `b` in one step (renameat2 with RENAME_EXCHANGE), then fsyncs
// their directory. Returns false, having changed nothing, where the file system cannot
// exchange (NFS and some parallel file systems).
bool exchange_durably(const fs::path& a, const fs::path& b);
// Points DIR/latest at `step`, durably and atomically (common/fd.hpp's AtomicFile).
void write_latest(const fs::path& dir, std::int64_t step);
// Removes hidden leftovers of interrupted saves and prunes. Errors are returned as text.
std::vector<std::string> remove_leftovers(const fs::path& dir);

}  // namespace cohort::checkpoint::detail
