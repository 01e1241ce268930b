#include "common/process.hpp"

#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <type_traits>

#include "common/error.hpp"
#include "tests/common/temp_dir.hpp"

namespace cohort {
namespace {

TEST(RunProcess, CollectsStdoutStderrAndExitStatus) {
  auto r = run_process({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  EXPECT_FALSE(r.ok());
}

TEST(RunProcess, PassesInputAndExtraEnvironment) {
  RunOptions options;
  options.env = {"COHORT_PROBE=seen"};
  options.input = "from stdin\n";
  auto r = run_process({"sh", "-c", "cat; printf %s \"$COHORT_PROBE\""}, options);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.out, "from stdin\nseen");
}

TEST(RunProcess, LargeOutputOnBothStreamsDoesNotDeadlock) {
  // More than a pipe buffer on each stream at once.
  auto r = run_process({"sh", "-c", "head -c 300000 /dev/zero; head -c 300000 /dev/zero >&2"});
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.out.size(), 300000u);
  EXPECT_EQ(r.err.size(), 300000u);
}

TEST(RunProcess, ReportsTheSignalThatKilledTheChild) {
  auto r = run_process({"sh", "-c", "kill -TERM $$"});
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_EQ(r.term_signal, SIGTERM);
}

TEST(RunProcess, TimeoutKillsTheChild) {
  // exec: the program that outlives the timeout is the child itself, not a grandchild.
  RunOptions options;
  options.timeout = std::chrono::milliseconds(200);
  auto r = run_process({"sh", "-c", "exec sleep 60"}, options);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.term_signal, SIGKILL);
}

TEST(RunProcess, MissingProgramIsAnErrorNamingIt) {
  try {
    run_process({"cohort-no-such-program"});
    FAIL() << "expected cohort::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cohort-no-such-program"), std::string::npos);
  }
}

using ::cohort::testing::TempDir;

// Descriptors this process holds, counted before and after: what spawn opens, it closes.
int open_fds() {
  int n = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return -1;
  while (dirent* e = ::readdir(dir)) n += e->d_name[0] != '.';
  ::closedir(dir);
  return n;
}

std::string read_all(Fd& fd) {
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd.get(), buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// Whether a process that is not ours to reap has ended: gone, or a zombie waiting for init.
bool ended(pid_t pid) {
  for (int i = 0; i < 500; ++i) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), {});
    const auto close = text.rfind(')');
    if (text.empty() || (close != std::string::npos && close + 2 < text.size() && text[close + 2] == 'Z')) return true;
    ::usleep(10'000);
  }
  return false;
}

// Spawn's tests run twice: through posix_spawn, and through fork and exec, which a
// parent-death signal needs; both must start the child alike.
class Spawn : public ::testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(Paths, Spawn, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "ForkAndExec" : "PosixSpawn"; });

SpawnOptions with_parent_death(bool on) {
  SpawnOptions o;
  o.end_with_parent = on;
  return o;
}

SpawnOptions all_pipes(bool end_with_parent) {
  SpawnOptions o = with_parent_death(end_with_parent);
  o.in = Stream::pipe();
  o.out = Stream::pipe();
  o.err = Stream::pipe();
  return o;
}

static_assert(!std::is_copy_constructible_v<Process> && std::is_nothrow_move_constructible_v<Process>,
              "a Process owns its child: moved, never copied");

TEST_P(Spawn, PipesCarryStdinStdoutAndStderr) {
  const int before = open_fds();
  {
    Process p = spawn({"sh", "-c", "read line; echo \"got $line\"; echo oops >&2; exit 4"}, all_pipes(GetParam()));
    write_all(p.in().get(), "hello\n", "stdin");
    p.in().reset();
    EXPECT_EQ(read_all(p.out()), "got hello\n");
    EXPECT_EQ(read_all(p.err()), "oops\n");
    const int status = p.wait();
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 4);
    EXPECT_EQ(p.status(), status);
  }
  EXPECT_EQ(open_fds(), before);
}

TEST_P(Spawn, FilesAreEmptiedOrAppendedToAndStderrCanFollowStdout) {
  TempDir dir("cohort-spawn");
  const auto log = dir / "out.log";
  for (int round = 0; round < 2; ++round) {
    SpawnOptions o;
    o.end_with_parent = GetParam();
    o.out = Stream::file(log.string(), /*append=*/true);
    o.err = Stream::same_as_stdout();
    EXPECT_EQ(WEXITSTATUS(spawn({"sh", "-c", "echo out; echo err >&2"}, o).wait()), 0);
  }
  EXPECT_EQ(slurp(log), "out\nerr\nout\nerr\n");

  SpawnOptions truncate;

  truncate.end_with_parent = GetParam();
  truncate.out = Stream::file(log.string());
  spawn({"echo", "fresh"}, truncate).wait();
  EXPECT_EQ(slurp(log), "fresh\n");

  std::ofstream(dir / "in.txt") << "from a file\n";
  SpawnOptions from_file;
  from_file.end_with_parent = GetParam();
  from_file.in = Stream::file((dir / "in.txt").string());
  from_file.out = Stream::pipe();
  Process cat = spawn({"cat"}, from_file);
  EXPECT_EQ(read_all(cat.out()), "from a file\n");
  cat.wait();
}

TEST_P(Spawn, NullStreamsReadNothingAndSwallowOutput) {
  SpawnOptions o;
  o.end_with_parent = GetParam();
  o.in = Stream::null();
  o.out = Stream::null();
  o.err = Stream::pipe();
  Process p = spawn({"sh", "-c", "cat; echo swallowed; [ -t 0 ] && echo 'stdin is a terminal' >&2; true"}, o);
  EXPECT_EQ(read_all(p.err()), "");
  EXPECT_EQ(WEXITSTATUS(p.wait()), 0);
}

TEST_P(Spawn, TheEnvironmentIsExactlyTheOneGiven) {
  SpawnOptions o;
  o.end_with_parent = GetParam();
  o.environment = std::vector<std::string>{"COHORT_PROBE=one", "PATH=/usr/bin:/bin"};
  o.out = Stream::pipe();
  Process p = spawn({"env"}, o);
  std::string text = read_all(p.out());
  p.wait();
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines, (std::vector<std::string>{"COHORT_PROBE=one", "PATH=/usr/bin:/bin"}));

  ::setenv("COHORT_SPAWN_INHERITED", "yes", 1);
  SpawnOptions inherit;
  inherit.end_with_parent = GetParam();
  inherit.out = Stream::pipe();
  Process q = spawn({"sh", "-c", "printf %s \"$COHORT_SPAWN_INHERITED\""}, inherit);
  EXPECT_EQ(read_all(q.out()), "yes");
  q.wait();
  ::unsetenv("COHORT_SPAWN_INHERITED");
}

TEST_P(Spawn, AnOwnProcessGroupTakesTheChildsChildrenAlong) {
  SpawnOptions o;
  o.end_with_parent = GetParam();
  o.own_process_group = true;
  o.out = Stream::pipe();
  // The child starts a grandchild, says its pid, and waits.
  Process p = spawn({"sh", "-c", "sleep 60 & echo $!; wait"}, o);
  EXPECT_EQ(::getpgid(p.pid()), p.pid());
  std::string line;
  char c;
  while (::read(p.out().get(), &c, 1) == 1 && c != '\n') line += c;
  const pid_t grandchild = std::stoi(line);
  EXPECT_EQ(::getpgid(grandchild), p.pid());
  p.signal_group(SIGTERM);
  const int status = p.wait();
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_TRUE(ended(grandchild));
}

TEST_P(Spawn, WaitAndKillGroupEndsWhatTheChildLeftRunning) {
  SpawnOptions o;
  o.end_with_parent = GetParam();
  o.own_process_group = true;
  o.out = Stream::pipe();
  Process p = spawn({"sh", "-c", "sleep 60 >/dev/null & echo $!"}, o);
  const pid_t grandchild = std::stoi(read_all(p.out()));
  const int status = p.wait_and_kill_group();
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_TRUE(ended(grandchild));
}

TEST_P(Spawn, TheSignalMaskAndDefaultsAreSetForTheChild) {
  sigset_t blocked, previous;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGUSR1);
  ASSERT_EQ(::sigprocmask(SIG_BLOCK, &blocked, &previous), 0);
  struct sigaction ignore {}, old_term {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGTERM, &ignore, &old_term), 0);
  auto masks = [](const SpawnOptions& base) {
    SpawnOptions o = base;
    o.out = Stream::pipe();
    Process p = spawn({"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"}, o);
    std::string text = read_all(p.out());
    p.wait();
    return text;
  };
  auto has = [](const std::string& text, const char* field, int sig) {
    const auto at = text.find(field);
    if (at == std::string::npos) return false;
    const unsigned long long bits = std::stoull(text.substr(at + std::strlen(field)), nullptr, 16);
    return ((bits >> (sig - 1)) & 1) != 0;
  };
  const std::string inherited = masks(with_parent_death(GetParam()));
  SpawnOptions reset;
  reset.end_with_parent = GetParam();
  sigset_t none;
  sigemptyset(&none);
  reset.signal_mask = none;
  reset.default_signals = {SIGTERM};
  const std::string cleared = masks(reset);
  ::sigaction(SIGTERM, &old_term, nullptr);
  ::sigprocmask(SIG_SETMASK, &previous, nullptr);
  EXPECT_TRUE(has(inherited, "SigBlk:", SIGUSR1)) << inherited;
  EXPECT_TRUE(has(inherited, "SigIgn:", SIGTERM)) << inherited;
  EXPECT_FALSE(has(cleared, "SigBlk:", SIGUSR1)) << cleared;
  EXPECT_FALSE(has(cleared, "SigIgn:", SIGTERM)) << cleared;
}

TEST_P(Spawn, AMissingProgramIsAnErrorNamingItAndLeavesNothingOpen) {
  const int before = open_fds();
  try {
    spawn({"cohort-no-such-program", "arg"}, all_pipes(GetParam()));
    FAIL() << "expected cohort::Error";
  } catch (const SpawnError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot run 'cohort-no-such-program'"), std::string::npos) << e.what();
    EXPECT_EQ(e.errnum(), ENOENT);
  }
  EXPECT_EQ(open_fds(), before);
}

TEST_P(Spawn, AFileThatCannotBeOpenedIsAnErrorNamingItAndLeavesNothingOpen) {
  const int before = open_fds();
  SpawnOptions o;
  o.end_with_parent = GetParam();
  o.in = Stream::pipe();
  o.out = Stream::pipe();
  o.err = Stream::file("/nonexistent/cohort/stderr.log");
  try {
    spawn({"true"}, o);
    FAIL() << "expected cohort::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/cohort/stderr.log"), std::string::npos) << e.what();
  }
  EXPECT_EQ(open_fds(), before);
}

TEST_P(Spawn, AProcessDroppedUnreapedIsKilledAndReaped) {
  pid_t pid;
  {
    Process p = spawn({"sleep", "60"}, with_parent_death(GetParam()));
    pid = p.pid();
    Process moved = std::move(p);
    EXPECT_EQ(moved.pid(), pid);
  }
  // Reaped, not a zombie: the pid no longer names any process of ours.
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST_P(Spawn, PollReapsOnlyOnceTheChildHasEnded) {
  SpawnOptions o;
  o.end_with_parent = GetParam();
  o.in = Stream::pipe();
  Process p = spawn({"cat"}, o);
  EXPECT_FALSE(p.poll());
  p.in().reset();
  std::optional<int> status;
  for (int i = 0; i < 500 && !(status = p.poll()); ++i) ::usleep(10'000);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status));
  p.signal(SIGKILL);  // reaped: the pid is not signalled again
  EXPECT_EQ(p.wait(), *status);
}

TEST_P(Spawn, AScriptWithoutAShebangRunsUnderShOnlyWhenAsked) {
  TempDir dir("cohort-spawn");
  const auto script = dir / "plain-script";
  std::ofstream(script) << "echo ran as script \"$1\"\n";
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  try {
    spawn({script.string()}, with_parent_death(GetParam())).wait();
    FAIL() << "a file the kernel cannot run was started";
  } catch (const SpawnError& e) {
    EXPECT_EQ(e.errnum(), ENOEXEC) << e.what();
  }
  SpawnOptions o;
  o.end_with_parent = GetParam();
  o.shell_runs_scripts = true;
  o.out = Stream::pipe();
  Process p = spawn({script.string(), "x"}, o);
  EXPECT_EQ(read_all(p.out()), "ran as script x\n");
  EXPECT_EQ(WEXITSTATUS(p.wait()), 0);
}

// A process that spawns with end_with_parent and is then killed outright takes its child
// with it; without the option, the child lives on, orphaned.
TEST(SpawnParentDeath, TheChildEndsWithTheProcessThatSpawnedIt) {
  // The orphan comes to this process, which can then reap it and see how it ended.
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  for (const bool on : {true, false}) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t middle = ::fork();
    ASSERT_GE(middle, 0);
    if (middle == 0) {
      ::close(fds[0]);
      try {
        SpawnOptions o;
        o.end_with_parent = on;
        Process p = spawn({"sleep", "60"}, o);
        const pid_t child = p.pid();
        if (::write(fds[1], &child, sizeof child) != sizeof child) ::_exit(1);
        for (;;) ::pause();
      } catch (...) {
        ::_exit(1);
      }
    }
    ::close(fds[1]);
    pid_t child = -1;
    ASSERT_EQ(::read(fds[0], &child, sizeof child), static_cast<ssize_t>(sizeof child));
    ::close(fds[0]);
    ASSERT_EQ(::kill(middle, SIGKILL), 0);
    ASSERT_EQ(::waitpid(middle, nullptr, 0), middle);
    // The middle one has gone: its children are this process's now, and the death signal,
    // where asked for, has been sent.
    int status = 0;
    if (on) {
      ASSERT_EQ(::waitpid(child, &status, 0), child);
      EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
    } else {
      EXPECT_EQ(::waitpid(child, &status, WNOHANG), 0) << "the orphan ended without the option";
      ::kill(child, SIGKILL);
      ::waitpid(child, nullptr, 0);
    }
  }
}

TEST(FindProgram, LooksOnPathAndTakesPathsAsTheyAre) {
  const auto sh = find_program("sh");
  ASSERT_TRUE(sh);
  EXPECT_EQ(::access(sh->c_str(), X_OK), 0);
  EXPECT_EQ(find_program("./relative/tool"), "./relative/tool");
  EXPECT_FALSE(find_program("cohort-no-such-program"));
}

TEST(RunProcess, LeavesNoDescriptorOpenWhenTheProgramIsMissing) {
  const int before = open_fds();
  EXPECT_THROW(run_process({"cohort-no-such-program"}), Error);
  EXPECT_EQ(open_fds(), before);
  run_process({"true"});
  EXPECT_EQ(open_fds(), before);
}

}  // namespace
}  // namespace cohort
