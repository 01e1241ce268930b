// checkpoint/hdf5.hpp — HDF5 for checkpoint/ and for serve/'s batch prediction: one lock, its errors
// as cohort::Error, owned handles, the file a save writes, element types and root attributes.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "checkpoint/checkpoint.hpp"
#include "common/error.hpp"

namespace cohort::checkpoint::detail {

namespace fs = std::filesystem;

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

// Root attribute helpers. A reader first checks that the attribute holds one value of the
// expected kind: anything else (an array, another type) is damage, a cohort::Error naming
// the file, the attribute and what was expected.
void write_int_attr(hid_t obj, const char* name, std::int64_t value);
void write_string_attr(hid_t obj, const char* name, const std::string& value);
std::int64_t read_int_attr(hid_t obj, const char* name);
std::string read_string_attr(hid_t obj, const char* name);

}  // namespace cohort::checkpoint::detail
