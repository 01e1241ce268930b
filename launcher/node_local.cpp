#include "launcher/node_local.hpp"

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <filesystem>
#include <vector>

#include "common/environment.hpp"
#include "common/error.hpp"
#include "common/text.hpp"

namespace cohort::launcher {
namespace {

constexpr long long kMaxPid = 4194304;  // the kernel's PID_MAX_LIMIT

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

// <base>/cohort-<tag>, every node-local folder's name before any random suffix.
std::string folder_in(const std::string& base, const std::string& tag) { return base + "/cohort-" + clean_tag(tag); }

// Room an exact folder leaves in its path for the Unix socket it holds ("/agent.sock" and
// the terminating nul, with some to spare).
constexpr std::size_t kSocketNameRoom = 16;

// Where an exact folder goes: node_local_base(), unless a Unix socket in it would not fit
// in sockaddr_un (a long TMPDIR), then /dev/shm. The node's wrappers all decide the same,
// from the same TMPDIR and tag.
std::string exact_base(const std::string& tag) {
  const std::string base = node_local_base();
  if (folder_in(base, tag).size() + kSocketNameRoom <= sizeof(sockaddr_un{}.sun_path) || !is_directory("/dev/shm")) {
    return base;
  }
  return "/dev/shm";
}

std::string make_private_dir(const std::string& base, const std::string& tag, NodeLocalDir::Naming naming) {
  if (naming == NodeLocalDir::Naming::exact) {
    const std::string path = folder_in(exact_base(tag), tag);
    if (::mkdir(path.c_str(), 0700) != 0) {
      throw Error(system_message("launch: cannot make the node-local folder " + path, errno) +
                  (errno == EEXIST ? ": another launch's? remove it" : "; set TMPDIR to a writable node-local directory"));
    }
    return path;
  }
  std::string templ = folder_in(base, tag) + ".XXXXXX";
  // mkdtemp makes it 0700: the heartbeat is this rank's alone to touch.
  if (!::mkdtemp(templ.data())) {
    throw Error(system_message("launch: cannot make a node-local folder in " + base, errno) +
                "; set TMPDIR to a writable node-local directory");
  }
  return templ;
}

// "local-<pid namespace>-": whose pids a local launch's folder name holds. A process in
// another pid namespace sharing this storage is not looked up in ours.
std::string local_launch_prefix() {
  char link[64] = {};
  const ssize_t n = ::readlink("/proc/self/ns/pid", link, sizeof link - 1);
  std::string ns;
  for (ssize_t i = 0; i < n; ++i) {
    if (std::isdigit(static_cast<unsigned char>(link[i]))) ns += link[i];
  }
  return "local-" + (ns.empty() ? std::string("0") : ns) + "-";
}

// Removes this user's folders (not links) whose names `doomed` picks, in node_local_base()
// and in /dev/shm, where exact folders go under a long TMPDIR.
template <typename Pick>
void remove_own_folders(const Pick& doomed) {
  std::vector<std::string> bases{node_local_base()};
  if (bases[0] != "/dev/shm" && is_directory("/dev/shm")) bases.push_back("/dev/shm");
  for (const auto& base : bases) {
    std::error_code ec;
    for (std::filesystem::directory_iterator it(base, ec), end; !ec && it != end; it.increment(ec)) {
      const auto& entry = *it;
      if (!doomed(entry.path().filename().string())) continue;
      struct stat st {};
      if (::lstat(entry.path().c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) continue;
      std::error_code removal;
      std::filesystem::remove_all(entry.path(), removal);
    }
  }
}

}  // namespace

std::string node_local_base() {
  const std::string tmpdir = env_or("TMPDIR");
  if (is_directory(tmpdir)) return tmpdir;
  if (is_directory("/dev/shm")) return "/dev/shm";
  return "/tmp";
}

std::string node_local_path(const std::string& tag) { return folder_in(exact_base(tag), tag); }

std::string step_tag(const std::string& job, const std::string& step) { return "job" + job + "." + step; }

void remove_earlier_steps(const std::string& job, const std::string& step) {
  if (job.empty()) return;
  const std::string of_job = "cohort-" + step_tag(job, ""), own = "cohort-" + step_tag(job, step) + "-";
  remove_own_folders([&](const std::string& name) { return name.rfind(of_job, 0) == 0 && name.rfind(own, 0) != 0; });
}

std::string local_launch_tag() { return local_launch_prefix() + std::to_string(::getpid()); }

void remove_abandoned_local_launches() {
  const std::string prefix = "cohort-" + local_launch_prefix();
  remove_own_folders([&](const std::string& name) {
    if (name.rfind(prefix, 0) != 0) return false;
    const auto dot = name.find('.', prefix.size());
    const auto pid = parse_integer(name.substr(prefix.size(), dot - prefix.size()), 1, kMaxPid);
    // kill(pid, 0) fails with ESRCH only when no process has that pid: a live one (even a
    // reused pid) keeps its folder.
    return dot != std::string::npos && pid && ::kill(static_cast<pid_t>(*pid), 0) != 0 && errno == ESRCH;
  });
}

NodeLocalDir::NodeLocalDir(const std::string& tag, Naming naming)
    : path_(make_private_dir(node_local_base(), tag, naming)), removal_(path_) {}

NodeLocalDir::NodeLocalDir(const std::string& parent, const std::string& tag)
    : path_(make_private_dir(parent, tag, Naming::unique)), removal_(path_) {}

}  // namespace cohort::launcher
