// The gang when its supervision itself fails: the supervisor killed outright, a rank's
// watcher killed. Real launches in local mode; ranks print their pids, which the tests
// follow through pidfds, so every wait is for an event, bounded only against a stuck suite.
#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <regex>

#include "common/fd.hpp"
#include "common/process.hpp"
#include "common/text.hpp"

extern char** environ;

namespace cohort {
namespace {

constexpr int kBoundMs = 30'000;  // against a stuck suite, never a measure of speed

struct Launch {
  Process process;
  std::string out, err;
};

Launch start_launch(std::vector<std::string> args) {
  const char* bin = std::getenv("COHORT_BIN");
  args.insert(args.begin(), {bin ? bin : "cohort", "launch"});
  SpawnOptions o;
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  env.emplace_back("SLURM_JOB_ID=");  // local mode, even inside an allocation
  o.environment = env;
  o.out = Stream::pipe();
  o.err = Stream::pipe();
  o.own_process_group = true;
  return {spawn(args, o), {}, {}};
}

// Reads the launch's output until `done` holds of what it printed, or its output ends.
template <typename Done>
void read_until(Launch& l, Done done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kBoundMs);
  while (!done(l.out) && (l.process.out() || l.process.err()) && std::chrono::steady_clock::now() < deadline) {
    std::vector<pollfd> fds;
    for (Fd* fd : {&l.process.out(), &l.process.err()}) {
      if (*fd) fds.push_back({fd->get(), POLLIN, 0});
    }
    ::poll(fds.data(), fds.size(), 1000);
    for (auto [fd, text] : {std::pair{&l.process.out(), &l.out}, std::pair{&l.process.err(), &l.err}}) {
      if (!*fd) continue;
      pollfd p{fd->get(), POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::read(fd->get(), buf, sizeof buf);
      if (n <= 0) fd->reset();
      else text->append(buf, static_cast<size_t>(n));
    }
  }
}

// The pids the ranks printed as "R: pid N" lines, by rank.
std::map<int, pid_t> rank_pids(const std::string& out) {
  std::map<int, pid_t> pids;
  std::regex line(R"((\d+): pid (\d+))");
  for (std::sregex_iterator it(out.begin(), out.end(), line), end; it != end; ++it) {
    pids[std::stoi((*it)[1])] = static_cast<pid_t>(std::stol((*it)[2]));
  }
  return pids;
}

// Whether process `pid` ends within the bound; a pidfd turns readable when it does.
bool ends(pid_t pid) {
  Fd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!fd) return errno == ESRCH;  // already gone
  pollfd p{fd.get(), POLLIN, 0};
  return ::poll(&p, 1, kBoundMs) == 1;
}

pid_t parent_of(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat").value_or("");
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  int ppid = -1;
  std::sscanf(stat.c_str() + close + 2, "%*c %d", &ppid);
  return ppid;
}

TEST(AgentFailure, EveryRankEndsWhenTheSupervisorIsKilled) {
  Launch l = start_launch({"--local", "--nproc", "3", "--", "sh", "-c", "echo pid $$; exec sleep 1000"});
  read_until(l, [](const std::string& out) { return rank_pids(out).size() == 3; });
  const auto pids = rank_pids(l.out);
  ASSERT_EQ(pids.size(), 3u) << l.out << l.err;
  ::kill(l.process.pid(), SIGKILL);  // the supervisor alone: the ranks lead groups of their own
  l.process.wait();
  for (const auto& [rank, pid] : pids) EXPECT_TRUE(ends(pid)) << "rank " << rank << " (pid " << pid << ") outlived its supervisor";
}

TEST(AgentFailure, ARankWhoseWatcherIsKilledFailsTheGangWhichRestarts) {
  Launch l = start_launch({"--local", "--nproc", "2", "--max-restarts", "1", "--", "sh", "-c",
                           "[ $COHORT_RESTART_COUNT = 0 ] || exit 0; echo pid $$; exec sleep 1000"});
  read_until(l, [](const std::string& out) { return rank_pids(out).size() == 2; });
  const auto pids = rank_pids(l.out);
  ASSERT_EQ(pids.size(), 2u) << l.out << l.err;
  const pid_t watcher = parent_of(pids.at(1));
  ASSERT_GT(watcher, 1);
  ::kill(watcher, SIGKILL);
  read_until(l, [](const std::string&) { return false; });  // to the end of its output
  const int status = l.process.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << l.err;
  EXPECT_NE(l.err.find("lost the watcher of rank 1"), std::string::npos) << l.err;
  EXPECT_NE(l.err.find("lost (its node or the network to it failed) first; gang torn down"), std::string::npos) << l.err;
  EXPECT_NE(l.err.find("succeeded: 2 ranks, 1 restart"), std::string::npos) << l.err;
  for (const auto& [rank, pid] : pids) EXPECT_TRUE(ends(pid)) << "rank " << rank << " of the first attempt";
}

}  // namespace
}  // namespace cohort
