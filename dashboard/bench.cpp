#include "dashboard/bench.hpp"

#include <cmath>
#include <fstream>
#include <iostream>
#include <thread>

#include "common/bench.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/options.hpp"
#include "common/scratch_dir.hpp"
#include "dashboard/dashboard.hpp"
#include "lineage/store.hpp"
#include "tuner/report.hpp"
#include "tuner/runner.hpp"

namespace cohort::dashboard {
namespace {

namespace fs = std::filesystem;
namespace po = options::po;

struct Settings {
  int trials = 1000;
  int runs = 20;
  bool json = false;
};

// A trial's loss at each of 20 steps, falling to `last`: "[[1,v],…]", as its journal keeps it.
std::string curve(double last) {
  std::string out = "[";
  for (int step = 1; step <= 20; ++step) {
    out += (step > 1 ? ",[" : "[") + std::to_string(step) + "," + std::to_string(last * (1 + 2.0 / step)) + "]";
  }
  return out + "]";
}

// An ended sweep of `trials` trials over three parameters, each with a 20-step curve,
// written as its journal would be, and the lineage store that names it; the sweep's context id.
std::int64_t make_sweep(const fs::path& dir, int trials) {
  fs::create_directories(dir);
  std::ofstream(dir / "exp.yaml")
      << "metadata: {name: bench}\nparameters:\n"
         "  - {name: lr, parameterType: double, feasibleSpace: {min: \"0.0001\", max: \"0.1\", distribution: logUniform}}\n"
         "  - {name: layers, parameterType: int, feasibleSpace: {min: \"1\", max: \"8\"}}\n"
         "  - {name: optimizer, parameterType: categorical, feasibleSpace: {list: [sgd, adam, rmsprop]}}\n"
         "trialTemplate: {command: [\"true\"]}\nobjective: {type: minimize, objectiveMetricName: loss}\n"
         "algorithm: {algorithmName: random}\nmaxTrialCount: "
      << trials << "\n";
  const fs::path sweep = dir / "sweep";
  tuner::init_experiment_dir(dir / "exp.yaml", sweep);
  std::string journal;
  for (int i = 0; i < trials; ++i) {
    const double lr = 0.0001 * std::pow(1000.0, (i * 37 % 101) / 100.0), loss = 0.1 + (i * 53 % 97) / 97.0;
    journal += "{\"type\":\"claim\",\"trial\":" + std::to_string(i) + ",\"time\":1,\"parameters\":{\"lr\":\"" +
               std::to_string(lr) + "\",\"layers\":\"" + std::to_string(1 + i % 8) + "\",\"optimizer\":\"" +
               (i % 3 == 0 ? "sgd" : i % 3 == 1 ? "adam" : "rmsprop") + "\"}}\n";
    journal += "{\"type\":\"end\",\"trial\":" + std::to_string(i) + ",\"state\":\"Succeeded\",\"time\":2,\"objective\":" +
               std::to_string(loss) + ",\"metrics\":{\"loss\":" + std::to_string(loss) + "},\"curve\":" + curve(loss) + "}\n";
  }
  std::ofstream(sweep / "journal.jsonl", std::ios::app) << journal;
  auto store = lineage::Store::open(dir / "lineage.db");
  return store.put_context({.type = "Experiment", .name = sweep.string()});
}

}  // namespace

int bench_command(const std::vector<std::string>& args) {
  Settings s;
  options::Parser parser({.name = "bench dashboard",
                          .usage = {"[--trials N] [--runs N] [--json]"},
                          .description =
                              "Times, in this process, what the server does for a sweep's page (/sweeps/ID) and its\n"
                              "API answer (/api/sweeps/ID) with N trials, against reading the same journal and\n"
                              "writing its status JSON alone (`cohort sweep status --json`), in the same run. Then\n"
                              "loads /jobs 100 times from 8 threads and counts how often Slurm was asked.",
                          .examples = {"cohort bench dashboard", "cohort bench dashboard --trials 10000 --json"}});
  parser.add()("trials", po::value(&s.trials)->value_name("N"), "trials in the sweep (1000)")(
      "runs", po::value(&s.runs)->value_name("N"), "timed runs of each; figures are medians (20)")(
      "json", po::bool_switch(&s.json), "print one JSON object instead of the table");
  if (!parser.parse(args)) return 0;
  if (s.trials < 1 || s.runs < 1) throw input_error("--trials and --runs must be at least 1");
  const fs::path dir = fs::temp_directory_path() / ("cohort-bench-dashboard." + unguessable_name(8));
  const RemovedAtExit cleanup(dir);
  const std::string id = std::to_string(make_sweep(dir, s.trials));
  App app({.store = dir / "lineage.db", .user = "nobody", .slurm_every = std::chrono::seconds(5)});
  const auto timed = [](const std::function<void()>& body) { return [body] { return bench::seconds(body) * 1000; }; };
  const auto page = [&](const std::string& target) {
    if (app.get(target).status != 200) throw Error(target + ": the dashboard did not answer 200");
  };
  const auto summaries = bench::alternate(
      {.warmup = 2, .runs = s.runs},
      {timed([&] { json::write(tuner::status_json(tuner::open_experiment_dir(dir / "sweep"), tuner::Journal(dir / "sweep").read())); }),
       timed([&] { page("/api/sweeps/" + id); }), timed([&] { page("/sweeps/" + id); })});
  bench::Report report("dashboard");
  report.context("trials", s.trials);
  report.context("runs", s.runs);
  auto& table = report.table("sweep", "server time per request, medians, against reading the journal alone",
                             {{.name = "request", .text = true}, {.name = "median", .unit = "ms", .digits = 2},
                              {.name = "spread", .unit = "%", .digits = 1}, {.name = "ratio", .digits = 2}});
  const char* names[] = {"journal + status JSON (baseline)", "/api/sweeps/ID", "/sweeps/ID (page)"};
  for (int i = 0; i < 3; ++i) {
    table.add({names[i], summaries[i].median, summaries[i].spread() * 100, bench::number(summaries[i].median / summaries[0].median)});
  }
  std::vector<std::thread> browsers;
  for (int b = 0; b < 8; ++b) browsers.emplace_back([&] {
    for (int i = 0; i < 100 / 8 + 1; ++i) app.get("/api/jobs");
  });
  for (auto& t : browsers) t.join();
  report.figure({.name = "sweep_page_ms", .label = "sweep page", .value = summaries[2].median, .unit = "ms",
                 .note = summaries[2].median <= 100 ? "(target <= 100 ms: met)" : "(target <= 100 ms: missed)"});
  report.figure({.name = "slurm_asks", .label = "Slurm asked, for 104 job pages", .value = app.slurm_queries(), .digits = 0});
  report.print(std::cout, s.json);
  return 0;
}

}  // namespace cohort::dashboard
