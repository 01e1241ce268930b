// `cohort bench sweep`: search quality and suggestion time of cohort's samplers, against
// Optuna's TPESampler run in the same benchmark (bench/tuner_optuna.py) on the same
// problems, budgets and seeds.
//
// For each problem: the median over seeds of the best objective after --trials trials, and
// its regret (best − the known optimum) as a ratio to Optuna TPE's regret: below 1 is better.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "tuner/bench.hpp"

#include "common/bench.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/json.hpp"
#include "common/options.hpp"
#include "common/process.hpp"
#include "common/text.hpp"
#include "tuner/sampler.hpp"

namespace cohort::tuner {
namespace {

namespace po = options::po;

struct Problem {
  std::string name;
  std::string parameters;  // the spec's parameters
  double optimum;
  std::function<double(const Point&)> f;
};

double branin(const Point& p) {
  double x1 = p[0], x2 = p[1], b = 5.1 / (4 * M_PI * M_PI), c = 5 / M_PI;
  return std::pow(x2 - b * x1 * x1 + c * x1 - 6, 2) + 10 * (1 - 1 / (8 * M_PI)) * std::cos(x1) + 10;
}

double hartmann6(const Point& x) {
  static const double A[4][6] = {{10, 3, 17, 3.5, 1.7, 8}, {0.05, 10, 17, 0.1, 8, 14}, {3, 3.5, 1.7, 10, 17, 8}, {17, 8, 0.05, 10, 0.1, 14}};
  static const double P[4][6] = {{1312, 1696, 5569, 124, 8283, 5886}, {2329, 4135, 8307, 3736, 1004, 9991},
                                 {2348, 1451, 3522, 2883, 3047, 6650}, {4047, 8828, 8732, 5743, 1091, 381}};
  static const double alpha[4] = {1.0, 1.2, 3.0, 3.2};
  double s = 0;
  for (int i = 0; i < 4; ++i) {
    double e = 0;
    for (int j = 0; j < 6; ++j) e += A[i][j] * std::pow(x[j] - P[i][j] * 1e-4, 2);
    s += alpha[i] * std::exp(-e);
  }
  return -s;
}

double rosenbrock(const Point& x) {
  double s = 0;
  for (size_t i = 0; i + 1 < x.size(); ++i) s += 100 * std::pow(x[i + 1] - x[i] * x[i], 2) + std::pow(1 - x[i], 2);
  return s;
}

double mixed(const Point& p) {
  static const double cost[3] = {1, 0, 2};
  return std::pow(p[0] - 1, 2) + std::pow(p[1] - 7, 2) / 10 + std::pow(std::log10(p[2]) + 2, 2) + cost[static_cast<int>(p[3])];
}

std::string doubles(const std::string& prefix, int n, const std::string& lo, const std::string& hi) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    out += "  - {name: " + prefix + std::to_string(i) + ", parameterType: double, feasibleSpace: {min: \"" + lo +
           "\", max: \"" + hi + "\"}}\n";
  }
  return out;
}

std::vector<Problem> problems() {
  return {
      {"branin",
       "  - {name: x1, parameterType: double, feasibleSpace: {min: \"-5\", max: \"10\"}}\n"
       "  - {name: x2, parameterType: double, feasibleSpace: {min: \"0\", max: \"15\"}}\n",
       0.397887, branin},
      {"hartmann6", doubles("x", 6, "0", "1"), -3.32237, hartmann6},
      {"rosenbrock10", doubles("x", 10, "-2.048", "2.048"), 0.0, rosenbrock},
      {"mixed",
       "  - {name: x, parameterType: double, feasibleSpace: {min: \"-5\", max: \"5\"}}\n"
       "  - {name: n, parameterType: int, feasibleSpace: {min: \"1\", max: \"20\"}}\n"
       "  - {name: lr, parameterType: double, feasibleSpace: {min: \"0.0001\", max: \"1\", distribution: logUniform}}\n"
       "  - {name: opt, parameterType: categorical, feasibleSpace: {list: [a, b, c]}}\n",
       0.0, mixed},
  };
}

// `settings` are algorithmSettings as YAML flow items: "{name: gamma, value: \"0.2\"}, ...".
Experiment experiment(const std::string& algorithm, const Problem& p, const std::string& settings = "") {
  return parse_experiment("objective: {type: minimize, objectiveMetricName: y}\nalgorithm: {algorithmName: " + algorithm +
                              (settings.empty() ? "" : ", algorithmSettings: [" + settings + "]") +
                              "}\nmaxTrialCount: 1000\nparameters:\n" + p.parameters + "trialTemplate: {command: [true]}\n",
                          "bench.yaml");
}

// The trial's parameters as the trial sees them (text), read back: what a real sweep evaluates.
Point as_trial_sees(const Experiment& e, const Point& p) { return to_point(e, to_assignment(e, p)); }

double run(const Experiment& e, const Problem& p, std::uint64_t seed, int trials, std::vector<Observation>* keep = nullptr) {
  std::vector<Observation> history;
  double best = INFINITY;
  for (int i = 0; i < trials; ++i) {
    Point x = as_trial_sees(e, *make_sampler(e, seed)->suggest(i, history));
    double y = p.f(x);
    best = std::min(best, y);
    history.push_back({i, x, true, y, {}});
  }
  if (keep) *keep = history;
  return best;
}


struct Settings {
  int trials = 50;
  int seeds = 10;
  bool optuna = true;
  std::string optuna_json;  // a saved run of the Optuna script, instead of running it again
  std::vector<std::string> algorithms{"random", "sobol", "tpe", "multivariate-tpe", "bayesianoptimization"};
  std::string settings;  // algorithmSettings as YAML flow items
  std::string script = COHORT_SOURCE_DIR "/bench/tuner_optuna.py";
  // Debian's interpreter, which Debian's python3-optuna is installed for.
  std::string python = "/usr/bin/python3";
  bool json = false;
};

options::Help help() {
  return {"bench sweep",
          {"[--trials 50] [--seeds 10] [--no-optuna] [--optuna-script PATH]\n"
           "[--python /usr/bin/python3] [--optuna-json FILE]\n"
           "[--algorithms tpe,multivariate-tpe,...] [--setting NAME=VALUE]... [--json]"},
          "Median best objective of each sampler on Branin, Hartmann6, a 10-d Rosenbrock and a mixed\n"
          "space, and its regret as a ratio to Optuna TPE's (run in the same benchmark, from\n"
          "bench/tuner_optuna.py); then the time of one suggestion after 200 finished trials, and\n"
          "hyperband's training budget against random search's.\n\n"
          "--optuna-json reads a saved output of the Optuna script (same --trials and --seeds) instead of\n"
          "running it; --setting passes algorithmSettings to every algorithm of --algorithms.",
          {"cohort bench sweep --trials 50 --seeds 10",
           "cohort bench sweep --seeds 30 --algorithms tpe --setting n_ei_candidates=48"}};
}

std::optional<Settings> parse(const std::vector<std::string>& args) {
  Settings s;
  std::string trials = "50", seeds = "10", algorithms;
  std::vector<std::string> items;
  options::Parser parser(help());
  parser.add()("trials", po::value(&trials)->value_name("N"), "trials per search (50)")(
      "seeds", po::value(&seeds)->value_name("N"), "seeds per sampler and problem; figures are medians (10)")(
      "no-optuna", "leave out Optuna's TPE, the baseline")(
      "optuna-script", po::value(&s.script)->value_name("PATH"), "the Optuna side (bench/tuner_optuna.py)")(
      "python", po::value(&s.python)->value_name("PATH"), "the interpreter that runs it (/usr/bin/python3)")(
      "optuna-json", po::value(&s.optuna_json)->value_name("FILE"), "a saved output of the Optuna script instead")(
      "algorithms", po::value(&algorithms)->value_name("LIST"),
      "samplers to compare (random,sobol,tpe,multivariate-tpe,bayesianoptimization)")(
      "setting", po::value(&items)->composing()->value_name("NAME=VALUE"),
      "an algorithmSetting for every algorithm; repeatable")(
      "json", po::bool_switch(&s.json), "print one JSON object instead of the tables");
  auto parsed = parser.parse(args);
  if (!parsed) return std::nullopt;
  s.trials = static_cast<int>(options::whole_number("--trials", trials, 1, 100000));
  s.seeds = static_cast<int>(options::whole_number("--seeds", seeds, 1, 100000));
  s.optuna = !parsed->has("no-optuna");
  if (parsed->has("algorithms")) {
    s.algorithms.clear();
    for (std::string_view name : split(algorithms, ',')) {
      if (!name.empty()) s.algorithms.emplace_back(name);
    }
    if (s.algorithms.empty()) throw input_error("--algorithms needs at least one name");
  }
  for (const auto& item : items) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) throw input_error("--setting " + item + ": expected NAME=VALUE");
    s.settings += std::string(s.settings.empty() ? "" : ", ") + "{name: " + item.substr(0, eq) + ", value: \"" +
                  item.substr(eq + 1) + "\"}";
  }
  return s;
}

// Optuna's side: its best objectives per problem and seed, and its suggestion time.
json::Value optuna_baseline(const Settings& s) {
  if (!s.optuna_json.empty()) {
    const auto text = read_file(s.optuna_json);
    if (!text) throw input_error("--optuna-json " + s.optuna_json + ": cannot read it");
    json::Value baseline = json::parse(*text, s.optuna_json);
    if (baseline.at("branin").as_array().size() != static_cast<size_t>(s.seeds)) {
      throw input_error("--optuna-json " + s.optuna_json + " holds another number of seeds than --seeds " +
                        std::to_string(s.seeds));
    }
    return baseline;
  }
  auto r = run_process({s.python, s.script, std::to_string(s.trials), std::to_string(s.seeds)});
  if (!r.ok()) throw Error("Optuna's run (" + s.script + ") failed; is python3-optuna installed? " + r.err);
  return json::parse(r.out, s.script);
}

// For each problem: the median over seeds of the best objective after --trials trials, and
// its regret (best − the known optimum) as a ratio to Optuna TPE's regret.
void quality(bench::Report& report, const Settings& s, const json::Value& baseline) {
  auto& table = report.table("quality",
                             "median best objective after " + std::to_string(s.trials) + " trials over " +
                                 std::to_string(s.seeds) + " seeds; ratio: regret against Optuna TPE's",
                             {{.name = "problem", .text = true},
                              {.name = "optimum", .digits = -1},
                              {.name = "sampler", .text = true},
                              {.name = "best", .digits = -1},
                              {.name = "ratio"}});
  for (const auto& p : problems()) {
    double base = NAN;
    if (s.optuna) {
      std::vector<double> v;
      for (const auto& x : baseline.at(p.name).as_array()) v.push_back(x.as_double());
      base = bench::summarize(v).median;
      table.add({p.name, p.optimum, "Optuna TPE (baseline)", base, 1.0});
    }
    for (const auto& a : s.algorithms) {
      Experiment e = experiment(a, p, s.settings);
      std::vector<double> best;
      for (int seed = 0; seed < s.seeds; ++seed) best.push_back(run(e, p, static_cast<std::uint64_t>(seed), s.trials));
      const double m = bench::summarize(best).median;
      table.add({p.name, p.optimum, a, m, bench::number((m - p.optimum) / std::max(base - p.optimum, 1e-12))});
    }
  }
}

// Suggestion time with 200 finished trials (Hartmann6, 6 dimensions).
void suggestion_time(bench::Report& report, const Settings& s, const json::Value& baseline) {
  const auto all = problems();
  const Problem& h = all[1];
  auto& table = report.table("suggestion", "suggestion time after 200 finished trials (hartmann6), median of 20",
                             {{.name = "sampler", .text = true},
                              {.name = "median", .unit = "ms"},
                              {.name = "spread", .unit = "%", .digits = 1},
                              {.name = "ratio"}});
  const double base_ms = s.optuna ? baseline.at("suggest_ms_200").as_double() : NAN;
  if (s.optuna) table.add({"Optuna TPE (baseline)", base_ms, json::Value(), 1.0});
  for (const auto& a : {std::string("tpe"), std::string("multivariate-tpe"), std::string("bayesianoptimization")}) {
    Experiment e = experiment(a, h);
    std::vector<Observation> history;
    run(experiment("random", h), h, 1, 200, &history);
    int trial = 200;
    const auto ms = bench::alternate({0, 20}, {[&] {
                                        std::optional<Point> x;
                                        const double seconds =
                                            bench::seconds([&] { x = make_sampler(e, 3)->suggest(trial++, history); });
                                        if (!x) throw Error(a + " proposed nothing");
                                        return seconds * 1e3;
                                      }})[0];
    table.add({a, ms.median, 100 * ms.spread(), bench::number(ms.median / base_ms)});
  }
}

// hyperband against random search on a synthetic learning curve: the loss after r epochs
// approaches the configuration's final loss. Random search trains every trial for R
// epochs; hyperband's budget is the sum of its trials' epochs until its best reaches
// random search's best after `trials` trials.
void hyperband(bench::Report& report, const Settings& s) {
  const double R = 81;
  auto final_loss = [](double lr, double wd) { return std::pow(std::log10(lr) + 2, 2) / 4 + std::pow(wd - 0.3, 2); };
  auto curve = [&](double lr, double wd, double epochs) {
    double f = final_loss(lr, wd);
    return f + (0.5 + f) * std::exp(-epochs / 12);
  };
  const std::string space =
      "  - {name: lr, parameterType: double, feasibleSpace: {min: \"0.0001\", max: \"1\", distribution: logUniform}}\n"
      "  - {name: wd, parameterType: double, feasibleSpace: {min: \"0\", max: \"1\"}}\n";
  auto spec = [&](const std::string& algorithm, const std::string& extra, const std::string& settings) {
    return parse_experiment("objective: {type: minimize, objectiveMetricName: y}\nalgorithm: {algorithmName: " + algorithm +
                                settings + "}\nmaxTrialCount: 100000\nparameters:\n" + space + extra +
                                "trialTemplate: {command: [true]}\n",
                            "bench.yaml");
  };
  Experiment random = spec("random", "", "");
  Experiment hyperband = spec("hyperband", "  - {name: epochs, parameterType: int, feasibleSpace: {min: \"1\", max: \"81\"}}\n",
                              ", algorithmSettings: [{name: resource_name, value: epochs}, {name: eta, value: \"3\"}]");
  const double budget_of_random = s.trials * R;
  std::vector<double> ratios, random_best, hyperband_best, hyperband_trials;
  for (int seed = 0; seed < s.seeds; ++seed) {
    const auto sampler_seed = static_cast<std::uint64_t>(seed);
    double best = INFINITY;
    std::vector<Observation> history;
    for (int i = 0; i < s.trials; ++i) {
      Point x = as_trial_sees(random, *make_sampler(random, sampler_seed)->suggest(i, history));
      double y = curve(x[0], x[1], R);
      best = std::min(best, y);
      history.push_back({i, x, true, y, {}});
    }
    random_best.push_back(best);
    double budget = 0, hb_best = INFINITY;
    history.clear();
    int i = 0;
    for (; hb_best > best && budget < 10 * budget_of_random; ++i) {
      Point x = as_trial_sees(hyperband, *make_sampler(hyperband, sampler_seed)->suggest(i, history));
      double y = curve(x[0], x[1], x[2]);
      budget += x[2];
      hb_best = std::min(hb_best, y);
      history.push_back({i, x, true, y, {}});
    }
    ratios.push_back(budget / budget_of_random);
    hyperband_best.push_back(hb_best);
    hyperband_trials.push_back(i);
  }
  auto& table = report.table("hyperband",
                             "hyperband (eta 3, 1..81 epochs) against random search (" + std::to_string(s.trials) +
                                 " trials of 81 epochs) on a learning curve, median over " + std::to_string(s.seeds) +
                                 " seeds",
                             {{.name = "search", .text = true},
                              {.name = "best_loss", .digits = -1},
                              {.name = "budget", .unit = "epochs", .digits = 0},
                              {.name = "trials", .digits = 0},
                              {.name = "ratio"}});
  const double ratio = bench::summarize(ratios).median;
  table.add({"random (baseline)", bench::summarize(random_best).median, budget_of_random, s.trials, 1.0});
  table.add({"hyperband, until it matches random's best", bench::summarize(hyperband_best).median,
             ratio * budget_of_random, bench::summarize(hyperband_trials).median, ratio});
}

}  // namespace

int bench_command(const std::vector<std::string>& args) {
  const auto settings = parse(args);
  if (!settings) return 0;
  const Settings& s = *settings;
  const json::Value baseline = s.optuna ? optuna_baseline(s) : json::Value();
  bench::Report report("sweep");
  report.context("trials", s.trials);
  report.context("seeds", s.seeds);
  json::Value algorithms = json::Value::array();
  for (const auto& a : s.algorithms) algorithms.push(a);
  report.context("algorithms", std::move(algorithms));
  report.context("settings", s.settings.empty() ? json::Value() : json::Value(s.settings));
  report.context("baseline", s.optuna ? json::Value("Optuna TPE") : json::Value());
  if (!s.json) report.stream(std::cout);
  quality(report, s, baseline);
  suggestion_time(report, s, baseline);
  hyperband(report, s);
  report.print(std::cout, s.json);
  return 0;
}

}  // namespace cohort::tuner
