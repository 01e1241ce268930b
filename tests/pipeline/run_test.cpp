// `cohort pipeline run --local` as users meet it: outputs passed between tasks, the cache,
// failures and retries, and bad pipelines that start nothing.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "common/fd.hpp"
#include "common/json.hpp"
#include "common/process.hpp"
#include "tests/common/temp_dir.hpp"

namespace cohort::pipeline {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& name) { return std::string(COHORT_PIPELINE_FIXTURES) + "/" + name; }

ProcessResult cohort(std::vector<std::string> args) {
  const char* bin = std::getenv("COHORT_BIN");
  args.insert(args.begin(), bin ? bin : "cohort");
  return run_process(args);
}

// Each test's runs record into a lineage store of its own.
struct Pipelines : ::cohort::testing::TempDir {
  Pipelines() { ::setenv("COHORT_LINEAGE", (*this / "lineage.db").c_str(), 1); }
  std::string root() const { return (*this / "root").string(); }
  std::string file(const std::string& name, const std::string& text) const {
    std::ofstream(*this / name) << text;
    return (*this / name).string();
  }
  // Runs the pipeline here; its run's name.
  std::string run(const std::string& pipeline, std::vector<std::string> params = {}, int expect = 0) const {
    std::vector<std::string> args{"pipeline", "run", pipeline, "--local", "--dir", root()};
    for (const auto& p : params) args.insert(args.end(), {"--param", p});
    const auto r = cohort(args);
    EXPECT_EQ(r.exit_code, expect) << r.err;
    last_err = r.err;
    return r.out.substr(0, r.out.find('\n'));
  }
  json::Value status(const std::string& run) const {
    const auto r = cohort({"pipeline", "status", run, "--dir", root(), "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out);
  }
  // task → state of the run.
  std::map<std::string, std::string> states(const std::string& run) const {
    std::map<std::string, std::string> out;
    const json::Value s = status(run);
    for (const auto& t : s.at("tasks").as_array()) out[t.at("task").as_string()] = t.at("state").as_string();
    return out;
  }
  std::map<std::string, std::string> fingerprints(const std::string& run) const {
    std::map<std::string, std::string> out;
    const json::Value s = status(run);
    for (const auto& t : s.at("tasks").as_array()) {
      if (!t.at("fingerprint").is_null()) out[t.at("task").as_string()] = t.at("fingerprint").as_string();
    }
    return out;
  }
  mutable std::string last_err;
};

using States = std::map<std::string, std::string>;

// Whether process `pid` runs: a zombie no init has reaped yet does not.
bool running(long pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto paren = line.rfind(')');
  return paren != std::string::npos && line.size() > paren + 2 && line[paren + 2] != 'Z';
}

std::int64_t attempt_of(const json::Value& status) { return status.at("tasks").as_array()[0].at("attempt").as_int(); }

TEST(LocalRun, TwoStepPipelinePassesItsParameterThroughADatasetArtifact) {
  Pipelines d;
  const std::string run = d.run(fixture("two_step_pipeline_containerized.yaml"), {"text=hello from kfp"});
  EXPECT_EQ(d.states(run), (States{{"component1", "succeeded"}, {"component2", "succeeded"}}));
  const auto logs = cohort({"pipeline", "logs", run, "component2", "--dir", d.root()});
  EXPECT_NE(logs.out.find("hello from kfp"), std::string::npos) << logs.out;
  const json::Value s = d.status(run);
  const auto& first = s.at("tasks").as_array()[0];
  const auto& artifact = first.at("outputs").at("artifacts").at("output_gcs");
  EXPECT_EQ(read_text(artifact.at("path").as_string()), "hello from kfp\n");
  EXPECT_EQ(artifact.at("sha256").as_string().size(), 64u);
}

TEST(LocalRun, EnvironmentValuesGetTheirPlaceholdersFilledInAsArgumentsDo) {
  Pipelines d;
  const std::string p = d.file("env.yaml", R"yaml(name: env
params: {where: here}
steps:
  make:
    outputs: [data]
    run: 'echo made > {{outputs.data}}'
  use:
    env: {DATA: '{{steps.make.outputs.data}}', WHERE: 'at {{params.where}}', RESULT: '{{results.seen}}'}
    results: [seen]
    run: 'printf "%s %s" "$(cat "$DATA")" "$WHERE" > "$RESULT"'
)yaml");
  const std::string run = d.run(p, {"where=there"});
  EXPECT_EQ(d.states(run), (States{{"make", "succeeded"}, {"use", "succeeded"}}));
  const json::Value s = d.status(run);
  EXPECT_EQ(s.at("tasks").as_array()[1].at("outputs").at("parameters").at("seen").as_string(), "made at there");
}

TEST(LocalRun, ASecondRunIsServedFromTheCacheWithTheSameFingerprints) {
  Pipelines d;
  const std::string first = d.run(fixture("two_step_pipeline_containerized.yaml"), {"text=x"});
  const std::string second = d.run(fixture("two_step_pipeline_containerized.yaml"), {"text=x"});
  EXPECT_NE(first, second);
  EXPECT_EQ(d.states(second), (States{{"component1", "cached"}, {"component2", "cached"}}));
  EXPECT_EQ(d.fingerprints(first), d.fingerprints(second));
  EXPECT_EQ(d.fingerprints(first).size(), 2u);
}

TEST(LocalRun, FanOutAndFanInGatherEveryBranchsOutput) {
  Pipelines d;
  const std::string run = d.run(fixture("fan_out_fan_in.yaml"), {"n=5"});
  for (const auto& [task, state] : d.states(run)) EXPECT_EQ(state, "succeeded") << task;
  const json::Value s = d.status(run);
  const auto& tasks = s.at("tasks").as_array();
  const auto& report = tasks.back().at("outputs").at("artifacts").at("report");
  EXPECT_EQ(read_text(report.at("path").as_string()), "numbers: n=5 sum=15 squares=55\n");
}

TEST(LocalRun, ATaskWithCachingOffRunsEveryTime) {
  Pipelines d;
  d.run(fixture("fan_out_fan_in.yaml"));
  const std::string again = d.run(fixture("fan_out_fan_in.yaml"));
  EXPECT_EQ(d.states(again), (States{{"make-data", "cached"}, {"sum", "cached"}, {"square-sum", "cached"},
                                     {"stamp", "succeeded"}, {"report", "cached"}}));
}

TEST(LocalRun, ChangingOneParameterRerunsExactlyTheTasksDownstreamOfIt) {
  Pipelines d;
  const std::string base = d.run(fixture("fan_out_fan_in.yaml"));
  const std::string label = d.run(fixture("fan_out_fan_in.yaml"), {"label=other"});
  EXPECT_EQ(d.states(label), (States{{"make-data", "cached"}, {"sum", "cached"}, {"square-sum", "cached"},
                                     {"stamp", "succeeded"}, {"report", "succeeded"}}));
  const std::string n = d.run(fixture("fan_out_fan_in.yaml"), {"n=6"});
  EXPECT_EQ(d.states(n), (States{{"make-data", "succeeded"}, {"sum", "succeeded"}, {"square-sum", "succeeded"},
                                 {"stamp", "succeeded"}, {"report", "succeeded"}}));
  const auto before = d.fingerprints(base), after = d.fingerprints(n);
  for (const char* t : {"make-data", "sum", "square-sum", "report"}) EXPECT_NE(before.at(t), after.at(t)) << t;
}

TEST(LocalRun, AFailingTaskStopsItsDependantsAndNamesItsLog) {
  Pipelines d;
  const std::string marker = (d / "dependant-ran").string();
  const std::string p = d.file("fail.yaml", R"(
name: failing
steps:
  bad: {run: 'echo about to fail; exit 4'}
  after-bad: {needs: [bad], run: 'touch )" + marker + R"('}
  independent: {run: 'true'}
)");
  const std::string run = d.run(p, {}, 1);
  EXPECT_EQ(d.states(run), (States{{"bad", "failed"}, {"after-bad", "skipped"}, {"independent", "succeeded"}}));
  EXPECT_FALSE(fs::exists(marker));
  const std::string log = (fs::path(d.root()) / "runs" / run / "tasks" / "bad" / "log").string();
  EXPECT_NE(d.last_err.find("task bad failed: exit status 4; its log: " + log), std::string::npos) << d.last_err;
  EXPECT_NE(read_text(log).find("about to fail"), std::string::npos);
  EXPECT_EQ(d.status(run).at("state").as_string(), "Failed");
}

TEST(LocalRun, ADeclaredOutputThatIsNotWrittenFailsTheTask) {
  Pipelines d;
  const std::string p = d.file("missing.yaml", "name: missing\nsteps:\n  a: {run: 'true # {{outputs.model}}', outputs: [model]}\n");
  const std::string run = d.run(p, {}, 1);
  EXPECT_NE(d.last_err.find("declared output artifact 'model' was not written at"), std::string::npos) << d.last_err;
}

TEST(LocalRun, RetryPolicyRunsAFailedTaskAgain) {
  Pipelines d;
  const std::string once = (d / "once").string();
  const std::string p = d.file("retry.yaml", R"(
name: flaky
steps:
  flaky:
    run: 'if [ -e )" + once + R"( ]; then echo ok > {{outputs.result}}; else touch )" + once + R"(; exit 3; fi'
    outputs: [result]
    retries: 2
  after: {needs: [flaky], run: 'cat {{steps.flaky.outputs.result}}'}
)");
  const std::string run = d.run(p);
  EXPECT_EQ(d.states(run), (States{{"flaky", "succeeded"}, {"after", "succeeded"}}));
  EXPECT_EQ(attempt_of(d.status(run)), 1);
  const std::string never = d.file("never.yaml", "name: never\nsteps:\n  a: {run: 'exit 3', retries: 1}\n");
  const std::string failed = d.run(never, {}, 1);
  EXPECT_EQ(attempt_of(d.status(failed)), 1);
}

TEST(LocalRun, LaunchAndSweepStepsRunCohortsOwnCommandsOnUpstreamData) {
  Pipelines d;
  const std::string exp = d.file("exp.yaml", R"(
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: grid}
maxTrialCount: 2
parallelTrialCount: 1
parameters:
  - {name: x, parameterType: int, feasibleSpace: {min: "1", max: "2"}}
trialTemplate:
  trialParameters: [{name: x, reference: x}]
  command: [sh, -c, 'echo "loss=${trialParameters.x}"']
)");
  const std::string p = d.file("train.yaml", R"(
name: train
steps:
  data: {run: 'seq 1 8 > {{outputs.dataset}}', outputs: [dataset]}
  fit:
    launch: [--local, --nproc, "2", --no-bind, --, sh, -c, 'mkdir -p "$1" && wc -l < "$0" > "$1/rank$RANK"',
             "{{steps.data.outputs.dataset}}", "{{outputs.model}}"]
    outputs: [model]
  tune: {needs: [fit], sweep: )" + exp + R"(}
)");
  const std::string run = d.run(p);
  EXPECT_EQ(d.states(run), (States{{"data", "succeeded"}, {"fit", "succeeded"}, {"tune", "succeeded"}}));
  const fs::path tasks = fs::path(d.root()) / "runs" / run / "tasks";
  EXPECT_EQ(read_text(tasks / "fit" / "artifacts" / "model" / "rank0"), "8\n");
  EXPECT_EQ(read_text(tasks / "fit" / "artifacts" / "model" / "rank1"), "8\n");
  const auto best = cohort({"sweep", "best", (tasks / "tune" / "artifacts" / "sweep").string(), "--json"});
  EXPECT_EQ(best.exit_code, 0) << best.err;
  EXPECT_EQ(json::parse(best.out).at("objective").as_double(), 1.0);
}

TEST(LocalRun, CancelStopsARunningLocalRunAndItsCommands) {
  Pipelines d;
  const std::string started = (d / "started").string(), pid = (d / "pid").string();
  const std::string p = d.file("slow.yaml", "name: slow\nsteps:\n  slow: {run: 'echo $$ > " + pid + "; touch " + started +
                                                "; exec sleep 300'}\n  later: {needs: [slow], run: 'true'}\n");
  const char* bin = std::getenv("COHORT_BIN");
  SpawnOptions o;
  o.out = Stream::pipe();
  o.err = Stream::null();
  Process runner = spawn({bin ? bin : "cohort", "pipeline", "run", p, "--local", "--dir", d.root()}, o);
  std::string name;
  char c;
  while (::read(runner.out().get(), &c, 1) == 1 && c != '\n') name += c;
  while (!fs::exists(started)) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const auto r = cohort({"pipeline", "cancel", name, "--dir", d.root()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const int status = runner.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
  EXPECT_EQ(d.states(name), (States{{"slow", "cancelled"}, {"later", "cancelled"}}));
  EXPECT_EQ(d.status(name).at("state").as_string(), "Cancelled");
  EXPECT_FALSE(running(std::stol(read_text(pid)))) << "the cancelled task's command still runs";
}

TEST(LocalRun, EachTaskIsRecordedInTheLineageStoreWithItsRunInputsAndOutputs) {
  Pipelines d;
  const std::string run = d.run(fixture("two_step_pipeline_containerized.yaml"), {"text=traced"});
  const std::string dataset =
      (fs::path(d.root()) / "runs" / run / "tasks" / "component1" / "artifacts" / "output_gcs").string();
  const auto show = cohort({"lineage", "show", dataset, "--json"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  const json::Value v = json::parse(show.out);
  EXPECT_EQ(v.at("artifact").at("type").as_string(), "Dataset");
  const auto& made = v.at("produced_by").as_array().at(0);
  EXPECT_EQ(made.at("execution").at("type").as_string(), "PipelineTask");
  EXPECT_EQ(made.at("execution").at("name").as_string(), run + "/component1");
  EXPECT_EQ(made.at("execution").at("state").as_string(), "COMPLETE");
  EXPECT_EQ(made.at("execution").at("properties").at("input.text").as_string(), "traced");
  EXPECT_EQ(made.at("contexts").as_array().at(0).at("type").as_string(), "PipelineRun");
  EXPECT_EQ(made.at("contexts").as_array().at(0).at("name").as_string(), run);
  const auto tasks = cohort({"lineage", "list", "--type", "PipelineTask", "--json"});
  ASSERT_EQ(tasks.exit_code, 0) << tasks.err;
  EXPECT_NE(tasks.out.find(run + "/component2"), std::string::npos) << tasks.out;
}

TEST(LocalRun, ABadPipelineStartsNothing) {
  Pipelines d;
  const std::string p = d.file("cycle.yaml", "name: c\nsteps:\n  a: {needs: [b], run: 'true'}\n  b: {needs: [a], run: 'true'}\n");
  const auto r = cohort({"pipeline", "run", p, "--local", "--dir", d.root()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("cohort: pipeline: run: " + p + ": steps.a: the tasks a, b wait for each other in a cycle"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(d.root()));
  const auto unknown = cohort({"pipeline", "run", fixture("fan_out_fan_in.yaml"), "--local", "--dir", d.root(),
                               "--param", "nn=3"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_FALSE(fs::exists(d.root()));
  const auto sbatch = cohort({"pipeline", "run", fixture("fan_out_fan_in.yaml"), "--local", "--dir", d.root(),
                              "--partition=gpu"});
  EXPECT_EQ(sbatch.exit_code, 2);
  EXPECT_NE(sbatch.err.find("--partition=gpu: sbatch's options have no use with --local"), std::string::npos) << sbatch.err;
  EXPECT_FALSE(fs::exists(d.root()));
}

TEST(LocalRun, ListAndStatusShowEveryRunAndItsDag) {
  Pipelines d;
  const std::string run = d.run(fixture("pipeline_with_after.yaml"));
  const auto list = cohort({"pipeline", "list", "--dir", d.root()});
  EXPECT_NE(list.out.find(run + "  pipeline-with-after  local  Succeeded  3/3"), std::string::npos) << list.out;
  const auto status = cohort({"pipeline", "status", run, "--dir", d.root()});
  EXPECT_NE(status.out.find("└─ print-text-3"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("◄ print-text, print-text-2"), std::string::npos) << status.out;
  const auto missing = cohort({"pipeline", "status", "no-such-run", "--dir", d.root()});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("no pipeline run 'no-such-run'"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace cohort::pipeline
