#include "common/fd.hpp"

#include <fcntl.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <string>
#include <vector>

namespace cohort {

std::optional<std::string> read_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EISDIR) throw input_error(path + " is a directory, not a file");
    if (n < 0) throw Error(system_message("read " + path, errno));
    if (n == 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

void write_all(int fd, std::string_view data, const std::string& what) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(system_message("write " + what, errno));
    done += static_cast<std::size_t>(n);
  }
}

void make_directories(const std::string& path, mode_t mode) {
  std::string partial;
  if (!path.empty() && path[0] == '/') partial = "/";
  size_t start = 0;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    if (slash > start) {
      partial.append(path, start, slash - start);
      partial += '/';
      if (::mkdir(partial.c_str(), mode) != 0 && errno != EEXIST) {
        throw Error(system_message("cannot create directory " + partial, errno));
      }
    }
    start = slash + 1;
  }
}

namespace {

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  if (S_ISSOCK(mode)) return "a socket";
  return "no ordinary file";
}

// The directory that holds `path`'s name.
std::filesystem::path directory_of(const std::filesystem::path& path) {
  const auto parent = path.parent_path();
  return parent.empty() ? std::filesystem::path(".") : parent;
}

}  // namespace

std::string unguessable_name(std::size_t length) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::vector<unsigned char> bytes(length);
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::getrandom(bytes.data() + got, bytes.size() - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(system_message("getrandom", errno));
    got += static_cast<size_t>(n);
  }
  std::string out;
  for (unsigned char b : bytes) out += kAlphabet[b % (sizeof kAlphabet - 1)];
  return out;
}

RegularFile open_regular(const std::filesystem::path& path) {
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer that never comes.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY));
  if (!fd) {
    if (errno == ELOOP) throw Error(path.string() + " is a symbolic link; cohort reads regular files only");
    throw Error(system_message("open " + path.string(), errno));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw Error(system_message("stat " + path.string(), errno));
  if (!S_ISREG(st.st_mode)) {
    throw Error(path.string() + " is not a regular file (it is " + file_kind(st.st_mode) +
                "); cohort reads regular files only");
  }
  return {std::move(fd), static_cast<std::uint64_t>(st.st_size)};
}

namespace {

// What read_text says of a file the user named that it cannot read.
Fd open_user_file(const std::filesystem::path& path, std::uint64_t& size) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd) throw input_error(path.string() + ": cannot read it (does it exist?)");
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw Error(system_message("stat " + path.string(), errno));
  if (S_ISDIR(st.st_mode)) throw input_error(path.string() + " is a directory, not a file");
  if (!S_ISREG(st.st_mode)) throw input_error(path.string() + " is not a regular file");
  size = static_cast<std::uint64_t>(st.st_size);
  return fd;
}

}  // namespace

std::string read_text(const std::filesystem::path& path, const ReadTextOptions& options) {
  std::uint64_t size = 0;
  Fd fd;
  if (options.user_file) {
    fd = open_user_file(path, size);
  } else {
    auto file = open_regular(path);
    fd = std::move(file.fd);
    size = file.size;
  }
  if (size > options.max_bytes) {
    const std::string message = path.string() + " is " + std::to_string(size) + " bytes, more than the " +
                                std::to_string(options.max_bytes) +
                                (options.user_file ? " it may hold" : " cohort reads as text");
    throw options.user_file ? input_error(message) : Error(message);
  }
  std::string out(size, '\0');
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::read(fd.get(), out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(system_message("read " + path.string(), errno));
    if (n == 0) break;  // the file shrank since it was opened
    done += static_cast<std::size_t>(n);
  }
  out.resize(done);
  return out;
}

void fsync_path(const std::filesystem::path& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw Error(system_message("open " + path.string(), errno));
  if (::fsync(fd.get()) != 0) throw Error(system_message("fsync " + path.string(), errno));
}

void rename_durably(const std::filesystem::path& from, const std::filesystem::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    throw Error(system_message("rename " + from.string() + " to " + to.string(), errno));
  }
  fsync_path(directory_of(to));
  if (directory_of(from) != directory_of(to)) fsync_path(directory_of(from));
}

AtomicFile::AtomicFile(std::filesystem::path path) : path_(std::move(path)) {
  // O_EXCL and O_NOFOLLOW: the name is ours alone, never a file or link that was there.
  for (int attempt = 0; !fd_; ++attempt) {
    tmp_ = directory_of(path_) / ("." + path_.filename().string() + ".tmp." + unguessable_name(12));
    fd_ = Fd(::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!fd_ && (errno != EEXIST || attempt == 16)) {
      throw Error(system_message("cannot write " + path_.string(), errno));
    }
  }
}

AtomicFile::~AtomicFile() {
  if (committed_) return;
  fd_.reset();
  ::unlink(tmp_.c_str());
}

void AtomicFile::write(std::string_view data) { write_all(fd_.get(), data, path_.string()); }

void AtomicFile::commit() {
  if (::fsync(fd_.get()) != 0) throw Error(system_message("fsync " + path_.string(), errno));
  fd_.close("close " + path_.string());
  rename_durably(tmp_, path_);
  committed_ = true;
}

void write_file_atomically(const std::filesystem::path& path, std::string_view content) {
  AtomicFile file(path);
  file.write(content);
  file.commit();
}

}  // namespace cohort
