// `cohort launch --local` as users meet it: the contract every rank sees, gang teardown
// and restarts, hang detection, preemption, and bad input. Ranks are small shell scripts.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <regex>

#include <sys/stat.h>
#include <unistd.h>

#include "common/fd.hpp"
#include "common/json.hpp"
#include "common/process.hpp"
#include "launcher/supervisor.hpp"
#include "tests/common/temp_dir.hpp"

namespace cohort {
namespace {

// `tmpdir`, when given, is the launch's TMPDIR: where it makes its scratch run directory.
ProcessResult launch(std::vector<std::string> args, const std::string& tmpdir = "") {
  const char* bin = std::getenv("COHORT_BIN");
  args.insert(args.begin(), {bin ? bin : "cohort", "launch"});
  RunOptions options;
  options.timeout = std::chrono::seconds(120);  // a hang is a failure, not a stuck suite
  options.env = {"SLURM_JOB_ID="};              // local mode, even inside an allocation
  if (!tmpdir.empty()) options.env.push_back("TMPDIR=" + tmpdir);
  return run_process(args, options);
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

using ::cohort::testing::TempDir;

TEST(LocalLaunch, EveryRankGetsTheContractAndItsLinesArePrefixed) {
  auto r = launch({"--local", "--nproc", "3", "--", "sh", "-c",
                   "echo rank=$RANK world=$WORLD_SIZE local=$LOCAL_RANK/$LOCAL_WORLD_SIZE "
                   "group=$GROUP_RANK at=$MASTER_ADDR:$MASTER_PORT restarts=$TORCHELASTIC_RESTART_COUNT"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::regex line(R"((\d): rank=(\d) world=3 local=(\d)/3 group=0 at=127\.0\.0\.1:(\d+) restarts=0)");
  std::set<std::string> ranks, ports;
  for (std::sregex_iterator it(r.out.begin(), r.out.end(), line), end; it != end; ++it) {
    EXPECT_EQ((*it)[1], (*it)[2]) << "the prefix names the rank that printed";
    EXPECT_EQ((*it)[2], (*it)[3]);
    ranks.insert((*it)[2]);
    ports.insert((*it)[4]);
  }
  EXPECT_EQ(ranks, (std::set<std::string>{"0", "1", "2"})) << r.out;
  EXPECT_EQ(ports.size(), 1u) << "all ranks share one rendezvous port";
  EXPECT_TRUE(contains(r.err, "succeeded: 3 ranks, 0 restarts")) << r.err;
}

TEST(LocalLaunch, AFailedRankTearsDownTheGangWhichRestartsWithTheCountIncremented) {
  // Rank 1 fails on the first attempt while the others would wait forever: only a
  // teardown lets the launch finish.
  auto r = launch({"--local", "--nproc", "3", "--max-restarts", "2", "--", "sh", "-c",
                   "echo attempt=$COHORT_RESTART_COUNT; "
                   "if [ $COHORT_RESTART_COUNT = 0 ]; then [ $RANK = 1 ] && exit 3; exec sleep 1000; fi"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "rank 1 (")) << r.err;
  EXPECT_TRUE(std::regex_search(r.err, std::regex(R"(exited with 3 first; gang torn down in \d+\.\d\d s; restarting)")))
      << r.err;
  EXPECT_TRUE(contains(r.out, "2: attempt=1")) << r.out;
  EXPECT_TRUE(contains(r.err, "succeeded: 3 ranks, 1 restart")) << r.err;
}

TEST(RestartBackoff, StartsAtOneSecondDoublesAndStopsAtThirty) {
  const double want[] = {1, 2, 4, 8, 16, 30, 30, 30};
  for (int restart = 1; restart <= 8; ++restart) {
    EXPECT_EQ(launcher::restart_backoff_seconds(restart), want[restart - 1]) << "restart " << restart;
  }
  EXPECT_EQ(launcher::restart_backoff_seconds(1000), 30);
}

// Lines as Slurm 22.05's srun and slurmstepd print them when a step's tasks are killed.
TEST(TeardownReport, SrunsReportsOfKilledTasksAreRecognisedAndNothingElse) {
  for (const char* line : {"srun: error: node2: task 0: Killed", "srun: error: node1: tasks 0-3: Killed\r",
                           "srun: error: node1: task 2: Terminated",
                           "srun: Job step aborted: Waiting up to 32 seconds for job step to finish.",
                           "slurmstepd: error: *** STEP 41.0 ON node1 CANCELLED AT 2026-12-04T01:02:03 ***",
                           "srun: forcing job termination", "srun: Force Terminated StepId=2.0",
                           "srun: launch/slurm: _step_signal: Terminating StepId=41.0"}) {
    EXPECT_TRUE(launcher::is_teardown_report(line)) << line;
  }
  for (const char* line : {"srun: error: node2: task 0: Exited with exit code 3", "0: Killed",
                           "srun: error: Unable to create step for job 41: Requested node configuration is not available",
                           "slurmstepd: error: *** JOB 41 ON node1 CANCELLED AT 2026-12-04T01:02:03 DUE TO TIME LIMIT ***",
                           "3: srun: error: node2: task 0: Killed as my program printed", ""}) {
    EXPECT_FALSE(launcher::is_teardown_report(line)) << line;
  }
}

TEST(LocalLaunch, EachRestartWaitsTwiceAsLongAsTheOneBefore) {
  auto r = launch({"--local", "--max-restarts", "2", "--", "sh", "-c", "exit 4"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "restarting in 1 s (1 of 2)")) << r.err;
  EXPECT_TRUE(contains(r.err, "restarting in 2 s (2 of 2)")) << r.err;
  EXPECT_TRUE(contains(r.err, "failed: rank 0")) << r.err;
}

TEST(LocalLaunch, WithoutRestartsTheLaunchFailsAndNamesTheRankThatFailedFirst) {
  auto r = launch({"--local", "--nproc", "3", "--", "sh", "-c", "[ $RANK = 2 ] && exit 5; exec sleep 1000"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(std::regex_search(r.err, std::regex(R"(failed: rank 2 \(.*\) exited with 5 first)"))) << r.err;
  EXPECT_TRUE(contains(r.err, "ranks 0-1: killed in teardown")) << r.err;
}

TEST(LocalLaunch, ExitCodePolicyRetriesOnlyKilledRanks) {
  auto permanent = launch({"--local", "--restart-policy", "exit-code", "--max-restarts", "3", "--", "sh", "-c", "exit 2"});
  EXPECT_EQ(permanent.exit_code, 1);
  EXPECT_TRUE(contains(permanent.err, "the restart policy does not retry it")) << permanent.err;

  auto retried = launch({"--local", "--restart-policy", "exit-code", "--max-restarts", "1", "--", "sh", "-c",
                         "[ $COHORT_RESTART_COUNT = 0 ] && kill -KILL $$; exit 0"});
  EXPECT_EQ(retried.exit_code, 0) << retried.err;
  EXPECT_TRUE(contains(retried.err, "killed by SIGKILL first")) << retried.err;
}

TEST(LocalLaunch, ARankThatStopsBeatingIsDumpedAndRestarted) {
  // The first attempt beats once, then hangs; the second finishes.
  TempDir temp("cohort-launch-test");
  const std::string run = (temp / "run").string(), out = (temp / "out").string();
  auto r = launch({"--local", "--heartbeat-timeout", "1", "--max-restarts", "1", "--run-dir", run, "--output-dir", out,
                   "--", "sh", "-c",
                   "[ -n \"$COHORT_HEARTBEAT_FILE\" ] || exit 9; touch \"$COHORT_HEARTBEAT_FILE\"; "
                   "[ $COHORT_RESTART_COUNT = 0 ] && exec sleep 1000; exit 0"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // The rank's output goes to its log: the supervisor says at once what its watcher saw.
  EXPECT_TRUE(std::regex_search(r.err, std::regex("rank 0 on [^:]+: no heartbeat for 1 s; dumping its stack, then ending it")))
      << r.err;
  const std::string stack = run + "/attempt-0/rank-0.stack";
  EXPECT_TRUE(contains(r.err, "hung (no heartbeat) first; its stack in " + stack + ";")) << r.err;
  const std::string log = read_file(out + "/rank-0.log").value_or("");
  EXPECT_TRUE(contains(log, "no heartbeat for 1 s; treating it as hung")) << log;
  EXPECT_TRUE(contains(log, "stack of pid")) << log;
  // The stack is kept in the run directory as well, and the rank's status names it.
  EXPECT_TRUE(contains(read_file(stack).value_or(""), "stack of pid")) << stack;
  const std::string status = read_file(run + "/attempt-0/rank-0.status").value_or("");
  EXPECT_TRUE(contains(status, "\nwhy=no heartbeat for 1 s\n")) << status;
  EXPECT_TRUE(contains(status, "\nstack=" + stack + "\n")) << status;
}

TEST(LocalLaunch, ARankStoppedAfterItsFirstBeatIsDumpedAndRestartedWithoutAHeartbeatTimeout) {
  // No --heartbeat-timeout: the first attempt beats once, then stops itself for good.
  auto r = launch({"--local", "--max-restarts", "1", "--", "sh", "-c",
                   "[ -n \"$COHORT_HEARTBEAT_FILE\" ] && touch \"$COHORT_HEARTBEAT_FILE\"; "
                   "[ $COHORT_RESTART_COUNT = 0 ] && kill -STOP $$; exit 0"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::regex_search(r.err, std::regex(R"(rank 0 on .*: pid \d+ \(sh\) stopped \(state T\) for \d+ s; treating it as hung)")))
      << r.err;
  EXPECT_TRUE(contains(r.err, "stack of pid")) << r.err;
  EXPECT_TRUE(contains(r.err, "hung (stopped) first")) << r.err;
  EXPECT_TRUE(contains(r.err, "succeeded: 1 rank, 1 restart")) << r.err;
}

TEST(LocalLaunch, TheHeartbeatFileIsNodeLocalPrivateAndGoneWhenTheRankEnds) {
  // Rank 1 fails once rank 0 has shown its file, so rank 0 ends in a teardown and rank 1
  // by failing: neither may leave its folder behind.
  TempDir temp("cohort-launch-hb");
  const auto tmp = temp.path() / "tmp", run = temp.path() / "run";
  std::filesystem::create_directories(tmp);
  const std::string shown = (temp.path() / "rank-0.shown").string();
  RunOptions options;
  options.timeout = std::chrono::seconds(120);
  options.env = {"SLURM_JOB_ID=", "TMPDIR=" + tmp.string()};
  const char* bin = std::getenv("COHORT_BIN");
  auto r = run_process({bin ? bin : "cohort", "launch", "--local", "--nproc", "2", "--run-dir", run.string(), "--", "sh", "-c",
                        "d=$(dirname \"$COHORT_HEARTBEAT_FILE\"); echo \"hb $COHORT_HEARTBEAT_FILE $(stat -c %a \"$d\")\"; "
                        "if [ $RANK = 0 ]; then touch " + shown + "; exec sleep 1000; fi; "
                        "until [ -e " + shown + " ]; do sleep 0.05; done; exit 3"},
                       options);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  std::regex line(R"((\d): hb (\S+) (\d+))");
  int seen = 0;
  for (std::sregex_iterator it(r.out.begin(), r.out.end(), line), end; it != end; ++it, ++seen) {
    const std::filesystem::path file = (*it)[2].str();
    // In $TMPDIR, inside the launch's own folder, which the launch removes whole.
    const std::regex named(R"(cohort-local-\d+-\d+\.\w{6}/cohort-local-attempt-0-rank)" + (*it)[1].str() +
                           R"(\.\w{6}/heartbeat-\d)");
    EXPECT_EQ(file.parent_path().parent_path().parent_path(), tmp) << file << " is not in $TMPDIR";
    EXPECT_TRUE(std::regex_match(std::filesystem::relative(file, tmp).string(), named))
        << file << " is not named for its launch and rank";
    EXPECT_NE(file.string().rfind(run.string(), 0), 0u) << file << " is on the run directory's file system";
    EXPECT_EQ((*it)[3], "700") << "the folder of " << file << " is not private";
    EXPECT_FALSE(std::filesystem::exists(file.parent_path())) << file.parent_path() << " outlived its rank";
  }
  EXPECT_EQ(seen, 2) << r.out;
  EXPECT_TRUE(std::filesystem::is_empty(tmp)) << "left in $TMPDIR: " << std::filesystem::directory_iterator(tmp)->path();
}

// Beats stay on each rank's node; their watchers pass them on over the link, and the
// supervisor writes them down for the run's readers in one file per attempt. Each rank
// beats, then waits (bounded) until the file shows its beat.
TEST(LocalLaunch, TheRanksBeatsReachTheRunDirectoryThroughTheSupervisorInOneFile) {
  TempDir temp("cohort-launch-beats");
  const auto run = temp.path() / "run";
  const std::string beats = (run / "attempt-0" / "heartbeats").string();
  RunOptions options;
  options.timeout = std::chrono::seconds(120);
  options.env = {"SLURM_JOB_ID="};
  const char* bin = std::getenv("COHORT_BIN");
  auto r = run_process({bin ? bin : "cohort", "launch", "--local", "--nproc", "2", "--run-dir", run.string(), "--", "sh", "-c",
                        "touch \"$COHORT_HEARTBEAT_FILE\"; for i in $(seq 300); do "
                        "awk -v r=$RANK '$1 == r && $2 > 0 { found = 1 } END { exit !found }' " + beats +
                        " 2>/dev/null && exit 0; sleep 0.1; done; exit 4"},
                       options);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  std::istringstream lines(read_text(beats));
  const double now = static_cast<double>(::time(nullptr));
  int rank = 0, seen = 0;
  double at = 0;
  while (lines >> rank >> at) {
    EXPECT_EQ(rank, seen++);
    EXPECT_GT(at, now - 120);
    EXPECT_LE(at, now + 1);
  }
  EXPECT_EQ(seen, 2) << read_text(beats);
  EXPECT_FALSE(std::filesystem::exists(run / "attempt-0" / "heartbeat-0")) << "a heartbeat on the run directory";
}

TEST(LocalLaunch, ByDefaultARankThatNeverBeatsIsNotTreatedAsHung) {
  // Rank 0 is offered a heartbeat, never beats and waits; rank 1 stops itself, also without
  // a beat. Rank 0 outlives rank 1's stop and is torn down with the gang, not as hung.
  auto r = launch({"--local", "--nproc", "2", "--", "sh", "-c",
                   "[ -n \"$COHORT_HEARTBEAT_FILE\" ] || exit 9; [ $RANK = 1 ] && kill -STOP $$; exec sleep 1000"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(std::regex_search(r.err, std::regex(R"(failed: rank 1 \(.*\) hung \(stopped\) first)"))) << r.err;
  EXPECT_TRUE(contains(r.err, "rank 0: killed in teardown")) << r.err;
  EXPECT_FALSE(contains(r.err, "no heartbeat")) << r.err;
}

TEST(LocalLaunch, HeartbeatTimeoutZeroTurnsHangDetectionOff) {
  auto offered = launch({"--local", "--", "sh", "-c", "[ -n \"$COHORT_HEARTBEAT_FILE\" ]"});
  EXPECT_EQ(offered.exit_code, 0) << "by default every rank is offered a heartbeat file: " << offered.err;

  // Rank 1 stops itself; rank 0 sees it stopped, lets the launcher's limit on a stopped
  // rank pass with some to spare, checks that rank 1 is still there and continues it.
  TempDir temp("cohort-launch-off");
  const std::string pid = (temp.path() / "rank-1.pid").string();
  const int wait_s = static_cast<int>(launcher::kStoppedRankSeconds) + 5;
  auto r = launch({"--local", "--nproc", "2", "--heartbeat-timeout", "0", "--", "sh", "-c",
                   "[ -z \"$COHORT_HEARTBEAT_FILE\" ] || exit 9; "
                   "if [ $RANK = 1 ]; then echo $$ >" + pid + ".tmp && mv " + pid + ".tmp " + pid + "; kill -STOP $$; exit 0; fi; "
                   "until [ -s " + pid + " ]; do sleep 0.05; done; p=$(cat " + pid + "); "
                   "until grep -q 'T (stopped)' /proc/$p/status; do sleep 0.05; done; "
                   "sleep " + std::to_string(wait_s) + "; grep -q 'T (stopped)' /proc/$p/status || exit 8; kill -CONT $p"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(contains(r.err, "hung")) << r.err;
  EXPECT_TRUE(contains(r.err, "succeeded: 2 ranks")) << r.err;
}

TEST(LocalLaunch, PreemptionAsksRanksToCheckpointThroughTheFlagFile) {
  // The rank plays the batch system: it sends the warning signal to its launcher (its
  // wrapper's parent), then waits for the checkpoint request.
  auto r = launch({"--local", "--grace", "30", "--", "sh", "-c",
                   "kill -USR1 $(ps -o ppid= -p $PPID); "
                   "until [ -e \"$COHORT_CHECKPOINT_REQUEST\" ]; do sleep 0.05; done; echo checkpointed"});
  EXPECT_EQ(r.exit_code, 128 + 10) << r.err;
  EXPECT_TRUE(contains(r.out, "0: checkpointed")) << r.out;
  EXPECT_TRUE(contains(r.err, "asking ranks to checkpoint")) << r.err;
}

TEST(LocalLaunch, OutputDirHoldsOneLogPerRank) {
  TempDir temp("cohort-launch-test");
  const auto& dir = temp.path();
  auto r = launch({"--local", "--nproc", "2", "--output-dir", dir.string(), "--", "sh", "-c", "echo hello from $RANK"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (int rank : {0, 1}) {
    auto log = dir / ("rank-" + std::to_string(rank) + ".log");
    ASSERT_TRUE(std::filesystem::exists(log));
    std::ifstream in(log);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(text, "hello from " + std::to_string(rank) + "\n");
  }
}

// The run directory is how ranks and the supervisor talk (status files, the checkpoint
// request): nobody else may write there, whatever the user's umask.
TEST(LocalLaunch, AnOpenUmaskStillLeavesTheRunDirectoryPrivate) {
  TempDir temp("cohort-launch-test");
  const auto run_dir = temp.path() / "run" / "job";
  const mode_t old = ::umask(0);
  auto r = launch({"--local", "--nproc", "1", "--run-dir", run_dir.string(), "--output-dir", (temp / "out").string(),
                   "--", "true"});
  ::umask(old);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto mode = [](const std::filesystem::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  };
  EXPECT_EQ(mode(temp.path() / "run"), 0700u);
  EXPECT_EQ(mode(run_dir), 0700u);
  EXPECT_EQ(mode(run_dir / "attempt-0"), 0700u);
  EXPECT_EQ(mode(run_dir / "attempt-0" / "rank-0.status"), 0644u);
  EXPECT_EQ(mode(temp / "out"), 0755u);
  EXPECT_EQ(mode(temp / "out" / "rank-0.log"), 0644u);
}

TEST(LocalLaunch, AProgramThatCannotRunFailsWithItsName) {
  auto r = launch({"--local", "--", "cohort-no-such-program"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "cannot run 'cohort-no-such-program'")) << r.err;
  EXPECT_TRUE(contains(r.err, "exited with 127")) << r.err;
}

// As a shell would start it: a script without a #! line is read by /bin/sh.
TEST(LocalLaunch, AScriptWithoutAShebangLineRunsAsTheShellWouldRunIt) {
  TempDir temp("cohort-launch-script");
  const auto script = temp.path() / "train";
  std::ofstream(script) << "echo script rank $RANK\n";
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  auto r = launch({"--local", "--", script.string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "0: script rank 0")) << r.out;
}

// A log file that cannot be opened stops the launch, naming the file.
TEST(LocalLaunch, AnOutputDirWhoseLogCannotBeOpenedFailsNamingTheFile) {
  TempDir temp("cohort-launch-log");
  std::filesystem::create_directories(temp.path() / "rank-0.log");
  std::filesystem::create_directories(temp.path() / "tmp");
  auto r = launch({"--local", "--output-dir", temp.path().string(), "--", "true"}, (temp.path() / "tmp").string());
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "cannot open " + (temp.path() / "rank-0.log").string() + ": Is a directory")) << r.err;
  EXPECT_TRUE(std::filesystem::is_empty(temp.path() / "tmp")) << "the launch's scratch run directory is left";
}

TEST(LocalLaunch, BadInputIsRefusedBeforeAnythingRuns) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  for (const auto& c : std::vector<Case>{
           {{"--local"}, "no command"},
           {{"--local", "--nproc", "0", "--", "true"}, "--nproc 0: must be 1..4096"},
           {{"--local", "--restart-policy", "sometimes", "--", "true"}, "--restart-policy sometimes"},
           {{"--local", "--preempt-signal", "NOPE", "--", "true"}, "--preempt-signal NOPE: not a signal"},
           {{"--local", "--max-restarts", "-1", "--", "true"}, "--max-restarts -1"},
           {{"--local", "--frobnicate", "--", "true"}, "frobnicate"},
       }) {
    auto r = launch(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.message;
    EXPECT_TRUE(contains(r.err, c.message)) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
}

TEST(LocalLaunch, AnAllocationCountThatIsNoNumberIsAnInputError) {
  const char* bin = std::getenv("COHORT_BIN");
  RunOptions options;
  options.timeout = std::chrono::seconds(60);
  options.env = {"SLURM_JOB_ID=7", "SLURM_NTASKS=many"};
  auto r = run_process({bin ? bin : "cohort", "launch", "--", "true"}, options);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "SLURM_NTASKS='many' is not a count")) << r.err;
}

TEST(LocalLaunch, RanksAreBoundToTheCoresTheTopologyPlannerGivesThem) {
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "needs two CPUs to give two ranks cores of their own";
  // What the kernel applied: the CPU mask, and the memory policy numactl reads back
  // (hwloc's non-strict binding: preferred-many where the kernel has it, else bind).
  auto r = launch({"--local", "--nproc", "2", "--", "sh", "-c",
                   "echo planned=$COHORT_CPUS bound=$(grep Cpus_allowed_list /proc/self/status | cut -f2) "
                   "numa=$COHORT_NUMA policy=$(numactl --show | sed -n 's/^policy: //p') "
                   "membind=$(numactl --show | sed -n 's/^membind: //p' | tr -d ' ')"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::regex line(R"((\d): planned=([0-9,-]+) bound=([0-9,-]+) numa=([0-9,-]+) policy=(\S+) membind=([0-9,-]+))");
  std::set<std::string> cpus;
  for (std::sregex_iterator it(r.out.begin(), r.out.end(), line), end; it != end; ++it) {
    EXPECT_EQ((*it)[2], (*it)[3]) << "rank " << (*it)[1] << " runs where it was planned";
    EXPECT_TRUE((*it)[5] == "bind" || (*it)[5] == "preferred-many") << "rank " << (*it)[1] << ": " << (*it)[0];
    EXPECT_EQ((*it)[6], (*it)[4]) << "rank " << (*it)[1] << "'s memory is placed on its NUMA nodes";
    cpus.insert((*it)[2]);
  }
  EXPECT_EQ(cpus.size(), 2u) << "each rank has cores of its own: " << r.out;
}

TEST(LocalLaunch, RanksGetTheGpusAndNicsLocalToThemOnAGpuNode) {
  // A DGX-like node described by a fixture: GPUs and HCAs come from the plan; the CPUs,
  // which this machine lacks, are left unbound and said so.
  RunOptions options;
  options.env = {"SLURM_JOB_ID=", "COHORT_TOPOLOGY_XML=" COHORT_TOPOLOGY_FIXTURES "/dgx_a100_2s_8gpu_8ib.xml"};
  options.timeout = std::chrono::seconds(60);
  const char* bin = std::getenv("COHORT_BIN");
  auto r = run_process({bin ? bin : "cohort", "launch", "--local", "--nproc", "8", "--", "sh", "-c",
                        "echo gpus=$CUDA_VISIBLE_DEVICES hca=$NCCL_IB_HCA order=$CUDA_DEVICE_ORDER"},
                       options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // In the fixture, HCA mlx5_i sits behind the PCIe switch of GPU i: its nearest.
  std::regex line(R"((\d): gpus=(\d) hca==mlx5_(\d):1 order=PCI_BUS_ID)");
  std::set<std::string> ranks, gpus;
  for (std::sregex_iterator it(r.out.begin(), r.out.end(), line), end; it != end; ++it) {
    ranks.insert((*it)[1]);
    gpus.insert((*it)[2]);
    EXPECT_EQ((*it)[3], (*it)[2]) << "rank " << (*it)[1] << " got an HCA that is not its GPU's nearest: " << (*it)[0];
  }
  EXPECT_EQ(ranks.size(), 8u) << "ranks that reported: " << r.out;
  EXPECT_EQ(gpus.size(), 8u) << r.out;
  EXPECT_TRUE(contains(r.err, "CPUs not bound")) << r.err;
}

std::string write_spec(const std::string& name, const std::string& yaml) {
  auto path = std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(path) << yaml;
  return path.string();
}

TEST(LocalLaunch, TfJobRolesGetKubeflowTfConfigAndTheChiefDecidesSuccess) {
  // Each process prints its TF_CONFIG into the shared directory; the chief finishes once
  // both workers and the parameter server have (the gang's end tears the server down, and
  // it must not be torn down before it wrote), and the server never exits by itself.
  TempDir temp("cohort-tfjob");
  const auto& dir = temp.path();
  std::string record = "echo \"$TF_CONFIG\" >" + dir.string() + "/$COHORT_ROLE-$COHORT_ROLE_INDEX";
  std::string wait = "until [ -s " + dir.string() + "/worker-0 ] && [ -s " + dir.string() + "/worker-1 ] && [ -s " +
                     dir.string() + "/ps-0 ]; do sleep 0.05; done";
  auto spec = write_spec("tfjob", "kind: TFJob\nspec:\n  tfReplicaSpecs:\n"
                                  "    Chief: {replicas: 1, command: [sh, -c, '" + wait + "; " + record + "']}\n"
                                  "    PS: {replicas: 1, command: [sh, -c, '" + record + "; exec sleep 1000']}\n"
                                  "    Worker: {replicas: 2, command: [sh, -c, '" + record + "']}\n");
  auto r = launch({"--local", "--spec", spec});
  std::filesystem::remove(spec);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "succeeded: 4 ranks")) << r.err;
  for (const auto& [role, index] : std::vector<std::pair<std::string, int>>{{"chief", 0}, {"worker", 0}, {"worker", 1}, {"ps", 0}}) {
    std::ifstream in(dir / (role + "-" + std::to_string(index)));
    std::string text((std::istreambuf_iterator<char>(in)), {});
    ASSERT_FALSE(text.empty()) << role << " " << index << " wrote no TF_CONFIG";
    auto config = json::parse(text);
    EXPECT_EQ(config.at("task").at("type").as_string(), role);
    EXPECT_EQ(config.at("task").at("index").as_int(), index);
    EXPECT_EQ(config.at("environment").as_string(), "cloud");
    EXPECT_EQ(config.at("cluster").at("chief").as_array().size(), 1u);
    EXPECT_EQ(config.at("cluster").at("ps").as_array().size(), 1u);
    EXPECT_EQ(config.at("cluster").at("worker").as_array().size(), 2u);
  }
}

// A TFJob without a chief whose worker 1 ends, with `worker1_exit`, only after worker 0
// has succeeded and exited; the parameter server never ends by itself.
// Worker 1 exits with `worker1_exit` only once the launcher holds worker 0's success (its
// status file in the run directory), so that the order of the two is the test's, not the
// machine's.
ProcessResult tfjob_after_worker_0(const TempDir& temp, const std::string& policy, int worker1_exit) {
  const std::string run_dir = temp.path().string() + "/run";
  const std::string rank_file = temp.path().string() + "/worker-0.rank";
  const std::string worker = "if [ $COHORT_ROLE_INDEX = 0 ]; then echo $RANK >" + rank_file + "; exit 0; fi; "
                             "until [ -s " + rank_file + " ]; do sleep 0.05; done; "
                             "until [ -n \"$(find " + run_dir + " -name rank-$(cat " + rank_file +
                             ").status)\" ]; do sleep 0.05; done; exit " + std::to_string(worker1_exit);
  auto spec = write_spec("tf-success", "kind: TFJob\nspec:\n" + policy + "  tfReplicaSpecs:\n"
                                       "    PS: {replicas: 1, command: [sh, -c, 'exec sleep 1000']}\n"
                                       "    Worker: {replicas: 2, command: [sh, -c, '" + worker + "']}\n");
  auto r = launch({"--local", "--run-dir", run_dir, "--spec", spec});
  std::filesystem::remove(spec);
  return r;
}

TEST(LocalLaunch, WithoutAChiefWorkerZerosSuccessEndsATfJob) {
  TempDir temp("cohort-tf-default");
  auto r = tfjob_after_worker_0(temp, "", 3);
  EXPECT_EQ(r.exit_code, 0) << "worker 0 decides; worker 1's later failure does not count: " << r.err;
  EXPECT_TRUE(contains(r.err, "succeeded: 3 ranks")) << r.err;
}

TEST(LocalLaunch, AllWorkersSuccessPolicyWaitsForEveryWorker) {
  TempDir temp("cohort-tf-allworkers");
  auto failed = tfjob_after_worker_0(temp, "  successPolicy: AllWorkers\n", 3);
  EXPECT_EQ(failed.exit_code, 1) << "worker 1 failed after worker 0 succeeded: " << failed.err;
  EXPECT_TRUE(contains(failed.err, "exited with 3 first")) << failed.err;
  TempDir again("cohort-tf-allworkers");
  auto succeeded = tfjob_after_worker_0(again, "  successPolicy: AllWorkers\n", 0);
  EXPECT_EQ(succeeded.exit_code, 0) << succeeded.err;
  EXPECT_TRUE(contains(succeeded.err, "succeeded: 3 ranks")) << succeeded.err;
}

TEST(LocalLaunch, PyTorchJobWorkersRendezvousAtTheMaster) {
  TempDir temp("cohort-ptjob");
  const auto& dir = temp.path();
  std::string record = "echo $MASTER_ADDR:$MASTER_PORT $RANK $WORLD_SIZE >" + dir.string() + "/rank-$RANK";
  // -s, not -e: the shell creates a worker's file before echo has written to it.
  std::string wait = "until [ -s " + dir.string() + "/rank-1 ] && [ -s " + dir.string() + "/rank-2 ]; do sleep 0.05; done";
  auto spec = write_spec("ptjob", "kind: PyTorchJob\nspec:\n  pytorchReplicaSpecs:\n"
                                  "    Master: {command: [sh, -c, '" + wait + "; " + record + "']}\n"
                                  "    Worker: {replicas: 2, command: [sh, -c, '" + record + "']}\n");
  auto r = launch({"--local", "--spec", spec});
  std::filesystem::remove(spec);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::set<std::string> rendezvous;
  for (int rank = 0; rank < 3; ++rank) {
    std::ifstream in(dir / ("rank-" + std::to_string(rank)));
    std::string address, seen_rank, world;
    in >> address >> seen_rank >> world;
    EXPECT_EQ(seen_rank, std::to_string(rank));
    EXPECT_EQ(world, "3");
    rendezvous.insert(address);
  }
  EXPECT_EQ(rendezvous.size(), 1u) << "every replica meets at the master";
}

TEST(LocalLaunch, ABadSpecIsRefusedNamingTheField) {
  auto spec = write_spec("badjob", "kind: PyTorchJob\nspec:\n  pytorchReplicaSpecs:\n    Worker: {replicas: 0, command: [true]}\n");
  auto r = launch({"--local", "--spec", spec});
  std::filesystem::remove(spec);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "spec.pytorchReplicaSpecs.Worker.replicas: must be at least 1")) << r.err;
  auto missing = launch({"--local", "--spec", "/nonexistent/job.yaml"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_TRUE(contains(missing.err, "/nonexistent/job.yaml: cannot read the job spec")) << missing.err;
}

}  // namespace
}  // namespace cohort
