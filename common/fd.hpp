// common/fd.hpp — one owned file descriptor; reading whole files and writing them durably.
//
//   cohort::Fd fd(::open(path, O_RDONLY | O_CLOEXEC));
//   if (!fd) throw Error(system_message("open " + path, errno));
//   ...                        // closed by the destructor on every path
//   fd.close("close " + path); // where a failed close means lost data (a write-back error)
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/error.hpp"

namespace cohort {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  // A close that fails here has nothing left to report to: callers that wrote through the
  // descriptor call close() first.
  ~Fd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  // Closes now and throws what close(2) reports (NFS and some disks report failed
  // write-back only here).
  void close(const std::string& what) {
    const int fd = std::exchange(fd_, -1);
    if (fd >= 0 && ::close(fd) != 0) throw Error(system_message(what, errno));
  }

 private:
  int fd_ = -1;
};

// The whole content of the file at `path`, or nothing when it cannot be opened (errno then
// says why, for the caller's message). A failure while reading throws, rather than
// handing back part of the file; a directory is an input error.
std::optional<std::string> read_file(const std::string& path);

// Writes all of `data` to `fd`, through short writes and interruptions; throws naming `what`.
void write_all(int fd, std::string_view data, const std::string& what);

// mkdir -p: creates `path` and whichever of its parents are missing with `mode` (less the
// umask), leaving existing ones as they are. Run directories and experiments are private
// (0700) whatever the umask: files in them can then be plainly 0644. Throws cohort::Error.
void make_directories(const std::string& path, mode_t mode);

// `length` letters and digits from the kernel's random source, for names and secrets nobody
// can guess: with a predictable temporary name (the pid), another user could put a symlink
// there first and have a privileged writer overwrite the file it points to. Throws
// cohort::Error when the kernel gives no randomness.
std::string unguessable_name(std::size_t length);

// ---- Files that must be regular ----

// A regular file open for reading, and its size when it was opened.
struct RegularFile {
  Fd fd;
  std::uint64_t size = 0;
};
// Opens `path` for reading when it is a regular file. A symbolic link, a FIFO, a device or a
// directory could lead elsewhere, block for ever or never end: each is refused with a
// cohort::Error naming the path and what it is.
RegularFile open_regular(const std::filesystem::path& path);

inline constexpr std::uint64_t kMaxTextBytes = std::uint64_t{1} << 30;

struct ReadTextOptions {
  std::uint64_t max_bytes = kMaxTextBytes;
  // A file the user named (a spec, a config) may be a symbolic link, and what is wrong with
  // it is theirs to fix: refusals are input errors (exit 2) that say what the path is.
  // Files cohort wrote itself (manifests, state) are never links (see open_regular), and a
  // refusal there is a failure, which a checkpoint's reader takes as damage.
  bool user_file = false;
};

// The whole of the regular file `path`, read no further than the size it had when opened
// (a FIFO is never waited on), of at most options.max_bytes. Throws cohort::Error naming
// the path.
std::string read_text(const std::filesystem::path& path, const ReadTextOptions& options = {});

// ---- Durable writes ----

// fsync(2) of a file or directory by path: a new or renamed name lasts through a crash of
// the machine only once its directory is synced. Throws cohort::Error naming the path.
void fsync_path(const std::filesystem::path& path);

// rename(2), then fsync of the directories that held `from` and hold `to`.
void rename_durably(const std::filesystem::path& from, const std::filesystem::path& to);

// A file that appears at `path` whole or not at all, and survives a crash of the machine
// once commit() returns: written to a temporary file beside `path`, then synced, renamed
// over `path`, and its directory synced, so that a reader sees the old file or the new one
// and never a part. The temporary is hidden, ".NAME.tmp." and a suffix nobody can guess,
// created anew (O_EXCL, O_NOFOLLOW: never a file or link someone left there) with mode 0644
// less the umask; it is removed when the file is dropped uncommitted or commit() fails.
// Failures throw cohort::Error naming `path` and the system's reason.
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Writes all of `data` after what was written before.
  void write(std::string_view data);
  void commit();

 private:
  std::filesystem::path path_;
  std::filesystem::path tmp_;
  Fd fd_;
  bool committed_ = false;
};

// Replaces the file at `path` with `content` through an AtomicFile: once this returns the
// new content is on disk; on failure the old file is left as it was.
void write_file_atomically(const std::filesystem::path& path, std::string_view content);

}  // namespace cohort
