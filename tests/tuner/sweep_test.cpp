// `cohort sweep` as users meet it: local sweeps, their results, and the rules that end them.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/json.hpp"
#include "common/process.hpp"
#include "tuner/journal.hpp"
#include "tests/common/temp_dir.hpp"

namespace cohort::tuner {
namespace {

namespace fs = std::filesystem;

// A scratch directory with the helpers these tests use: a file in it, and the sweep's
// directory.
struct TempDir : ::cohort::testing::TempDir {
  std::string file(const std::string& name, const std::string& text) const {
    std::ofstream(*this / name) << text;
    return (*this / name).string();
  }
  std::string dir() const { return (*this / "sweep").string(); }
};

ProcessResult cohort(std::vector<std::string> args, const RunOptions& options = {}) {
  const char* bin = std::getenv("COHORT_BIN");
  args.insert(args.begin(), bin ? bin : "cohort");
  return run_process(args, options);
}

std::string fixture(const std::string& name) { return std::string(COHORT_TUNER_FIXTURES) + "/" + name; }

// x in -2..2; the trial prints loss = x².
const std::string kSquare = R"yaml(
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: grid}
parallelTrialCount: 2
parameters:
  - {name: x, parameterType: int, feasibleSpace: {min: "-2", max: "2"}}
trialTemplate:
  trialParameters: [{name: x, reference: x}]
  command: [sh, -c, 'echo "x is $COHORT_PARAM_X"; echo "loss=$(( ${trialParameters.x} * ${trialParameters.x} ))"']
)yaml";

json::Value status_json(const std::string& dir) {
  auto r = cohort({"sweep", "status", dir, "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out, "status");
}

TEST(Sweep, RunEndsEveryTrialAndBestIsTheMinimum) {
  TempDir t;
  auto r = cohort({"sweep", "run", t.file("square.yaml", kSquare), "--dir", t.dir()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json::Value s = status_json(t.dir());
  EXPECT_EQ(s.at("state").as_string(), "Succeeded");
  EXPECT_EQ(s.at("trials").as_array().size(), 5u);
  for (const auto& trial : s.at("trials").as_array()) EXPECT_EQ(trial.at("state").as_string(), "Succeeded");
  auto b = cohort({"sweep", "best", t.dir(), "--json"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  json::Value best = json::parse(b.out, "best");
  EXPECT_EQ(best.at("parameters").at("x").as_string(), "0");
  EXPECT_EQ(best.at("objective").as_double(), 0.0);
  EXPECT_EQ(best.at("metrics").at("loss").as_double(), 0.0);
  EXPECT_TRUE(best.find("trial"));
  // The parameter reached the trial's environment, and its stdout was kept.
  int id = static_cast<int>(best.at("trial").as_int());
  std::ifstream log(fs::path(t.dir()) / "trials" / std::to_string(id) / "stdout.log");
  std::string first;
  std::getline(log, first);
  EXPECT_EQ(first, "x is 0");
}

TEST(Sweep, StatusPrintsATableWithOneRowPerTrial) {
  TempDir t;
  ASSERT_EQ(cohort({"sweep", "run", t.file("square.yaml", kSquare), "--dir", t.dir()}).exit_code, 0);
  auto r = cohort({"sweep", "status", t.dir()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("experiment square: Succeeded (MaxTrialsReached"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("TRIAL  STATE      x   loss  DURATION  JOB"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("best: trial"), std::string::npos) << r.out;
}

TEST(Sweep, GoalEndsTheExperimentEarlyAsSucceeded) {
  TempDir t;
  std::string spec = kSquare;
  spec.replace(spec.find("parallelTrialCount: 2"), 21, "parallelTrialCount: 1");
  spec.replace(spec.find("objectiveMetricName: loss}"), 26, "objectiveMetricName: loss, goal: \"1\"}");
  auto r = cohort({"sweep", "run", t.file("square.yaml", spec), "--dir", t.dir()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json::Value s = status_json(t.dir());
  EXPECT_EQ(s.at("state").as_string(), "Succeeded");
  EXPECT_EQ(s.at("reason").as_string().rfind("GoalReached: trial 1", 0), 0u) << s.at("reason").as_string();
  EXPECT_EQ(s.at("trials").as_array().size(), 2u);  // x=-2 (loss 4), then x=-1 (loss 1)
}

TEST(Sweep, MaxFailedTrialCountEndsTheExperimentAsFailed) {
  TempDir t;
  std::string spec = kSquare;
  spec.replace(spec.find("parallelTrialCount: 2"), 21, "parallelTrialCount: 1\nmaxFailedTrialCount: 1");
  spec.replace(spec.find("command: [sh"), 12, "command: [false, sh");
  auto r = cohort({"sweep", "run", t.file("square.yaml", spec), "--dir", t.dir()});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  json::Value s = status_json(t.dir());
  EXPECT_EQ(s.at("state").as_string(), "Failed");
  EXPECT_EQ(s.at("reason").as_string().rfind("MaxFailedTrialsReached: 2 trials failed", 0), 0u);
  EXPECT_EQ(s.at("trials").as_array().size(), 2u);
  EXPECT_EQ(s.at("trials").as_array()[0].at("reason").as_string().rfind("exit status 1", 0), 0u);
}

TEST(Sweep, ATrialWithoutItsObjectiveFailsWithTheReason) {
  TempDir t;
  std::string spec = kSquare;
  spec.replace(spec.find("echo \"loss="), 11, "echo \"acc=");
  auto r = cohort({"sweep", "run", t.file("square.yaml", spec), "--dir", t.dir()});
  json::Value s = status_json(t.dir());
  const auto& trial = s.at("trials").as_array().at(0);
  EXPECT_EQ(trial.at("state").as_string(), "Failed");
  EXPECT_NE(trial.at("reason").as_string().find("reported no value of its objective metric 'loss'"), std::string::npos);
}

TEST(Sweep, ReportRecordsMetricsFromInsideTheTrial) {
  TempDir t;
  std::string spec = kSquare;
  spec.replace(spec.find("echo \"loss=$(("), 14, "\"$COHORT_BIN\" sweep report \"loss=$((");
  spec.replace(spec.find(" ))\"']"), 6, " ))\" accuracy=0.5']");
  spec.replace(spec.find("objectiveMetricName: loss}"), 26, "objectiveMetricName: loss, additionalMetricNames: [accuracy]}");
  auto r = cohort({"sweep", "run", t.file("square.yaml", spec), "--dir", t.dir()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto b = json::parse(cohort({"sweep", "best", t.dir(), "--json"}).out, "best");
  EXPECT_EQ(b.at("objective").as_double(), 0.0);
  EXPECT_EQ(b.at("metrics").at("accuracy").as_double(), 0.5);
}

TEST(Sweep, MedianStopStopsAClearlyBadTrialEarly) {
  TempDir t;
  // Trials run one at a time in list order; the last would never end on its own.
  std::string spec = R"yaml(
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: grid}
earlyStopping: {algorithmName: medianstop, algorithmSettings: [{name: min_trials_required, value: "3"}, {name: start_step, value: "3"}]}
parallelTrialCount: 1
parameters:
  - {name: level, parameterType: discrete, feasibleSpace: {list: ["1", "2", "3", "50"]}}
trialTemplate:
  trialParameters: [{name: level, reference: level}]
  command: [sh, -c, 'e=1; while [ ${trialParameters.level} -eq 50 ] || [ $e -le 5 ]; do echo "epoch=$e loss=${trialParameters.level}"; e=$((e+1)); sleep 0.01; done']
)yaml";
  auto r = cohort({"sweep", "run", t.file("stop.yaml", spec), "--dir", t.dir()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json::Value s = status_json(t.dir());
  const auto& trials = s.at("trials").as_array();
  ASSERT_EQ(trials.size(), 4u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(trials[i].at("state").as_string(), "Succeeded");
  EXPECT_EQ(trials[3].at("state").as_string(), "EarlyStopped");
  EXPECT_NE(trials[3].at("reason").as_string().find("worse than the median 2"), std::string::npos);
}

TEST(Sweep, AKatibDocumentWithAJobTrialSpecRuns) {
  TempDir t;
  auto r = cohort({"sweep", "run", fixture("katib-job.yaml"), "--dir", t.dir()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json::Value s = status_json(t.dir());
  EXPECT_EQ(s.at("experiment").as_string(), "katib-job");
  ASSERT_EQ(s.at("trials").as_array().size(), 4u);
  for (const auto& trial : s.at("trials").as_array()) {
    EXPECT_EQ(trial.at("state").as_string(), "Succeeded");
    EXPECT_EQ(trial.at("objective").as_double(), std::stod(trial.at("parameters").at("lr").as_string()));
    EXPECT_EQ(trial.at("metrics").at("accuracy").as_double(), 0.5);
  }
}

TEST(Sweep, RandomStateReproducesTheSweep) {
  TempDir a, b;
  auto params = [](const std::string& dir) {
    std::vector<std::string> out;
    json::Value s = status_json(dir);
    for (const auto& trial : s.at("trials").as_array()) out.push_back(json::write(trial.at("parameters")));
    std::sort(out.begin(), out.end());
    return out;
  };
  ASSERT_EQ(cohort({"sweep", "run", fixture("katib-job.yaml"), "--dir", a.dir()}).exit_code, 0);
  ASSERT_EQ(cohort({"sweep", "run", fixture("katib-job.yaml"), "--dir", b.dir()}).exit_code, 0);
  EXPECT_EQ(params(a.dir()), params(b.dir()));
}

TEST(Sweep, ABadSpecNamesTheFieldAndExits2) {
  TempDir t;
  std::string spec = kSquare;
  spec.replace(spec.find("max: \"2\""), 8, "max: \"-3\"");
  std::string path = t.file("bad.yaml", spec);
  auto r = cohort({"sweep", "run", path, "--dir", t.dir()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "cohort: sweep: " + path + ": parameters[0].feasibleSpace: min (-2) is greater than max (-3)\n");
  EXPECT_FALSE(fs::exists(t.dir()));
}

TEST(Sweep, ResumeMarksAbandonedTrialsKilledAndFinishesTheRest) {
  TempDir t;
  ASSERT_EQ(cohort({"sweep", "init", t.file("square.yaml", kSquare), "--dir", t.dir()}).exit_code, 0);
  // A runner on this host claimed trial 0 and died.
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  json::Value claim = json::Value::object();
  claim.set("type", "claim");
  claim.set("trial", 0);
  json::Value p = json::Value::object();
  p.set("x", "-2");
  claim.set("parameters", p);
  claim.set("host", host);
  claim.set("pid", static_cast<long>(pid));
  Journal(t.dir()).append(claim);
  auto r = cohort({"sweep", "resume", t.dir()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json::Value s = status_json(t.dir());
  EXPECT_EQ(s.at("state").as_string(), "Succeeded");
  const auto& trials = s.at("trials").as_array();
  ASSERT_EQ(trials.size(), 6u);
  EXPECT_EQ(trials[0].at("state").as_string(), "Killed");
  std::set<std::string> xs;
  for (size_t i = 1; i < trials.size(); ++i) {
    EXPECT_EQ(trials[i].at("state").as_string(), "Succeeded");
    xs.insert(trials[i].at("parameters").at("x").as_string());
  }
  EXPECT_EQ(xs, (std::set<std::string>{"-2", "-1", "0", "1", "2"}));
}

// scancel signals every process of the job's step, one after another: the trial may die of
// it first, and the runner's own signal come while the runner asks Slurm whether the job is
// being cancelled (and end that query too). The trial was stopped from outside all the same.
TEST(Sweep, ATrialEndedByTheJobsCancelIsKilledWhenTheRunnersSignalComesLate) {
  TempDir t;
  fs::create_directory(t / "bin");
  // This scontrol is the moment the runner's SIGTERM arrives: it signals the runner, then
  // dies of the same signal, as a query started inside the cancelled step does.
  const std::string scontrol = t.file("bin/scontrol", "#!/bin/sh\nkill -TERM $PPID\nkill -TERM $$\n");
  ASSERT_EQ(::chmod(scontrol.c_str(), 0755), 0);
  const std::string spec = R"yaml(
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: grid}
maxTrialCount: 1
parameters:
  - {name: x, parameterType: int, feasibleSpace: {min: "1", max: "1"}}
trialTemplate:
  trialParameters: [{name: x, reference: x}]
  command: [sh, -c, 'kill -TERM $$']
)yaml";
  RunOptions o;
  o.env = {"PATH=" + (t / "bin").string() + ":" + std::getenv("PATH"), "SLURM_JOB_ID=4242"};
  cohort({"sweep", "run", t.file("one.yaml", spec), "--dir", t.dir()}, o);
  json::Value s = status_json(t.dir());
  const auto& trials = s.at("trials").as_array();
  ASSERT_EQ(trials.size(), 1u);
  EXPECT_EQ(trials[0].at("state").as_string(), "Killed") << trials[0].at("reason").as_string();
}

TEST(Sweep, PlotWritesAnSvgWithOnePointPerTrial) {
  TempDir t;
  ASSERT_EQ(cohort({"sweep", "run", t.file("square.yaml", kSquare), "--dir", t.dir()}).exit_code, 0);
  std::string out = (t / "plot.svg").string();
  auto r = cohort({"sweep", "plot", t.dir(), "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(out);
  std::string svg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  size_t circles = 0;
  for (size_t at = 0; (at = svg.find("<circle", at)) != std::string::npos; ++at) ++circles;
  EXPECT_EQ(circles, 5u);
  EXPECT_NE(svg.find("best so far"), std::string::npos);
}

// A user whose umask lets everyone write still gets an experiment only they can change:
// the journal steers every task of the sweep.
TEST(Sweep, AnOpenUmaskStillLeavesTheExperimentPrivate) {
  TempDir t;
  const std::string spec = t.file("square.yaml", kSquare);
  const mode_t old = ::umask(0);
  auto r = cohort({"sweep", "run", spec, "--dir", t.dir()});
  auto plot = cohort({"sweep", "plot", t.dir(), "--out", (t / "plot.svg").string()});
  ::umask(old);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(plot.exit_code, 0) << plot.err;
  auto mode = [](const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  };
  const fs::path dir = t.dir();
  for (const auto& d : {dir, dir / "trials", dir / "slurm", dir / "trials" / "0"}) EXPECT_EQ(mode(d), 0700u) << d;
  for (const auto& f : {dir / "experiment.yaml", dir / "journal.jsonl", dir / "trials" / "0" / "stdout.log",
                        dir / "trials" / "0" / "stderr.log", t / "plot.svg"}) {
    EXPECT_EQ(mode(f), 0644u) << f;
  }
}

TEST(Sweep, SubmitKeepsTheArrayToItself) {
  TempDir t;
  auto r = cohort({"sweep", "submit", t.file("square.yaml", kSquare), "--dir", t.dir(), "--array=0-3"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--array is the sweep's own"), std::string::npos) << r.err;
}

TEST(Sweep, StatusOfADirectoryThatHoldsNoExperimentSaysSo) {
  TempDir t;
  auto r = cohort({"sweep", "status", t.path().string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not an experiment directory (no experiment.yaml)"), std::string::npos) << r.err;
}

TEST(Sweep, ReportOutsideATrialIsAUsageError) {
  auto r = cohort({"sweep", "report", "loss=1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("run it inside a trial"), std::string::npos) << r.err;
  TempDir t;
  RunOptions options;
  options.env = {"COHORT_SWEEP_DIR=" + t.dir(), "COHORT_TRIAL_ID=first"};
  const char* bin = std::getenv("COHORT_BIN");
  r = run_process({bin ? bin : "cohort", "sweep", "report", "loss=1"}, options);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("COHORT_TRIAL_ID=first is not a trial number"), std::string::npos) << r.err;
}

// Katib's StdOut collector reads a container's whole log; Python's logging writes stderr.
TEST(Sweep, MetricsOnStderrCountAsOnStdout) {
  TempDir t;
  std::string spec = kSquare;
  spec.replace(spec.find(" ))\"']"), 6, " ))\" >&2']");
  auto r = cohort({"sweep", "run", t.file("square.yaml", spec), "--dir", t.dir()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto b = json::parse(cohort({"sweep", "best", t.dir(), "--json"}).out, "best");
  EXPECT_EQ(b.at("objective").as_double(), 0.0);
  // Each stream keeps its own log.
  std::ifstream err(fs::path(t.dir()) / "trials" / "0" / "stderr.log");
  std::string line;
  std::getline(err, line);
  EXPECT_EQ(line.rfind("loss=", 0), 0u) << line;
}

TEST(Sweep, AWrongMetricNameListsTheNamesTheTrialPrinted) {
  TempDir t;
  std::string spec = kSquare;
  spec.replace(spec.find("echo \"loss="), 11, "echo \"Loss=");
  cohort({"sweep", "run", t.file("square.yaml", spec), "--dir", t.dir()});
  json::Value s = status_json(t.dir());
  const std::string reason = s.at("trials").as_array().at(0).at("reason").as_string();
  EXPECT_NE(reason.find("reported no value of its objective metric 'loss' (it reported: Loss)"), std::string::npos) << reason;
  // best says why there is none, rather than that none has succeeded "yet".
  auto best = cohort({"sweep", "best", t.dir()});
  EXPECT_EQ(best.exit_code, 1);
  EXPECT_NE(best.err.find("no trial succeeded; the experiment ended Succeeded (MaxTrialsReached: all 5 trials ended); "
                          "trial 0: the trial reported no value of its objective metric 'loss' (it reported: Loss)"),
            std::string::npos)
      << best.err;
}

TEST(Sweep, AFileCollectorReadsTheFileTheTrialWritesInItsFormat) {
  TempDir t;
  std::string spec = kSquare;
  spec.replace(spec.find("echo \"loss=$(("), 14, "echo loss=1000; echo \"{\\\"loss\\\": \\\"$((");
  spec.replace(spec.find(" ))\"']"), 6, " ))\\\"}\" >\"$COHORT_METRICS_FILE\"']");
  spec += "metricsCollectorSpec:\n  collector: {kind: File}\n  source: {fileSystemPath: {path: out/metrics.json, format: JSON}}\n";
  auto r = cohort({"sweep", "run", t.file("square.yaml", spec), "--dir", t.dir()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto b = json::parse(cohort({"sweep", "best", t.dir(), "--json"}).out, "best");
  EXPECT_EQ(b.at("objective").as_double(), 0.0);  // the file's, not stdout's 1000
  EXPECT_TRUE(fs::exists(fs::path(t.dir()) / "trials" / "0" / "out" / "metrics.json"));
}

}  // namespace
}  // namespace cohort::tuner
