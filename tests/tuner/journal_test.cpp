// The journal: records read back in order, claims serialised across processes, crashes
// cost only the crashed writer's record.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>

#include "common/error.hpp"
#include "common/slurm.hpp"
#include "tuner/journal.hpp"
#include "tuner/runner.hpp"
#include "tests/common/temp_dir.hpp"

namespace cohort::tuner {
namespace {

namespace fs = std::filesystem;

using ::cohort::testing::TempDir;

json::Value record(const std::string& type, int trial) {
  json::Value r = json::Value::object();
  r.set("type", type);
  r.set("trial", trial);
  return r;
}

void write(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out << text;
}

const char* kGrid = R"(
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: grid}
parallelTrialCount: 8
parameters:
  - {name: a, parameterType: int, feasibleSpace: {min: "1", max: "8"}}
  - {name: b, parameterType: int, feasibleSpace: {min: "1", max: "5"}}
trialTemplate: {command: [true]}
)";

// A trial number is judged before it is narrowed to an int: 2^32 names no trial, rather
// than trial 0 by wrapping round.
TEST(Journal, ARecordForATrialPast2To32AppliesToNoTrial) {
  JournalState s = parse_journal(
      "{\"type\":\"experiment\",\"seed\":\"1\"}\n"
      "{\"type\":\"claim\",\"trial\":0,\"parameters\":{\"x\":\"1\"}}\n"
      "{\"type\":\"report\",\"trial\":4294967296,\"line\":\"loss=9\"}\n"
      "{\"type\":\"end\",\"trial\":4294967296,\"state\":\"Failed\",\"exit\":4294967297}\n");
  ASSERT_EQ(s.trials.size(), 1u);
  EXPECT_TRUE(s.trials[0].reports.empty());
  EXPECT_EQ(s.trials[0].state, TrialState::running);
  EXPECT_EQ(s.trials[0].exit_code, 0);
}

TEST(Journal, RecordsReadBackInTheOrderAppended) {
  TempDir d;
  Journal j(d.path());
  json::Value e = json::Value::object();
  e.set("type", "experiment");
  e.set("seed", "12");
  j.append(e);
  json::Value c = record("claim", 0);
  json::Value p = json::Value::object();
  p.set("x", "0.5");
  c.set("parameters", p);
  j.append(c);
  json::Value end = record("end", 0);
  end.set("state", "Succeeded");
  end.set("objective", 0.25);
  j.append(end);
  JournalState s = j.read();
  EXPECT_TRUE(s.initialised);
  EXPECT_EQ(s.seed, 12u);
  ASSERT_EQ(s.trials.size(), 1u);
  EXPECT_EQ(s.trials[0].state, TrialState::succeeded);
  EXPECT_EQ(s.trials[0].objective, 0.25);
  EXPECT_EQ(s.trials[0].parameters, (Assignment{{"x", "0.5"}}));
}

TEST(Journal, ARecordCutShortByACrashIsSkippedAndTheNextOneKept) {
  TempDir d;
  Journal j(d.path());
  j.append(record("claim", 0));
  write(d.path() / "journal.jsonl", R"({"type":"claim","tri)");  // the writer died here
  EXPECT_EQ(j.read().trials.size(), 1u);  // an unfinished line is not a record yet
  j.append(record("claim", 1));
  JournalState s = j.read();
  EXPECT_EQ(s.trials.size(), 2u);
  EXPECT_EQ(s.damaged_records, 1);
}

TEST(Journal, ARecordOfTheWrongShapeCountsAsDamaged) {
  TempDir d;
  Journal j(d.path());
  j.append(record("claim", 0));
  write(d.path() / "journal.jsonl", "{\"type\":\"end\",\"trial\":0,\"state\":\"Succeeded\",\"curve\":[[1]]}\n");
  write(d.path() / "journal.jsonl", "{\"type\":\"experiment\",\"name\":\"x\",\"seed\":\"many\"}\n");
  JournalState s = j.read();
  EXPECT_EQ(s.trials.size(), 1u);
  EXPECT_EQ(s.damaged_records, 2);
}

TEST(Journal, TheFirstEndOfATrialStands) {
  TempDir d;
  Journal j(d.path());
  j.append(record("claim", 0));
  json::Value a = record("end", 0), b = record("end", 0);
  a.set("state", "Killed");
  b.set("state", "Succeeded");
  j.append(a);
  j.append(b);
  EXPECT_EQ(j.read().trials[0].state, TrialState::killed);
}

// Eight processes claim from one journal at once: every grid point is claimed exactly
// once, and none is lost.
TEST(Journal, ConcurrentClaimsFromManyProcessesAreUniqueAndComplete) {
  TempDir d;
  { std::ofstream(d.path() / "exp.yaml") << kGrid; }
  Experiment e = init_experiment_dir(d.path() / "exp.yaml", d.path() / "sweep");
  Journal j(d.path() / "sweep");
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  std::vector<pid_t> children;
  for (int c = 0; c < 8; ++c) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(go[1]);
      char byte;
      // Everyone starts when the parent closes the pipe.
      while (::read(go[0], &byte, 1) > 0) {
      }
      int claimed = 0;
      try {
        Journal mine(d.path() / "sweep");
        while (claim_trial(mine, e, "task" + std::to_string(c))) ++claimed;
      } catch (...) {
        ::_exit(100);
      }
      ::_exit(claimed > 99 ? 99 : claimed);
    }
    children.push_back(pid);
  }
  ::close(go[0]);
  ::close(go[1]);
  int total = 0;
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_NE(WEXITSTATUS(status), 100);
    total += WEXITSTATUS(status);
  }
  JournalState s = j.read();
  EXPECT_EQ(total, 40);
  ASSERT_EQ(s.trials.size(), 40u);
  EXPECT_EQ(s.damaged_records, 0);
  std::set<Assignment> points;
  for (const auto& t : s.trials) points.insert(t.parameters);
  EXPECT_EQ(points.size(), 40u);
}

TEST(Journal, ADirectoryHoldingAnotherExperimentIsRefused) {
  TempDir d;
  { std::ofstream(d.path() / "a.yaml") << kGrid; }
  { std::ofstream(d.path() / "b.yaml") << std::string(kGrid) + "maxTrialCount: 3\n"; }
  init_experiment_dir(d.path() / "a.yaml", d.path() / "sweep");
  EXPECT_NO_THROW(init_experiment_dir(d.path() / "a.yaml", d.path() / "sweep"));
  try {
    init_experiment_dir(d.path() / "b.yaml", d.path() / "sweep");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("holds another experiment"), std::string::npos) << e.what();
  }
}

// What a resume asks Slurm about a running trial's job, with squeue replaced by a script.
TEST(Reclaim, OnlyAJobSlurmNoLongerKnowsCountsAsGone) {
  TempDir d;
  fs::create_directories(d.path() / "bin");
  const std::string old_path = std::getenv("PATH") ? std::getenv("PATH") : "";
  ::setenv("PATH", ((d.path() / "bin").string() + ":" + old_path).c_str(), 1);
  auto squeue = [&](const std::string& body) {
    std::ofstream(d.path() / "bin" / "squeue") << "#!/bin/sh\n" << body << "\n";
    fs::permissions(d.path() / "bin" / "squeue", fs::perms::owner_all);
    return slurm_job_alive("123");
  };
  const auto running = squeue("echo 123");
  const auto ended = squeue("echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1");
  const auto unreachable = squeue("echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1");
  ::setenv("PATH", old_path.c_str(), 1);
  EXPECT_EQ(running, std::optional<bool>(true));
  EXPECT_EQ(ended, std::optional<bool>(false));
  EXPECT_EQ(unreachable, std::nullopt) << "a controller that does not answer must not get running trials reclaimed";
}

}  // namespace
}  // namespace cohort::tuner
