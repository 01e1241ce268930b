#include "tuner/sweep_command.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <sstream>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/json.hpp"
#include "common/process.hpp"
#include "common/text.hpp"
#include "tuner/bench.hpp"
#include "tuner/journal.hpp"
#include "tuner/runner.hpp"
#include "tuner/sampler.hpp"

namespace cohort::tuner {
namespace {

namespace fs = std::filesystem;

constexpr const char* kUsage =
    "usage: cohort sweep <verb> [args]\n\n"
    "Katib experiments on Slurm: trials as array tasks, a journal on the shared filesystem.\n\n"
    "verbs:\n"
    "  run EXP.yaml --dir D                 run the trials here, parallelTrialCount at a time\n"
    "  submit EXP.yaml --dir D [sbatch …]   one array job, each task claiming its trial\n"
    "  resume D                             continue a stopped experiment here\n"
    "  status D [--json]                    one row per trial\n"
    "  best D [--json]                      the best trial: parameters, objective, metrics\n"
    "  plot D --out FILE.svg                objective per trial and the best so far\n"
    "  report NAME=VALUE …                  record metrics from inside a running trial\n"
    "  init EXP.yaml --dir D                create the experiment directory only\n"
    "  task D                               claim and run one trial (what each array task runs)\n"
    "  bench [--trials N] [--seeds N]       the samplers against Optuna's TPE on standard problems\n\n"
    "example:\n"
    "  cohort sweep submit mnist.yaml --dir /scratch/mnist-sweep --partition=gpu\n"
    "  cohort sweep status /scratch/mnist-sweep\n";

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop.store(true); }

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

bool wants_help(const std::vector<std::string>& args) {
  return std::any_of(args.begin(), args.end(), [](const std::string& a) { return a == "--help" || a == "-h"; });
}

int help(const std::string& verb_usage) {
  std::cout << verb_usage;
  return 0;
}

// EXP.yaml --dir D, and nothing else (or, for submit, sbatch's options after them).
struct SpecAndDir {
  std::string spec, dir;
  std::vector<std::string> rest;
};

SpecAndDir spec_and_dir(const std::string& verb, const std::vector<std::string>& args, bool allow_rest) {
  SpecAndDir out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--dir" || a == "-d") {
      if (i + 1 >= args.size()) throw input_error(verb + ": --dir needs a directory");
      out.dir = args[++i];
    } else if (a.rfind("--dir=", 0) == 0) {
      out.dir = a.substr(6);
    } else if (out.spec.empty() && !a.empty() && a[0] != '-') {
      out.spec = a;
    } else if (allow_rest) {
      out.rest.push_back(a);
    } else {
      throw input_error(verb + ": unexpected argument '" + a + "' (see 'cohort sweep " + verb + " --help')");
    }
  }
  if (out.spec.empty()) throw input_error(verb + ": give the experiment's YAML file (see 'cohort sweep " + verb + " --help')");
  if (out.dir.empty()) throw input_error(verb + ": give --dir, the experiment directory on a shared filesystem");
  return out;
}

std::string one_dir(const std::string& verb, const std::vector<std::string>& args, bool* json = nullptr) {
  std::string dir;
  for (const auto& a : args) {
    if (json && a == "--json") *json = true;
    else if (dir.empty() && !a.empty() && a[0] != '-') dir = a;
    else throw input_error(verb + ": unexpected argument '" + a + "' (see 'cohort sweep " + verb + " --help')");
  }
  if (dir.empty()) throw input_error(verb + ": give the experiment directory");
  return dir;
}

std::string self_path() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error("cannot find the cohort executable (/proc/self/exe): " + ec.message());
  return p.string();
}

double now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

std::string duration(const Trial& t) {
  if (t.started <= 0) return "";
  double end = t.state == TrialState::running ? now() : t.ended;
  double s = std::max(0.0, end - t.started);
  std::ostringstream out;
  if (s < 60) out << std::fixed << std::setprecision(1) << s << "s";
  else if (s < 3600) out << static_cast<long>(s) / 60 << "m" << std::setw(2) << std::setfill('0') << static_cast<long>(s) % 60 << "s";
  else out << static_cast<long>(s) / 3600 << "h" << std::setw(2) << std::setfill('0') << (static_cast<long>(s) % 3600) / 60 << "m";
  return out.str();
}

std::optional<double> metric_of(const Trial& t, const std::string& name) {
  for (const auto& [k, v] : t.metrics) {
    if (k == name) return v;
  }
  return std::nullopt;
}

json::Value trial_json(const Trial& t) {
  json::Value o = json::Value::object();
  o.set("trial", t.id);
  o.set("state", to_string(t.state));
  json::Value p = json::Value::object();
  for (const auto& [k, v] : t.parameters) p.set(k, v);
  o.set("parameters", std::move(p));
  o.set("objective", t.objective ? json::Value(*t.objective) : json::Value());
  json::Value m = json::Value::object();
  for (const auto& [k, v] : t.metrics) m.set(k, v);
  o.set("metrics", std::move(m));
  double end = t.state == TrialState::running ? now() : t.ended;
  o.set("duration", t.started > 0 ? json::Value(std::round(std::max(0.0, end - t.started) * 1000) / 1000) : json::Value());
  o.set("job", t.job.empty() ? json::Value() : json::Value(t.job));
  o.set("reason", t.reason.empty() ? json::Value() : json::Value(t.reason));
  return o;
}

json::Value best_json(const Trial& t) {
  json::Value o = json::Value::object();
  o.set("trial", t.id);
  json::Value p = json::Value::object();
  for (const auto& [k, v] : t.parameters) p.set(k, v);
  o.set("parameters", std::move(p));
  o.set("objective", *t.objective);
  json::Value m = json::Value::object();
  for (const auto& [k, v] : t.metrics) m.set(k, v);
  o.set("metrics", std::move(m));
  return o;
}

int cmd_run(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    return help(
        "usage: cohort sweep run EXP.yaml --dir D\n\n"
        "Runs the experiment's trials on this machine, parallelTrialCount at a time, until\n"
        "maxTrialCount trials have ended, the goal is reached or too many trials failed.\n"
        "Ctrl-C stops it; 'cohort sweep resume D' continues. Exit 0 when it succeeds.\n\n"
        "example:\n  cohort sweep run examples/sweep/quadratic.yaml --dir /tmp/quad\n");
  }
  auto a = spec_and_dir("run", args, false);
  Experiment experiment = init_experiment_dir(a.spec, a.dir);
  install_stop_handlers();
  return run_local(a.dir, experiment, g_stop, ::isatty(STDERR_FILENO));
}

int cmd_init(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    return help(
        "usage: cohort sweep init EXP.yaml --dir D\n\n"
        "Checks the spec and creates the experiment directory, for sbatch scripts of your own\n"
        "whose tasks run 'cohort sweep task D'.\n\n"
        "example:\n  cohort sweep init mnist.yaml --dir /scratch/mnist-sweep\n");
  }
  auto a = spec_and_dir("init", args, false);
  Experiment e = init_experiment_dir(a.spec, a.dir);
  std::cout << "experiment " << e.name << ": " << trial_budget(e) << " trials in " << a.dir << "\n";
  return 0;
}

int cmd_submit(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    return help(
        "usage: cohort sweep submit EXP.yaml --dir D [sbatch options]\n\n"
        "Submits one array job, --array=0-(maxTrialCount-1)%parallelTrialCount, whose tasks each\n"
        "claim the next trial from the journal when they start. trialTemplate.resources gives\n"
        "each task's nodes, tasks, CPUs, GPUs and time; sbatch options given here override them.\n\n"
        "example:\n  cohort sweep submit mnist.yaml --dir /scratch/mnist-sweep --partition=gpu\n");
  }
  auto a = spec_and_dir("submit", args, true);
  for (const auto& o : a.rest) {
    if (o.rfind("--array", 0) == 0 || o == "-a") {
      throw input_error("submit: --array is the sweep's own (maxTrialCount and parallelTrialCount set it)");
    }
  }
  Experiment experiment = init_experiment_dir(a.spec, a.dir);
  Journal journal(a.dir);
  JournalState state = journal.read();
  if (state.state != ExperimentState::running) {
    throw input_error(a.dir + ": the experiment has ended (" + std::string(to_string(state.state)) + ": " + state.reason + ")");
  }
  if (!state.array_job.empty()) {
    throw input_error(a.dir + ": already submitted as array job " + state.array_job +
                      "; follow it with 'cohort sweep status " + a.dir + "'");
  }
  fs::path script = fs::path(a.dir) / "sweep.sbatch";
  write_file_atomically(script, array_script(experiment, a.dir, self_path()));
  std::vector<std::string> argv{"sbatch", "--parsable"};
  argv.insert(argv.end(), a.rest.begin(), a.rest.end());
  argv.push_back(script.string());
  auto r = run_process(argv);
  if (!r.ok()) throw Error("sbatch failed: " + (r.err.empty() ? r.out : r.err));
  std::string job = r.out.substr(0, r.out.find_first_of(";\n"));
  json::Value record = json::Value::object();
  record.set("type", "submit");
  record.set("job", job);
  journal.append(std::move(record));
  std::cout << job << "\n";
  std::cerr << "experiment " << experiment.name << ": array job " << job << ", " << trial_budget(experiment)
            << " trials, " << experiment.parallel_trial_count << " at a time; follow with 'cohort sweep status "
            << a.dir << "'\n";
  return 0;
}

int cmd_task(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    return help(
        "usage: cohort sweep task D\n\n"
        "Claims the next trial of the experiment in D and runs it; exits at once when nothing is\n"
        "left. What each task of 'cohort sweep submit' runs.\n\n"
        "example:\n  srun cohort sweep task /scratch/mnist-sweep\n");
  }
  std::string dir = one_dir("task", args);
  install_stop_handlers();
  return run_array_task(dir, g_stop);
}

int cmd_resume(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    return help(
        "usage: cohort sweep resume D\n\n"
        "Continues a stopped experiment on this machine: trials whose runner is gone are marked\n"
        "Killed (they do not count against maxTrialCount) and the rest of the trials run.\n\n"
        "example:\n  cohort sweep resume /scratch/mnist-sweep\n");
  }
  std::string dir = one_dir("resume", args);
  Experiment experiment = open_experiment_dir(dir);
  Journal journal(dir);
  JournalState state = journal.read();
  if (state.state != ExperimentState::running) {
    std::cout << "experiment " << experiment.name << " has ended: " << to_string(state.state) << " (" << state.reason << ")\n";
    return state.state == ExperimentState::succeeded ? 0 : 1;
  }
  int n = reclaim_abandoned(journal);
  if (n) std::cerr << "experiment " << experiment.name << ": " << n << " abandoned trials marked Killed\n";
  install_stop_handlers();
  return run_local(dir, experiment, g_stop, ::isatty(STDERR_FILENO));
}

int cmd_status(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    return help(
        "usage: cohort sweep status D [--json]\n\n"
        "The experiment's state and one row per trial: id, state, parameters, objective and\n"
        "other metrics, duration, Slurm job id.\n\n"
        "example:\n  cohort sweep status /scratch/mnist-sweep --json\n");
  }
  bool as_json = false;
  std::string dir = one_dir("status", args, &as_json);
  Experiment e = open_experiment_dir(dir);
  JournalState state = Journal(dir).read();
  const Trial* best = state.best(e.objective);
  if (as_json) {
    json::Value o = json::Value::object();
    o.set("experiment", e.name);
    o.set("state", to_string(state.state));
    o.set("reason", state.reason.empty() ? json::Value() : json::Value(state.reason));
    o.set("algorithm", e.algorithm);
    json::Value obj = json::Value::object();
    obj.set("metric", e.objective.metric);
    obj.set("type", to_string(e.objective.type));
    obj.set("goal", e.objective.goal ? json::Value(*e.objective.goal) : json::Value());
    o.set("objective", std::move(obj));
    o.set("maxTrialCount", trial_budget(e));
    o.set("arrayJob", state.array_job.empty() ? json::Value() : json::Value(state.array_job));
    json::Value trials = json::Value::array();
    for (const auto& t : state.trials) trials.push(trial_json(t));
    o.set("trials", std::move(trials));
    o.set("best", best ? best_json(*best) : json::Value());
    o.set("damagedRecords", state.damaged_records);
    std::cout << json::write(o, 2) << "\n";
    return 0;
  }
  std::cout << "experiment " << e.name << ": " << to_string(state.state)
            << (state.reason.empty() ? "" : " (" + state.reason + ")") << "\n";
  std::cout << e.algorithm << ", " << to_string(e.objective.type) << " " << e.objective.metric << "; "
            << state.counted() << " of " << trial_budget(e) << " trials: " << state.count(TrialState::succeeded)
            << " succeeded, " << state.count(TrialState::failed) << " failed, "
            << state.count(TrialState::early_stopped) << " early-stopped, " << state.count(TrialState::running)
            << " running" << (state.count(TrialState::killed) ? ", " + std::to_string(state.count(TrialState::killed)) + " killed" : "")
            << "\n";
  if (best) std::cout << "best: trial " << best->id << ", " << e.objective.metric << "=" << format_number(*best->objective) << "\n";
  if (state.damaged_records) std::cout << state.damaged_records << " damaged journal records skipped\n";
  std::cout << "\n";
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> head{"TRIAL", "STATE"};
  for (const auto& p : e.parameters) head.push_back(p.name);
  head.push_back(e.objective.metric);
  for (const auto& m : e.objective.additional) head.push_back(m);
  head.insert(head.end(), {"DURATION", "JOB"});
  rows.push_back(head);
  for (const auto& t : state.trials) {
    std::vector<std::string> row{std::to_string(t.id), to_string(t.state)};
    for (const auto& [_, v] : t.parameters) row.push_back(v);
    auto obj = metric_of(t, e.objective.metric);
    row.push_back(obj ? format_number(*obj) : "-");
    for (const auto& m : e.objective.additional) {
      auto v = metric_of(t, m);
      row.push_back(v ? format_number(*v) : "-");
    }
    row.push_back(duration(t));
    row.push_back(t.job.empty() ? "-" : t.job);
    rows.push_back(std::move(row));
  }
  print_table(std::cout, rows);
  for (const auto& t : state.trials) {
    if (!t.reason.empty() && t.state != TrialState::succeeded) std::cout << "trial " << t.id << ": " << t.reason << "\n";
  }
  return 0;
}

int cmd_best(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    return help(
        "usage: cohort sweep best D [--json]\n\n"
        "The best succeeded trial: {\"trial\", \"parameters\", \"objective\", \"metrics\"}. Exit 1\n"
        "when no trial has succeeded yet.\n\n"
        "example:\n  cohort sweep best /scratch/mnist-sweep --json\n");
  }
  bool as_json = false;
  std::string dir = one_dir("best", args, &as_json);
  Experiment e = open_experiment_dir(dir);
  JournalState state = Journal(dir).read();
  const Trial* best = state.best(e.objective);
  if (!best) throw Error(dir + ": no trial has succeeded yet");
  if (as_json) {
    std::cout << json::write(best_json(*best), 2) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"trial", std::to_string(best->id)},
                                             {e.objective.metric, format_number(*best->objective)}};
  for (const auto& [k, v] : best->metrics) {
    if (k != e.objective.metric) rows.push_back({k, format_number(v)});
  }
  for (const auto& [k, v] : best->parameters) rows.push_back({k, v});
  print_table(std::cout, rows);
  return 0;
}

int cmd_report(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    return help(
        "usage: cohort sweep report NAME=VALUE …\n\n"
        "Records metrics of the running trial (COHORT_SWEEP_DIR and COHORT_TRIAL_ID, which the\n"
        "trial runner sets), as if the trial had printed them on one line of its stdout.\n\n"
        "example:\n  cohort sweep report epoch=3 loss=0.25 accuracy=0.91\n");
  }
  if (args.empty()) throw input_error("report: give NAME=VALUE pairs (see 'cohort sweep report --help')");
  std::string line;
  for (const auto& a : args) {
    auto eq = a.find('=');
    if (eq == std::string::npos || eq == 0) throw input_error("report: '" + a + "' is not NAME=VALUE");
    try {
      size_t used = 0;
      std::stod(a.substr(eq + 1), &used);
      if (used != a.size() - eq - 1) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      throw input_error("report: '" + a + "': the value must be a number");
    }
    line += (line.empty() ? "" : " ") + a;
  }
  const char* dir = std::getenv("COHORT_SWEEP_DIR");
  const char* trial = std::getenv("COHORT_TRIAL_ID");
  if (!dir || !trial) throw input_error("report: run it inside a trial (COHORT_SWEEP_DIR and COHORT_TRIAL_ID are not set)");
  const auto id = parse_integer(trial, 0, std::numeric_limits<int>::max());
  if (!id) throw input_error(std::string("report: COHORT_TRIAL_ID=") + trial + " is not a trial number");
  report_metrics(dir, static_cast<int>(*id), line);
  return 0;
}

std::string svg_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

int cmd_plot(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    return help(
        "usage: cohort sweep plot D --out FILE.svg\n\n"
        "Draws the objective of each ended trial and the best value so far.\n\n"
        "example:\n  cohort sweep plot /scratch/mnist-sweep --out sweep.svg\n");
  }
  std::string dir, out_path;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--out" || args[i] == "-o") {
      if (i + 1 >= args.size()) throw input_error("plot: --out needs a file name");
      out_path = args[++i];
    } else if (args[i].rfind("--out=", 0) == 0) {
      out_path = args[i].substr(6);
    } else if (dir.empty() && !args[i].empty() && args[i][0] != '-') {
      dir = args[i];
    } else {
      throw input_error("plot: unexpected argument '" + args[i] + "' (see 'cohort sweep plot --help')");
    }
  }
  if (dir.empty()) throw input_error("plot: give the experiment directory");
  if (out_path.empty()) throw input_error("plot: give --out FILE.svg");
  Experiment e = open_experiment_dir(dir);
  JournalState state = Journal(dir).read();
  std::vector<std::pair<int, double>> points;
  for (const auto& t : state.trials) {
    if (auto v = metric_of(t, e.objective.metric); v && t.state != TrialState::running) points.emplace_back(t.id, *v);
  }
  if (points.empty()) throw Error(dir + ": no trial has reported its objective yet");
  const double W = 640, H = 400, L = 70, R = 20, T = 40, B = 50;
  double lo = points[0].second, hi = lo;
  int last = 0;
  for (const auto& [id, v] : points) lo = std::min(lo, v), hi = std::max(hi, v), last = std::max(last, id);
  if (hi == lo) hi = lo + 1;
  auto x = [&](int id) { return L + (W - L - R) * (last ? static_cast<double>(id) / last : 0.5); };
  auto y = [&](double v) { return T + (H - T - B) * (1 - (v - lo) / (hi - lo)); };
  std::ostringstream svg;
  svg << std::fixed << std::setprecision(1);
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg << "<text x=\"" << L << "\" y=\"24\" font-size=\"14\">" << svg_escape(e.name) << ": " << svg_escape(e.objective.metric)
      << " per trial (" << to_string(e.objective.type) << ")</text>\n";
  svg << "<line x1=\"" << L << "\" y1=\"" << H - B << "\" x2=\"" << W - R << "\" y2=\"" << H - B << "\" stroke=\"black\"/>\n";
  svg << "<line x1=\"" << L << "\" y1=\"" << T << "\" x2=\"" << L << "\" y2=\"" << H - B << "\" stroke=\"black\"/>\n";
  for (int i = 0; i <= 4; ++i) {
    double v = lo + (hi - lo) * i / 4;
    svg << "<text x=\"" << L - 6 << "\" y=\"" << y(v) + 4 << "\" text-anchor=\"end\">" << format_number(std::round(v * 1e4) / 1e4) << "</text>\n";
  }
  svg << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 12 << "\" text-anchor=\"middle\">trial (0-" << last << ")</text>\n";
  svg << "<polyline fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\" points=\"";
  double best = points[0].second;
  for (size_t i = 0; i < points.size(); ++i) {
    if (e.objective.better(points[i].second, best)) best = points[i].second;
    if (i) svg << " " << x(points[i].first) << "," << y(best) << " ";  // a step: flat until improved
    svg << x(points[i].first) << "," << y(best);
  }
  svg << "\"/>\n";
  for (const auto& [id, v] : points) {
    svg << "<circle cx=\"" << x(id) << "\" cy=\"" << y(v) << "\" r=\"3\" fill=\"#1f77b4\"><title>trial " << id << ": "
        << format_number(v) << "</title></circle>\n";
  }
  svg << "<text x=\"" << W - R << "\" y=\"" << T - 6 << "\" text-anchor=\"end\" fill=\"#d62728\">best so far</text>\n";
  svg << "</svg>\n";
  write_file_atomically(out_path, svg.str());
  return 0;
}

}  // namespace

int sweep_command(const std::vector<std::string>& args) {
  if (args.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string& verb = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (verb == "--help" || verb == "-h" || verb == "help") {
    std::cout << kUsage;
    return 0;
  }
  if (verb == "run") return cmd_run(rest);
  if (verb == "submit") return cmd_submit(rest);
  if (verb == "task") return cmd_task(rest);
  if (verb == "resume") return cmd_resume(rest);
  if (verb == "init") return cmd_init(rest);
  if (verb == "status") return cmd_status(rest);
  if (verb == "best") return cmd_best(rest);
  if (verb == "report") return cmd_report(rest);
  if (verb == "plot") return cmd_plot(rest);
  if (verb == "bench") return sweep_bench(rest);
  throw input_error("unknown verb '" + verb + "' (expected run, submit, resume, status, best, plot, report, init, task or bench)");
}

}  // namespace cohort::tuner
