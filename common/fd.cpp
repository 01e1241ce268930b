#include "common/fd.hpp"

#include <fcntl.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>

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

// A temporary name nobody can guess: with a predictable one (the pid), another user could
// put a symlink there first and have a privileged writer overwrite the file it points to.
std::string unguessable_suffix() {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  unsigned char bytes[12];
  size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(system_message("getrandom", errno));
    got += static_cast<size_t>(n);
  }
  std::string out;
  for (unsigned char b : bytes) out += kAlphabet[b % (sizeof kAlphabet - 1)];
  return out;
}

std::string directory_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

void write_file_atomically(const std::string& path, std::string_view content, Durability durability) {
  std::string tmp;
  Fd fd;
  // O_EXCL and O_NOFOLLOW: the name is ours alone, never a file or link that was there.
  for (int attempt = 0; !fd; ++attempt) {
    tmp = path + ".tmp." + unguessable_suffix();
    fd = Fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!fd && (errno != EEXIST || attempt == 16)) throw Error(system_message("cannot write " + tmp, errno));
  }
  try {
    write_all(fd.get(), content, tmp);
    if (durability == Durability::fsync && ::fsync(fd.get()) != 0) throw Error(system_message("fsync " + tmp, errno));
    fd.close("close " + tmp);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      throw Error(system_message("cannot rename " + tmp + " to " + path, errno));
    }
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  if (durability == Durability::fsync) {
    // The rename is only durable once the directory that holds the name is.
    const std::string dir = directory_of(path);
    Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!d) throw Error(system_message("open " + dir, errno));
    if (::fsync(d.get()) != 0) throw Error(system_message("fsync " + dir, errno));
  }
}

}  // namespace cohort
