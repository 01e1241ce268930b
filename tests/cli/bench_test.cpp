// `cohort bench` as users meet it: one command listing every area, and every area printing
// the same table format and the same JSON shape. Runs are kept tiny: these check the shape
// and the sums, never a speed.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "common/json.hpp"
#include "common/process.hpp"
#include "tests/common/temp_dir.hpp"

namespace cohort {
namespace {

// The areas in the order `cohort bench --help` lists them; torch and json where the build has them.
const std::vector<std::string> kAreas = [] {
  std::vector<std::string> areas{"collectives", "ckpt", "sweep", "topo", "launch", "lineage", "pipeline", "dashboard", "serve"};
#ifdef COHORT_HAVE_TORCH_BENCH
  areas.push_back("torch");
#endif
#ifdef COHORT_HAVE_JSON_BENCH
  areas.push_back("json");
#endif
  return areas;
}();
const std::string kAreaList = [] {
  std::string list;
  for (const auto& a : kAreas) list += (list.empty() ? "" : ", ") + a;
  return list;
}();

ProcessResult cohort(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
  const char* bin = std::getenv("COHORT_BIN");
  args.insert(args.begin(), bin ? bin : "cohort");
  RunOptions options;
  options.env = env;
  options.timeout = std::chrono::minutes(3);
  return run_process(args, options);
}

// Two ranks of `cohort bench collectives`, as the benchmark is meant to run.
ProcessResult collectives(std::vector<std::string> args) {
  const char* bin = std::getenv("COHORT_BIN");
  args.insert(args.begin(), {COHORT_MPIEXEC, "-n", "2", "--oversubscribe", bin ? bin : "cohort", "bench",
                             "collectives"});
  RunOptions options;
  options.env = {"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1", "OMPI_MCA_rmaps_base_oversubscribe=1"};
  options.timeout = std::chrono::minutes(3);
  return run_process(args, options);
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The shape every area's --json has: what ran, tables of named columns whose rows hold
// exactly those columns, a summary and notes.
void expect_report_shape(const json::Value& j, const std::string& area) {
  EXPECT_EQ(j.at("bench").as_string(), area);
  EXPECT_TRUE(j.at("context").is_object());
  EXPECT_TRUE(j.at("summary").is_object());
  EXPECT_TRUE(j.at("notes").is_array());
  ASSERT_FALSE(j.at("tables").as_array().empty());
  for (const auto& table : j.at("tables").as_array()) {
    EXPECT_TRUE(table.at("name").is_string());
    EXPECT_TRUE(table.at("title").is_string());
    std::vector<std::string> names;
    for (const auto& column : table.at("columns").as_array()) {
      names.push_back(column.at("name").as_string());
      EXPECT_TRUE(column.at("unit").is_string());
    }
    ASSERT_FALSE(table.at("rows").as_array().empty()) << table.at("name").as_string();
    for (const auto& row : table.at("rows").as_array()) {
      std::vector<std::string> keys;
      for (const auto& [key, value] : row.as_object()) keys.push_back(key);
      EXPECT_EQ(keys, names);
    }
  }
}

const json::Value& table(const json::Value& j, const std::string& name) {
  for (const auto& t : j.at("tables").as_array()) {
    if (t.at("name").as_string() == name) return t;
  }
  throw std::runtime_error("no table " + name);
}

TEST(BenchCommand, HelpListsEveryAreaWithOneLineEach) {
  auto r = cohort({"bench", "--help"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("usage: cohort bench <area>", 0), 0u) << r.out;
  for (const auto& area : kAreas) EXPECT_TRUE(has(r.out, "\n  " + area + " ")) << area << "\n" << r.out;
  EXPECT_TRUE(has(r.out, "example:")) << r.out;
  EXPECT_EQ(cohort({"help", "bench"}).out, r.out);
  EXPECT_TRUE(has(cohort({"help"}).out, "\n  bench ")) << "the command table lists bench";
}

TEST(BenchCommand, AnUnknownAreaIsAUsageErrorListingTheAreas) {
  auto r = cohort({"bench", "frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, std::string("cohort: bench: unknown area 'frobnicate' (areas: ") + kAreaList +
                       "; see 'cohort bench --help')\n");
  EXPECT_EQ(cohort({"bench"}).exit_code, 2);
}

TEST(BenchCommand, TheBenchmarksLiveOnlyUnderBench) {
  for (const auto& old : {std::vector<std::string>{"ckpt", "bench", "--help"}, {"sweep", "bench", "--help"}}) {
    auto r = cohort(old);
    EXPECT_EQ(r.exit_code, 2) << old[0];
    EXPECT_TRUE(has(r.err, "unknown verb 'bench'")) << r.err;
  }
}

TEST(BenchCommand, EveryAreaHasHelpWithAnExample) {
  for (const auto& area : kAreas) {
    auto r = cohort({"bench", area, "--help"});
    EXPECT_EQ(r.exit_code, 0) << area << ": " << r.err;
    EXPECT_EQ(r.out.rfind("usage: cohort bench " + std::string(area), 0), 0u) << r.out;
    EXPECT_TRUE(has(r.out, "--json")) << r.out;
    EXPECT_TRUE(has(r.out, "\nexample:\n")) << r.out;
  }
}

TEST(BenchCommand, DashboardTimesASweepPageAgainstItsJournalAndAsksSlurmOnce) {
  auto r = cohort({"bench", "dashboard", "--trials", "50", "--runs", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  expect_report_shape(j, "dashboard");
  const auto& rows = table(j, "sweep").at("rows").as_array();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows.front().at("ratio").as_double(), 1.0);
  EXPECT_GT(j.at("summary").at("sweep_page_ms").as_double(), 0);
  EXPECT_EQ(j.at("summary").at("slurm_asks").as_int(), 1);
}

#ifdef COHORT_HAVE_JSON_BENCH
TEST(BenchCommand, JsonTimesEveryLibraryAgainstCohortsOwnOnBothBodies) {
  auto r = cohort({"bench", "json", "--runs", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  expect_report_shape(j, "json");
  for (const char* name : {"v2_784", "v2_100000"}) {
    const auto& rows = table(j, name).at("rows").as_array();
    ASSERT_FALSE(rows.empty()) << name;
    // The first row of each operation is the baseline, at a ratio of exactly 1.
    EXPECT_EQ(rows.front().at("library").as_string(), "cohort::json (baseline)") << name;
    EXPECT_EQ(rows.front().at("ratio").as_double(), 1.0) << name;
  }
}
#endif

TEST(BenchCommand, TopoComparesItsCallsWithHwlocInTheTableAndInJson) {
  auto text = cohort({"bench", "topo", "--runs", "2"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_EQ(text.out.rfind("# cohort bench topo: runs 2, fixtures ", 0), 0u) << text.out;
  EXPECT_TRUE(has(text.out, "\n# case ")) << text.out;
  EXPECT_TRUE(has(text.out, "\n  DGX-style, 2 sockets, 8 GPUs, 9 NICs  hwloc XML load (baseline) ")) << text.out;
  EXPECT_TRUE(has(text.out, "\n# slowest load : ")) << text.out;
  auto r = cohort({"bench", "topo", "--runs", "2", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  expect_report_shape(j, "topo");
  const auto& rows = table(j, "placement").at("rows").as_array();
  ASSERT_EQ(rows.size(), 10u);
  EXPECT_DOUBLE_EQ(rows[0].at("ratio").as_double(), 1.0);
  EXPECT_EQ(rows[2].at("call").as_string(), "plan 8 ranks");
  EXPECT_TRUE(rows[9].at("ratio").is_null());
  EXPECT_TRUE(j.at("summary").at("slowest_load_ms").is_number());
  auto bad = cohort({"bench", "topo", "--runs", "0"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.err, "cohort: bench: topo: --runs 0: expected a whole number from 1 to 1000000\n");
  EXPECT_EQ(cohort({"bench", "topo", "/nonexistent"}).exit_code, 1);
}

TEST(BenchCommand, SweepComparesTheSamplersWithOptunasSavedRun) {
  testing::TempDir tmp;
  const std::string saved = (tmp / "optuna.json").string();
  std::ofstream(saved) << R"({"branin": [1.0], "hartmann6": [-2.0], "rosenbrock10": [100.0], "mixed": [1.0],
                              "suggest_ms_200": 10.0})";
  auto r = cohort({"bench", "sweep", "--trials", "3", "--seeds", "1", "--algorithms", "random,tpe", "--optuna-json",
                   saved, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  expect_report_shape(j, "sweep");
  const auto& quality = table(j, "quality").at("rows").as_array();
  ASSERT_EQ(quality.size(), 12u) << "Optuna and two samplers on four problems";
  EXPECT_EQ(quality[0].at("sampler").as_string(), "Optuna TPE (baseline)");
  EXPECT_DOUBLE_EQ(quality[0].at("best").as_double(), 1.0);
  EXPECT_EQ(quality[1].at("sampler").as_string(), "random");
  EXPECT_EQ(table(j, "suggestion").at("rows").as_array().size(), 4u);
  EXPECT_EQ(table(j, "hyperband").at("rows").as_array().size(), 2u);
  EXPECT_EQ(j.at("context").at("trials").as_int(), 3);

  auto text = cohort({"bench", "sweep", "--trials", "3", "--seeds", "1", "--algorithms", "tpe", "--no-optuna"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_EQ(text.out.rfind("# cohort bench sweep: trials 3, seeds 1, algorithms tpe", 0), 0u) << text.out;
  EXPECT_TRUE(has(text.out, "\n# problem ")) << text.out;
  EXPECT_FALSE(has(text.out, "Optuna TPE (baseline)")) << text.out;
}

TEST(BenchCommand, ASweepSettingThatIsNoNameAndValueIsAUsageError) {
  auto r = cohort({"bench", "sweep", "--setting", "gamma"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "cohort: bench: sweep: --setting gamma: expected NAME=VALUE\n");
}

TEST(BenchCommand, CollectivesChecksEveryResultOfEveryOperationAgainstTheMpiBaseline) {
  for (const char* op : {"allreduce", "allgather", "reduce_scatter", "broadcast"}) {
    SCOPED_TRACE(op);
    auto r = collectives({"--op", op, "--sizes", "64:4K", "--iters", "2", "--warmup", "1", "--rounds", "2", "--baseline",
                          "mpi", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = json::parse(r.out);
    expect_report_shape(j, "collectives");
    EXPECT_EQ(j.at("context").at("op").as_string(), op);
    const auto& rows = table(j, op).at("rows").as_array();
    ASSERT_EQ(rows.size(), 7u) << "64 B to 4 KiB, doubling";
    EXPECT_EQ(rows[0].at("size").as_int(), 64);
    for (const auto& row : rows) {
      EXPECT_EQ(row.at("wrong").as_int(), 0);
      EXPECT_TRUE(row.at("baseline").is_number());
    }
    EXPECT_EQ(j.at("summary").at("wrong").as_int(), 0);
    EXPECT_TRUE(j.at("summary").at("memcpy_GBps").is_number());
  }
  auto text = collectives({"--sizes", "8:16", "--iters", "1", "--warmup", "0", "--rounds", "1"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_EQ(text.out.rfind("# cohort bench collectives: op allreduce, ranks 2, backend mpi", 0), 0u) << text.out;
  EXPECT_TRUE(has(text.out, "\n# Out of bounds values : 0 OK\n")) << text.out;
  EXPECT_TRUE(has(text.out, "\n# Avg bus bandwidth    : ")) << text.out;
}

TEST(BenchCommand, CollectivesBadInputIsRefusedBeforeAnythingRuns) {
  for (const auto& [args, message] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--op", "alltoall"}, "--op alltoall: unknown operation (use allreduce, allgather, reduce_scatter or broadcast)"},
           {{"--sizes", "64M:8"}, "--sizes 64M:8: need 0 < MIN <= MAX (for example 8:64M)"},
           {{"--iters", "x"}, "--iters x: expected a whole number from 1 to 1000000"},
           {{"--frobnicate"}, "unrecognised option '--frobnicate' (see 'cohort bench collectives --help')"}}) {
    auto full = args;
    full.insert(full.begin(), {"bench", "collectives"});
    auto r = cohort(full);
    EXPECT_EQ(r.exit_code, 2) << message;
    EXPECT_EQ(r.err, "cohort: bench: collectives: " + message + "\n");
  }
}

// A stand-in Slurm on PATH: sbatch writes what the batch job would have written (four
// launches of each kind, two teardowns) and records how it was called.
void fake_slurm(const testing::TempDir& tmp) {
  const auto bin = tmp / "bin";
  std::filesystem::create_directory(bin);
  auto script = [&](const std::string& name, const std::string& body) {
    std::ofstream((bin / name).string()) << "#!/bin/bash\n" << body;
    ::chmod((bin / name).c_str(), 0755);
  };
  script("sinfo", "exit 0\n");
  script("squeue", "exit 0\n");
  script("scancel", "exit 0\n");
  script("sbatch",
         "echo \"$@\" >" + (tmp / "sbatch.args").string() + "\n"
         "for a; do job=$a; done\n"
         "cp \"$job\" " + (tmp / "job.sh").string() + "\n"
         "work=$(dirname \"$job\")\n"
         "printf 'srun 30000000\\ncohort 36000000\\nsrun 32000000\\ncohort 40000000\\n' >\"$work/results\"\n"
         "printf 'srun 31000000\\ncohort 37000000\\nsrun 60000000\\ncohort 39000000\\n' >>\"$work/results\"\n"
         "echo 'cohort: launch: gang torn down in 0.19 s' >\"$work/teardown.log\"\n"
         "echo 'cohort: launch: gang torn down in 0.21 s' >>\"$work/teardown.log\"\n"
         "echo '4242;cluster'\n");
}

TEST(BenchCommand, LaunchTakesTheMediansOfTheBatchJobsLaunches) {
  testing::TempDir tmp;
  fake_slurm(tmp);
  const std::string path = "PATH=" + (tmp / "bin").string() + ":" + std::getenv("PATH");
  auto r = cohort({"bench", "launch", "--nodes", "3", "--repeat", "4", "--json"}, {path, "SLURM_CONF="});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  expect_report_shape(j, "launch");
  EXPECT_EQ(j.at("context").at("ranks").as_int(), 6);
  const auto& rows = table(j, "launch").at("rows").as_array();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_DOUBLE_EQ(rows[0].at("median").as_double(), 31.5);
  EXPECT_DOUBLE_EQ(rows[1].at("median").as_double(), 38.0);
  EXPECT_DOUBLE_EQ(rows[1].at("ratio").as_double(), 38.0 / 31.5);
  EXPECT_DOUBLE_EQ(rows[2].at("median").as_double(), 200.0);
  std::ifstream args((tmp / "sbatch.args").string());
  std::string line;
  std::getline(args, line);
  EXPECT_EQ(line.rfind("--parsable -N 3 --ntasks-per-node=2 -o ", 0), 0u) << line;
  std::ifstream job((tmp / "job.sh").string());
  const std::string script{std::istreambuf_iterator<char>(job), {}};
  EXPECT_TRUE(has(script, "for i in $(seq 4); do")) << script;
  EXPECT_TRUE(has(script, " launch -- bash -c ")) << script;

  auto text = cohort({"bench", "launch"}, {path, "SLURM_CONF="});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_TRUE(has(text.out, "\n  plain srun: start to all running (baseline)  ")) << text.out;
}

#ifdef COHORT_HAVE_TORCH
TEST(BenchCommand, ServeLoadsEveryCaseAgainstItsBaselineAndReportsTheLatency) {
  auto r = cohort({"bench", "serve", "--duration", "1", "--repeat", "1", "--connections", "8", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  expect_report_shape(j, "serve");
  std::vector<std::string> cases;
  for (const auto& row : table(j, "throughput").at("rows").as_array()) {
    cases.push_back(row.at("case").as_string());
    // A run of 1 s may end before a slow build's first batch of the big MLP does: a rate of
    // 0 is a measurement, and its ratio is null rather than a number built on it.
    const double cohort = row.at("cohort").as_double(), baseline = row.at("baseline").as_double();
    EXPECT_GE(cohort, 0) << cases.back();
    if (cohort > 0 && baseline > 0) EXPECT_DOUBLE_EQ(row.at("ratio").as_double(), cohort / baseline);
    else EXPECT_TRUE(row.at("ratio").is_null() || row.at("ratio").as_double() == 0) << cases.back();
  }
  EXPECT_GT(table(j, "throughput").at("rows").as_array().at(0).at("cohort").as_double(), 0);  // the ceiling
  EXPECT_EQ(cases, (std::vector<std::string>{"ceiling", "flask", "batching", "binary", "router"}));
  const auto& latency = table(j, "latency").at("rows").as_array().at(0);
  EXPECT_GT(latency.at("p50").as_double(), 0);
  EXPECT_GE(latency.at("p99").as_double(), latency.at("p50").as_double());
  // The router's paced runs: the replica alone, then through the router, both answered.
  const auto& paced = table(j, "router_latency").at("rows").as_array();
  ASSERT_EQ(paced.size(), 2u);
  for (const auto& row : paced) {
    EXPECT_GT(row.at("rate").as_double(), 0) << row.at("path").as_string();
    EXPECT_GE(row.at("p99").as_double(), row.at("p50").as_double()) << row.at("path").as_string();
  }
  EXPECT_TRUE(has(r.err, "cohort bench serve: batching"));  // progress, as it goes
  EXPECT_EQ(cohort({"bench", "serve", "--repeat", "0"}).exit_code, 2);
}
#endif

#ifdef COHORT_HAVE_TORCH_BENCH
TEST(BenchCommand, TorchTimesEachSizeOnBothBackendsAndADdpStepWithEqualGradients) {
  auto r = cohort({"bench", "torch", "--sizes", "8:4K", "--repeat", "1", "--ddp-steps", "1", "--port", "29611", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  expect_report_shape(j, "torch");
  std::vector<std::string> sizes;
  for (const auto& row : table(j, "allreduce").at("rows").as_array()) {
    sizes.push_back(row.at("size").as_string());
    EXPECT_GT(row.at("cohort").as_double(), 0);
    EXPECT_GT(row.at("gloo").as_double(), 0);
  }
  EXPECT_EQ(sizes, (std::vector<std::string>{"8", "64", "512", "4K"}));
  const auto& ddp = table(j, "ddp").at("rows").as_array().at(0);
  EXPECT_GT(ddp.at("parameters").as_double(), 20);  // millions
  EXPECT_LT(ddp.at("grad diff").as_double(), 1e-5);  // both backends sum the same gradients
  EXPECT_EQ(cohort({"bench", "torch", "--ranks", "0"}).exit_code, 2);
}
#endif

TEST(BenchCommand, LaunchWithoutSlurmIsAUsageErrorSayingHowToGetOne) {
  testing::TempDir tmp;
  fake_slurm(tmp);
  std::ofstream((tmp / "bin" / "sinfo").string()) << "#!/bin/bash\nexit 1\n";
  const std::string path = "PATH=" + (tmp / "bin").string() + ":" + std::getenv("PATH");
  auto r = cohort({"bench", "launch"}, {path, "SLURM_CONF="});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "no Slurm cluster here (start one: scripts/minicluster up")) << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp / "sbatch.args"));
}

}  // namespace
}  // namespace cohort
