#include "launcher/run_dir.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <sstream>

#include "common/error.hpp"
#include "common/fd.hpp"

namespace cohort::launcher {

std::string read_small_file(const std::string& path) {
  // Status files and /proc entries come and go under the reader (a process that exits
  // between open and read): any failure is "nothing there yet".
  try {
    return read_file(path).value_or("");
  } catch (const Error&) {
    return "";
  }
}

void write_outcome(const std::string& attempt_dir, const RankOutcome& o) {
  std::ostringstream s;
  s << "rank=" << o.rank << "\nhost=" << o.host << "\nexit=" << o.exit_code << "\nsignal=" << o.term_signal
    << "\nhung=" << (o.hung ? 1 : 0) << "\nstopped=" << (o.stopped ? 1 : 0) << "\nended_ns=" << o.ended_ns << "\n";
  if (!o.hang_why.empty()) s << "why=" << o.hang_why << "\n";
  if (!o.stack_file.empty()) s << "stack=" << o.stack_file << "\n";
  write_file_atomically(attempt_dir + "/rank-" + std::to_string(o.rank) + ".status", s.str());
}

std::string stack_file(const std::string& attempt_dir, int rank) {
  return attempt_dir + "/rank-" + std::to_string(rank) + ".stack";
}

void write_placement(const std::string& attempt_dir, const RankPlacementRecord& p) {
  std::ostringstream s;
  s << "rank=" << p.rank << "\nhost=" << p.host << "\ncpus=" << p.cpus << "\ngpus=" << p.gpus << "\nnics=" << p.nics
    << "\nnuma=" << p.numa << "\nstarted_ns=" << p.started_ns << "\n";
  write_file_atomically(attempt_dir + "/rank-" + std::to_string(p.rank) + ".placement", s.str());
}

void write_ending(const std::string& attempt_dir, const std::string& why) {
  write_file_atomically(attempt_dir + "/ended", why + "\n");
}

std::vector<std::pair<std::string, std::string>> key_values(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) out.emplace_back(line.substr(0, eq), line.substr(eq + 1));
  }
  return out;
}

std::vector<RankOutcome> read_outcomes(const std::string& attempt_dir) {
  std::vector<RankOutcome> out;
  DIR* dir = ::opendir(attempt_dir.c_str());
  if (!dir) return out;
  while (dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name.rfind("rank-", 0) != 0 || name.size() < 12 || name.substr(name.size() - 7) != ".status") continue;
    RankOutcome o;
    o.reported = true;
    for (const auto& [key, value] : key_values(read_small_file(attempt_dir + "/" + name))) {
      try {
        if (key == "rank") o.rank = std::stoi(value);
        else if (key == "host") o.host = value;
        else if (key == "exit") o.exit_code = std::stoi(value);
        else if (key == "signal") o.term_signal = std::stoi(value);
        else if (key == "hung") o.hung = value == "1";
        else if (key == "stopped") o.stopped = value == "1";
        else if (key == "ended_ns") o.ended_ns = std::stoll(value);
        else if (key == "why") o.hang_why = value;
        else if (key == "stack") o.stack_file = value;
      } catch (const std::exception&) {
        o.reported = false;  // unreadable: treat as unreported
      }
    }
    if (o.reported) out.push_back(o);
  }
  ::closedir(dir);
  std::sort(out.begin(), out.end(), [](const RankOutcome& a, const RankOutcome& b) { return a.rank < b.rank; });
  return out;
}

int count_started(const std::string& attempt_dir) {
  int n = 0;
  DIR* dir = ::opendir(attempt_dir.c_str());
  if (!dir) return 0;
  while (dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name.rfind("started-", 0) == 0 && name.find(".tmp.") == std::string::npos) ++n;
  }
  ::closedir(dir);
  return n;
}

long long wall_clock_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<long long>(ts.tv_sec) * 1'000'000'000LL + ts.tv_nsec;
}

std::string describe(const RankOutcome& o) {
  if (!o.reported) return "killed in teardown";
  if (o.lost) return "lost (its node or the network to it failed)";
  if (o.hung) return o.stopped ? "hung (stopped)" : "hung (no heartbeat)";
  if (o.term_signal) {
    const char* name = ::sigabbrev_np(o.term_signal);
    return std::string("killed by ") + (name ? std::string("SIG") + name : "signal " + std::to_string(o.term_signal));
  }
  return "exited with " + std::to_string(o.exit_code);
}

bool failed(const RankOutcome& o) { return !o.reported || o.lost || o.hung || o.term_signal != 0 || o.exit_code != 0; }

}  // namespace cohort::launcher
