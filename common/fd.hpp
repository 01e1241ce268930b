// common/fd.hpp — one owned file descriptor, and reading and writing whole files through one.
//
//   cohort::Fd fd(::open(path, O_RDONLY | O_CLOEXEC));
//   if (!fd) throw Error(system_message("open " + path, errno));
//   ...                        // closed by the destructor on every path
//   fd.close("close " + path); // where a failed close means lost data (a write-back error)
#pragma once

#include <unistd.h>

#include <cerrno>
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

// Whether a write reaches the disk before it counts as done.
enum class Durability {
  none,   // status files, read while their writer runs and rewritten soon
  fsync,  // journals and results that must survive a crash of the machine
};

// Replaces the file at `path` with `content` in one step: written to a temporary file
// beside it, then renamed over it, so that a reader sees the old file or the new one and
// never a part. The temporary file has a name nobody can guess and is created anew (never
// through a link someone left there), with mode 0644 less the umask; it is removed when
// anything fails. With Durability::fsync the file and then its directory are synced, so
// that the new content survives a crash of the machine once this returns.
void write_file_atomically(const std::string& path, std::string_view content,
                           Durability durability = Durability::none);

}  // namespace cohort
