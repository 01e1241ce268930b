// checkpoint/internal.hpp — private to checkpoint/: HDF5 handles, the rank group, the
// directory layout and the manifest codec.
#pragma once

#include <hdf5.h>
#include <mpi.h>

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "checkpoint/checkpoint.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"

namespace cohort::checkpoint::detail {

namespace fs = std::filesystem;

inline constexpr int kFormatVersion = 1;
inline constexpr std::string_view kStateFile = "state.h5";
inline constexpr std::string_view kManifestFile = "manifest.json";
inline constexpr std::string_view kLatestFile = "latest";

// ---- HDF5 ----

// HDF5 (a parallel build) is not thread-safe; every cohort call into it holds this lock.
// While held, HDF5's own printing of error stacks is off: errors come back as
// cohort::Error carrying HDF5's innermost message.
class H5Lock {
 public:
  H5Lock();
  ~H5Lock();
  H5Lock(const H5Lock&) = delete;
  H5Lock& operator=(const H5Lock&) = delete;

 private:
  std::unique_lock<std::recursive_mutex> lock_;
  H5E_auto2_t old_func_ = nullptr;
  void* old_data_ = nullptr;
};

// HDF5's error stack as one line: "H5Fopen: unable to open file: truncated file: eof = …".
std::string h5_error_text();

// Returns `id` or throws cohort::Error "<what>: <HDF5's message>".
hid_t h5id(hid_t id, const std::string& what);
void h5ok(herr_t rc, const std::string& what);

// Owns one hid_t. close() reports failure; the destructor logs it instead of throwing.
class H5Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Handle() = default;
  H5Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  H5Handle(H5Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), closer_(o.closer_) {}
  H5Handle& operator=(H5Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
      closer_ = o.closer_;
    }
    return *this;
  }
  ~H5Handle() { reset(); }
  hid_t get() const { return id_; }
  // Hands the id over to the caller, who closes it (or keeps it for the process's life).
  hid_t release() { return std::exchange(id_, H5I_INVALID_HID); }
  void close(const std::string& what);
  void reset() noexcept;

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

// A state.h5 being written, created with `fapl` (H5F_ACC_EXCL). HDF5 1.10 leaves a file
// whose close failed half torn down, and crashes closing it again at exit; a close fails
// when the disk has no room left for the metadata it flushes. So a file given up (the
// destructor, before close()) is first truncated to nothing, which frees room for that
// flush, and close() of a file this process writes alone checks for the room first,
// throwing ENOSPC while the file can still be given up. `alone`: not shared with other
// ranks through MPI-IO.
class WriteFile {
 public:
  WriteFile(fs::path path, hid_t fapl, bool alone);
  ~WriteFile();
  WriteFile(const WriteFile&) = delete;
  WriteFile& operator=(const WriteFile&) = delete;
  hid_t get() const { return file_.get(); }
  void close();

 private:
  fs::path path_;
  bool alone_;
  H5Handle file_;
};

H5Handle h5_file(hid_t id, const std::string& what);
H5Handle h5_plist(hid_t id, const std::string& what);
H5Handle h5_space(hid_t id, const std::string& what);
H5Handle h5_dataset(hid_t id, const std::string& what);
H5Handle h5_attr(hid_t id, const std::string& what);
H5Handle h5_group(hid_t id, const std::string& what);
H5Handle h5_type(hid_t id, const std::string& what);

// The file type a dtype is stored as (little-endian IEEE/two's complement; bool8 as uint8)
// and its in-memory twin. float16 is built from IEEE single the way h5py and NumPy read it.
hid_t file_type(DType dtype);
hid_t memory_type(DType dtype);
// The dtype a stored dataset type matches, for checks against the manifest.
std::optional<DType> dtype_of(hid_t type);

// Whether an open checkpoint file has a dataset /tensors/<name>.
bool has_tensor(hid_t file, const std::string& name);

// A tensor's dataset in an open checkpoint file, and its dataspace, once its shape and type
// are checked against the manifest's `info`, and its storage: reached through hard links,
// kept in the file itself (no external file, no virtual dataset; deflate, shuffle and
// fletcher32 the only filters), and no larger than that storage can hold. An Error naming
// the tensor otherwise.
struct TensorDataset {
  H5Handle dataset;
  H5Handle space;
};
TensorDataset open_tensor(hid_t file, const TensorInfo& info);

// A checkpoint's state.h5 open for reading tensor after tensor: opening the file once
// rather than per tensor matters when there are many (export).
class StateReader {
 public:
  explicit StateReader(const fs::path& checkpoint);
  // Reads `tensor` whole into `out` (resized), checking its checksum.
  void read(const TensorInfo& tensor, std::vector<std::byte>& out);

 private:
  fs::path checkpoint_;
  H5Lock lock_;
  H5Handle file_;
};

// Root attribute helpers. A reader first checks that the attribute holds one value of the
// expected kind: anything else (an array, another type) is damage, a cohort::Error naming
// the file, the attribute and what was expected.
void write_int_attr(hid_t obj, const char* name, std::int64_t value);
void write_string_attr(hid_t obj, const char* name, const std::string& value);
std::int64_t read_int_attr(hid_t obj, const char* name);
std::string read_string_attr(hid_t obj, const char* name);

// ---- The ranks ----

// The ranks of a checkpointer: a duplicate of the caller's communicator, or one process
// when MPI is not initialised.
class Group {
 public:
  explicit Group(MPI_Comm comm);
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool mpi() const { return mpi_; }
  MPI_Comm comm() const { return comm_; }

  template <typename T>
  std::vector<T> allgather(const T& value) const {
    static_assert(std::is_trivially_copyable_v<T>);
    std::vector<T> out(static_cast<size_t>(size_));
    if (!mpi_) {
      out[0] = value;
      return out;
    }
    MPI_Allgather(&value, sizeof(T), MPI_BYTE, out.data(), sizeof(T), MPI_BYTE, comm_);
    return out;
  }
  std::string broadcast(std::string text, int root = 0) const;
  void barrier() const;

  // Every rank reports how its part of a step went; when any failed, every rank throws the
  // error of the lowest failing rank (its kind, and its message prefixed with the rank when
  // there are several), so that no rank goes on into a collective call alone.
  void agree(const std::optional<Error>& mine) const;

  // Runs `body` and agrees on its outcome.
  template <typename F>
  void together(F&& body) const {
    std::optional<Error> failure;
    try {
      body();
    } catch (const Error& e) {
      failure = e;
    } catch (const std::exception& e) {
      failure = Error(e.what());
    }
    agree(failure);
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  bool mpi_ = false;
};

// ---- Directory layout ----

std::string step_dir_name(std::int64_t step);  // "step-00000040"
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

// ---- Manifest ----

json::Value metadata_to_json(const Metadata& m);
Metadata metadata_from_json(const json::Value& v);
json::Value manifest_to_json(const Manifest& m);
// Throws cohort::Error naming `source` and the field when the document is malformed.
Manifest manifest_from_json(const json::Value& v, const std::string& source);

// ---- Retention ----

// The steps `retention` removes from `steps` (ascending), never `protect`.
std::vector<std::int64_t> steps_to_prune(const std::vector<std::int64_t>& steps,
                                         const Retention& retention,
                                         std::optional<std::int64_t> protect);
// Removes `steps` from `dir` crash-safely (hidden rename, then delete). Keeps going past a
// failure; failures are returned as text.
std::vector<std::string> remove_steps(const fs::path& dir, const std::vector<std::int64_t>& steps,
                                      std::vector<std::int64_t>& removed);

std::uint64_t element_count(const std::vector<std::uint64_t>& shape);
std::string shape_text(const std::vector<std::uint64_t>& shape);  // "[8, 4]"
void check_tensor_name(const std::string& name);                   // throws input_error

}  // namespace cohort::checkpoint::detail
