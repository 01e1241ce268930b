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
#include <optional>
#include <sstream>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/json.hpp"
#include "common/options.hpp"
#include "common/process.hpp"
#include "common/slurm.hpp"
#include "common/text.hpp"
#include "tuner/journal.hpp"
#include "tuner/report.hpp"
#include "tuner/runner.hpp"
#include "tuner/sampler.hpp"

namespace cohort::tuner {
namespace {

namespace fs = std::filesystem;
namespace po = options::po;

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop.store(true); }

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

// Each verb's help: usage, description, example.
struct VerbHelp {
  std::string_view verb, usage, description, example;
};

constexpr VerbHelp kHelp[] = {
    {"run", "EXP.yaml --dir D",
     "Runs the experiment's trials on this machine, parallelTrialCount at a time, until\n"
     "maxTrialCount trials have ended, the goal is reached or too many trials failed.\n"
     "Ctrl-C stops it; 'cohort sweep resume D' continues. Exit 0 when it succeeds.",
     "cohort sweep run examples/sweep/quadratic.yaml --dir /tmp/quad"},
    {"submit", "EXP.yaml --dir D [sbatch options]",
     "Submits one array job, --array=0-(maxTrialCount-1)%parallelTrialCount, whose tasks each\n"
     "claim the next trial from the journal when they start. trialTemplate.resources gives\n"
     "each task's nodes, tasks, CPUs, GPUs and time; sbatch options given here override them.",
     "cohort sweep submit mnist.yaml --dir /scratch/mnist-sweep --partition=gpu"},
    {"resume", "D",
     "Continues a stopped experiment on this machine: trials whose runner is gone are marked\n"
     "Killed (they do not count against maxTrialCount) and the rest of the trials run.",
     "cohort sweep resume /scratch/mnist-sweep"},
    {"status", "D [--json]",
     "The experiment's state and one row per trial: id, state, parameters, objective and\n"
     "other metrics, duration, Slurm job id.",
     "cohort sweep status /scratch/mnist-sweep --json"},
    {"best", "D [--json]",
     "The best succeeded trial: {\"trial\", \"parameters\", \"objective\", \"metrics\"}. Exit 1\n"
     "when no trial has succeeded, saying why the experiment and its first failed trial failed.",
     "cohort sweep best /scratch/mnist-sweep --json"},
    {"plot", "D --out FILE.svg",
     "Draws the objective of each ended trial and the best value so far.",
     "cohort sweep plot /scratch/mnist-sweep --out sweep.svg"},
    {"report", "NAME=VALUE ...",
     "Records metrics of the running trial (COHORT_SWEEP_DIR and COHORT_TRIAL_ID, which the\n"
     "trial runner sets), as if the trial had printed them on one line of its stdout.",
     "cohort sweep report epoch=3 loss=0.25 accuracy=0.91"},
    {"init", "EXP.yaml --dir D",
     "Checks the spec and creates the experiment directory, for sbatch scripts of your own\n"
     "whose tasks run 'cohort sweep task D'.",
     "cohort sweep init mnist.yaml --dir /scratch/mnist-sweep"},
    {"task", "D",
     "Claims the next trial of the experiment in D and runs it; exits at once when nothing is\n"
     "left. What each task of 'cohort sweep submit' runs.",
     "srun cohort sweep task /scratch/mnist-sweep"},
};

options::Help help_for(std::string_view verb) {
  for (const auto& h : kHelp) {
    if (h.verb == verb) {
      return {"sweep " + std::string(verb), {std::string(h.usage)}, std::string(h.description), {std::string(h.example)}};
    }
  }
  return {"sweep " + std::string(verb), {}, "", {}};
}

// Parses one verb's arguments; its errors name the verb ("run: unexpected argument 'x' …"),
// as the verb's own do.
std::optional<options::Parsed> parse(const options::Parser& parser, const std::string& verb,
                                     const std::vector<std::string>& args) {
  try {
    return parser.parse(args);
  } catch (const Error& e) {
    throw Error(verb + ": " + e.what(), e.kind());
  }
}

// EXP.yaml --dir D, and nothing else (or, for submit, sbatch's options besides them).
struct SpecAndDir {
  std::string spec, dir;
  std::vector<std::string> rest;
};

std::optional<SpecAndDir> spec_and_dir(const std::string& verb, const std::vector<std::string>& args, bool allow_rest) {
  SpecAndDir out;
  options::Parser parser(help_for(verb));
  parser.add()("dir,d", po::value(&out.dir)->value_name("D"), "the experiment directory, on a shared filesystem");
  parser.operands(1);
  if (allow_rest) parser.pass_on();
  auto parsed = parse(parser, verb, args);
  if (!parsed) return std::nullopt;
  if (parsed->operands.empty()) {
    throw input_error(verb + ": give the experiment's YAML file (see 'cohort sweep " + verb + " --help')");
  }
  if (out.dir.empty()) throw input_error(verb + ": give --dir, the experiment directory on a shared filesystem");
  out.spec = parsed->operands[0];
  out.rest = std::move(parsed->passed_on);
  return out;
}

// D, and --json where the verb prints JSON.
struct OneDir {
  std::string dir;
  bool json = false;
};

std::optional<OneDir> one_dir(const std::string& verb, const std::vector<std::string>& args, bool json = false) {
  options::Parser parser(help_for(verb));
  if (json) parser.add()("json", "print JSON instead of a table");
  parser.operands(1);
  auto parsed = parse(parser, verb, args);
  if (!parsed) return std::nullopt;
  if (parsed->operands.empty()) throw input_error(verb + ": give the experiment directory");
  return OneDir{parsed->operands[0], parsed->has("json")};
}

std::string self_path() { return own_executable().string(); }

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

int cmd_run(const std::vector<std::string>& args) {
  auto a = spec_and_dir("run", args, false);
  if (!a) return 0;
  Experiment experiment = init_experiment_dir(a->spec, a->dir);
  install_stop_handlers();
  return run_local(a->dir, experiment, g_stop, ::isatty(STDERR_FILENO));
}

int cmd_init(const std::vector<std::string>& args) {
  auto a = spec_and_dir("init", args, false);
  if (!a) return 0;
  Experiment e = init_experiment_dir(a->spec, a->dir);
  std::cout << "experiment " << e.name << ": " << trial_budget(e) << " trials in " << a->dir << "\n";
  return 0;
}

int cmd_submit(const std::vector<std::string>& args) {
  auto given = spec_and_dir("submit", args, true);
  if (!given) return 0;
  const SpecAndDir& a = *given;
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
    // A cancelled array leaves its claimed trials Running; once Slurm no longer knows it,
    // they are reclaimed and a new array runs what is left, on Slurm as before.
    const auto alive = slurm_job_alive(state.array_job);
    if (alive.value_or(true)) {
      throw input_error(a.dir + ": already submitted as array job " + state.array_job +
                        (alive ? ", which Slurm still runs" : ", and Slurm cannot say whether it still runs") +
                        "; follow it with 'cohort sweep status " + a.dir + "', or scancel it and submit again");
    }
    const int reclaimed = reclaim_abandoned(journal);
    std::cerr << "cohort: sweep: array job " << state.array_job << " is gone; " << reclaimed
              << " trial(s) it left running are marked Killed, and a new array job runs the rest\n";
    state = journal.read();
  }
  const int left = trial_budget(experiment) - state.counted();
  if (left <= 0) {
    throw input_error(a.dir + ": every trial has been claimed and none is left to run; see 'cohort sweep status " + a.dir + "'");
  }
  fs::path script = fs::path(a.dir) / "sweep.sbatch";
  write_file_atomically(script, array_script(experiment, a.dir, self_path(), left));
  // --parsable is sbatch's, and cohort's too: then the job id alone is printed, for scripts.
  const bool parsable = std::find(a.rest.begin(), a.rest.end(), "--parsable") != a.rest.end();
  std::vector<std::string> argv{"sbatch", "--parsable"};
  for (const auto& o : a.rest) {
    if (o != "--parsable") argv.push_back(o);
  }
  argv.push_back(script.string());
  auto r = run_process(argv);
  if (!r.ok()) throw Error("sbatch failed: " + (r.err.empty() ? r.out : r.err));
  std::string job = r.out.substr(0, r.out.find_first_of(";\n"));
  json::Value record = json::Value::object();
  record.set("type", "submit");
  record.set("job", job);
  journal.append(std::move(record));
  if (parsable) {
    std::cout << job << "\n";
    return 0;
  }
  std::cout << "experiment " << experiment.name << ": submitted as array job " << job << ", " << left << " trials, "
            << experiment.parallel_trial_count << " at a time; follow with 'cohort sweep status " << a.dir << "'\n";
  return 0;
}

int cmd_task(const std::vector<std::string>& args) {
  auto given = one_dir("task", args);
  if (!given) return 0;
  install_stop_handlers();
  return run_array_task(given->dir, g_stop);
}

int cmd_resume(const std::vector<std::string>& args) {
  auto given = one_dir("resume", args);
  if (!given) return 0;
  const std::string& dir = given->dir;
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
  auto given = one_dir("status", args, true);
  if (!given) return 0;
  const auto& [dir, as_json] = *given;
  Experiment e = open_experiment_dir(dir);
  JournalState state = Journal(dir).read();
  const Trial* best = state.best(e.objective);
  // A Running experiment whose array job Slurm no longer has (cancelled, or its tasks died
  // before they claimed a trial) would otherwise look Running for ever.
  std::optional<bool> array_alive;
  if (state.state == ExperimentState::running && !state.array_job.empty()) {
    array_alive = slurm_job_alive(state.array_job);
  }
  if (as_json) {
    json::Value o = status_json(e, state);
    if (!state.array_job.empty() && state.state == ExperimentState::running) {
      o.set("arrayJobAlive", array_alive ? json::Value(*array_alive) : json::Value());
    }
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
  if (array_alive == false) {
    std::cout << "array job " << state.array_job << " has ended with " << trial_budget(e) - state.counted()
              << " trial(s) not run and " << state.count(TrialState::running)
              << " left Running: 'cohort sweep submit' with the same spec and --dir " << dir
              << " runs them on Slurm ('cohort sweep resume " << dir << "' runs them here)\n";
  }
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
  auto given = one_dir("best", args, true);
  if (!given) return 0;
  const auto& [dir, as_json] = *given;
  Experiment e = open_experiment_dir(dir);
  JournalState state = Journal(dir).read();
  const Trial* best = state.best(e.objective);
  if (!best) {
    if (state.state == ExperimentState::running) throw Error(dir + ": no trial has succeeded yet");
    // An ended experiment without a success: why it ended, and why its trials failed.
    std::string why = dir + ": no trial succeeded; the experiment ended " + to_string(state.state) +
                      (state.reason.empty() ? "" : " (" + state.reason + ")");
    for (const auto& t : state.trials) {
      if (t.state == TrialState::failed && !t.reason.empty()) {
        why += "; trial " + std::to_string(t.id) + ": " + t.reason;
        break;
      }
    }
    throw Error(why);
  }
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
  options::Parser parser(help_for("report"));
  parser.operands(-1);
  auto parsed = parse(parser, "report", args);
  if (!parsed) return 0;
  if (parsed->operands.empty()) throw input_error("report: give NAME=VALUE pairs (see 'cohort sweep report --help')");
  std::string line;
  for (const auto& a : parsed->operands) {
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

int cmd_plot(const std::vector<std::string>& args) {
  std::string out_path;
  options::Parser parser(help_for("plot"));
  parser.add()("out,o", po::value(&out_path)->value_name("FILE.svg"), "the SVG file to write");
  parser.operands(1);
  auto parsed = parse(parser, "plot", args);
  if (!parsed) return 0;
  if (parsed->operands.empty()) throw input_error("plot: give the experiment directory");
  const std::string& dir = parsed->operands[0];
  if (out_path.empty()) throw input_error("plot: give --out FILE.svg");
  Experiment e = open_experiment_dir(dir);
  const std::string svg = objective_plot_svg(e, Journal(dir).read());
  if (svg.empty()) throw Error(dir + ": no trial has reported its objective yet");
  write_file_atomically(out_path, svg);
  return 0;
}

}  // namespace

int sweep_command(const std::vector<std::string>& args) {
  static constexpr options::Subcommand kVerbs[] = {
      {"run", "EXP.yaml --dir D", "run the trials here, parallelTrialCount at a time", &cmd_run},
      {"submit", "EXP.yaml --dir D [sbatch ...]", "one array job, each task claiming its trial", &cmd_submit},
      {"resume", "D", "continue a stopped experiment here", &cmd_resume},
      {"status", "D [--json]", "one row per trial", &cmd_status},
      {"best", "D [--json]", "the best trial: parameters, objective, metrics", &cmd_best},
      {"plot", "D --out FILE.svg", "objective per trial and the best so far", &cmd_plot},
      {"report", "NAME=VALUE ...", "record metrics from inside a running trial", &cmd_report},
      {"init", "EXP.yaml --dir D", "create the experiment directory only", &cmd_init},
      {"task", "D", "claim and run one trial (what each array task runs)", &cmd_task},
  };
  // The verbs' errors say which verb they are from where that helps; a spec's errors name the spec.
  return options::dispatch({{"sweep",
                             {"<verb> [args]"},
                             "Katib experiments on Slurm: trials as array tasks, a journal on the shared filesystem.\n"
                             "The samplers' benchmark is `cohort bench sweep`.",
                             {"cohort sweep submit mnist.yaml --dir /scratch/mnist-sweep --partition=gpu",
                              "cohort sweep status /scratch/mnist-sweep"}},
                            "verb",
                            kVerbs,
                            false},
                           args);
}

}  // namespace cohort::tuner
