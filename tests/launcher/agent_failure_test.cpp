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
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <sys/stat.h>
#include <regex>

#include "common/fd.hpp"
#include "common/process.hpp"
#include "common/text.hpp"
#include "launcher/agent_link.hpp"
#include "launcher/node_local.hpp"
#include "tests/launcher/serve_hub.hpp"

extern char** environ;

namespace cohort {
namespace {

constexpr int kBoundMs = 30'000;  // against a stuck suite, never a measure of speed

struct Launch {
  Process process;
  std::string out, err;
};

// `tmpdir`, when given, is the launch's TMPDIR: where its node-local folders go.
Launch start_launch(std::vector<std::string> args, const std::string& tmpdir = "") {
  const char* bin = std::getenv("COHORT_BIN");
  args.insert(args.begin(), {bin ? bin : "cohort", "launch"});
  SpawnOptions o;
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  env.emplace_back("SLURM_JOB_ID=");  // local mode, even inside an allocation
  if (!tmpdir.empty()) env.push_back("TMPDIR=" + tmpdir);
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

// What is left in `dir`, by name.
std::set<std::string> left_in(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) names.insert(entry.path().filename().string());
  return names;
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
  launcher::NodeLocalDir tmp("test-tmp");
  // Its run directory too: a supervisor killed outright leaves the one it made for itself.
  Launch l = start_launch({"--local", "--nproc", "3", "--run-dir", tmp.path() + "/run", "--", "sh", "-c",
                           "echo pid $$; exec sleep 1000"},
                          tmp.path());
  read_until(l, [](const std::string& out) { return rank_pids(out).size() == 3; });
  const auto pids = rank_pids(l.out);
  ASSERT_EQ(pids.size(), 3u) << l.out << l.err;
  ::kill(l.process.pid(), SIGKILL);  // the supervisor alone: the ranks lead groups of their own
  l.process.wait();
  for (const auto& [rank, pid] : pids) EXPECT_TRUE(ends(pid)) << "rank " << rank << " (pid " << pid << ") outlived its supervisor";

  // The killed launch's node-local folder is left; the next launch on the node removes it.
  EXPECT_EQ(left_in(tmp.path()).size(), 2u) << "the run directory and the launch's node-local folder";
  Launch next = start_launch({"--local", "--nproc", "1", "--run-dir", tmp.path() + "/run2", "--", "true"}, tmp.path());
  read_until(next, [](const std::string&) { return false; });
  EXPECT_EQ(next.process.wait(), 0) << next.err;
  EXPECT_EQ(left_in(tmp.path()), (std::set<std::string>{"run", "run2"}));
}

TEST(AgentFailure, ARankWhoseWatcherIsKilledFailsTheGangWhichRestarts) {
  launcher::NodeLocalDir tmp("test-tmp");
  Launch l = start_launch({"--local", "--nproc", "2", "--max-restarts", "1", "--", "sh", "-c",
                           "[ $COHORT_RESTART_COUNT = 0 ] || exit 0; echo pid $$; exec sleep 1000"},
                          tmp.path());
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
  EXPECT_EQ(left_in(tmp.path()), std::set<std::string>{}) << "the killed watcher's heartbeat folder goes with the launch";
}

// One node of a Slurm step, as its wrappers see it, reporting to a hub in this test: the
// task variables srun would give, a run directory and a node-local TMPDIR of its own.
struct FakeStep {
  launcher::EventHub hub{true};
  launcher::NodeLocalDir tmp{"test-step"};
  std::string job = std::to_string(900000000 + ::getpid());
  std::vector<Launch> wrappers;

  void start(int tasks, const std::string& script) {
    ::mkdir((tmp.path() + "/run").c_str(), 0700);
    for (int i = 0; i < tasks; ++i) {
      const char* bin = std::getenv("COHORT_BIN");
      SpawnOptions o;
      std::vector<std::string> env;
      for (char** e = environ; *e; ++e) env.emplace_back(*e);
      for (std::string v : {"COHORT_LAUNCH_RUN_DIR=" + tmp.path() + "/run", std::string("COHORT_LAUNCH_MODE=slurm"),
                            "COHORT_LAUNCH_AGENT=127.0.0.1:" + std::to_string(hub.port()),
                            "COHORT_LAUNCH_SECRET=" + hub.secret(), std::string("COHORT_LAUNCH_NODE_AGENT=1"),
                            std::string("COHORT_LAUNCH_HEARTBEAT_TIMEOUT=0"), std::string("COHORT_MASTER_ADDR=127.0.0.1"),
                            "SLURM_JOB_ID=" + job, std::string("SLURM_STEP_ID=0"), "SLURM_PROCID=" + std::to_string(i),
                            "SLURM_LOCALID=" + std::to_string(i), std::string("SLURM_NODEID=0"),
                            "SLURM_STEP_NUM_TASKS=" + std::to_string(tasks),
                            "SLURM_STEP_TASKS_PER_NODE=" + std::to_string(tasks), "TMPDIR=" + tmp.path()}) {
        env.push_back(v);
      }
      o.environment = env;
      o.out = Stream::pipe();
      o.err = Stream::pipe();
      o.own_process_group = true;
      wrappers.push_back({spawn({bin ? bin : "cohort", "launch", "--as-rank", "--", "sh", "-c", script}, o), {}, {}});
    }
  }

  std::vector<launcher::RankEvent> serve(const std::function<bool(const std::vector<launcher::RankEvent>&)>& done) {
    return launcher::testing::serve_until(hub, done, std::chrono::milliseconds(kBoundMs));
  }

  ~FakeStep() {
    for (auto& w : wrappers) ::kill(-w.process.pid(), SIGKILL);
    for (auto& w : wrappers) w.process.wait();
  }
};

std::size_t started(const std::vector<launcher::RankEvent>& events) {
  return static_cast<std::size_t>(std::count_if(events.begin(), events.end(), [](const launcher::RankEvent& e) {
    return e.kind == launcher::RankEvent::Kind::started;
  }));
}

TEST(AgentFailure, ANodesRanksReachTheSupervisorOverOneConnection) {
  FakeStep step;
  step.start(3, "exec sleep 1000");
  const auto events = step.serve([](const auto& e) { return started(e) >= 3; });
  EXPECT_EQ(started(events), 3u);
  EXPECT_EQ(step.hub.connections(), 1) << "the node's agent carries its 3 ranks";
}

TEST(AgentFailure, KillingANodesAgentEndsItsOtherRanksAndLosesTheNodesRanks) {
  FakeStep step;
  step.start(3, "echo pid $$; exec sleep 1000");
  step.serve([](const auto& e) { return started(e) >= 3; });
  ASSERT_EQ(step.hub.connections(), 1);
  std::map<int, pid_t> programs;
  for (int i = 0; i < 3; ++i) {
    read_until(step.wrappers[static_cast<size_t>(i)], [](const std::string& out) { return !rank_pids("0: " + out).empty(); });
    const auto pids = rank_pids("0: " + step.wrappers[static_cast<size_t>(i)].out);
    ASSERT_EQ(pids.size(), 1u) << step.wrappers[static_cast<size_t>(i)].err;
    programs[i] = pids.begin()->second;
  }
  ::kill(step.wrappers[0].process.pid(), SIGKILL);  // the agent, local rank 0, alone
  const auto events = step.serve([](const auto& e) { return e.size() >= 3; });
  std::set<int> lost;
  for (const auto& e : events) {
    if (e.outcome.lost) lost.insert(e.outcome.rank);
  }
  EXPECT_EQ(lost, (std::set<int>{0, 1, 2})) << "the node's connection carried all three";
  for (int i : {1, 2}) {
    EXPECT_TRUE(ends(programs[i])) << "rank " << i << " outlived its node's agent";
    const int status = step.wrappers[static_cast<size_t>(i)].process.wait();
    EXPECT_TRUE(WIFEXITED(status) || WIFSIGNALED(status));
  }
}

}  // namespace
}  // namespace cohort
