#include "launcher/node_local.hpp"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <filesystem>

#include "common/environment.hpp"
#include "common/error.hpp"

namespace cohort::launcher {
namespace {

bool is_directory(const std::string& path) {
  struct stat st {};
  return !path.empty() && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string clean_tag(const std::string& tag) {
  std::string clean = tag;
  for (char& c : clean) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
  }
  return clean;
}

std::string make_private_dir(const std::string& tag, NodeLocalDir::Naming naming) {
  const std::string base = node_local_base();
  if (naming == NodeLocalDir::Naming::exact) {
    const std::string path = node_local_path(tag);
    if (::mkdir(path.c_str(), 0700) != 0) {
      throw Error(system_message("launch: cannot make the node-local folder " + path, errno) +
                  (errno == EEXIST ? ": another launch's? remove it" : "; set TMPDIR to a writable node-local directory"));
    }
    return path;
  }
  std::string templ = base + "/cohort-" + clean_tag(tag) + ".XXXXXX";
  // mkdtemp makes it 0700: the heartbeat is this rank's alone to touch.
  if (!::mkdtemp(templ.data())) {
    throw Error(system_message("launch: cannot make a node-local folder in " + base, errno) +
                "; set TMPDIR to a writable node-local directory");
  }
  return templ;
}

}  // namespace

std::string node_local_base() {
  const std::string tmpdir = env_or("TMPDIR");
  if (is_directory(tmpdir)) return tmpdir;
  if (is_directory("/dev/shm")) return "/dev/shm";
  return "/tmp";
}

std::string node_local_path(const std::string& tag) { return node_local_base() + "/cohort-" + clean_tag(tag); }

std::string step_tag(const std::string& job, const std::string& step) { return "job" + job + "." + step; }

void remove_earlier_steps(const std::string& job, const std::string& step) {
  if (job.empty()) return;
  const std::string of_job = "cohort-" + step_tag(job, ""), own = "cohort-" + step_tag(job, step) + "-";
  std::error_code ec;
  for (std::filesystem::directory_iterator it(node_local_base(), ec), end; !ec && it != end; it.increment(ec)) {
    const auto& entry = *it;
    const std::string name = entry.path().filename().string();
    if (name.rfind(of_job, 0) != 0 || name.rfind(own, 0) == 0) continue;
    struct stat st {};
    if (::lstat(entry.path().c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) continue;
    std::filesystem::remove_all(entry.path(), ec);
  }
}

NodeLocalDir::NodeLocalDir(const std::string& tag, Naming naming)
    : path_(make_private_dir(tag, naming)), removal_(path_) {}

}  // namespace cohort::launcher
