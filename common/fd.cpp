#include "common/fd.hpp"

#include <fcntl.h>
#include <stdio.h>

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

void write_file_atomically(const std::string& path, std::string_view content, Durability durability) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) throw Error(system_message("cannot write " + tmp, errno));
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
}

}  // namespace cohort
