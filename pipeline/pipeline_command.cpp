#include "pipeline/pipeline_command.hpp"

#include <signal.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <thread>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/json.hpp"
#include "common/options.hpp"
#include "common/process.hpp"
#include "common/text.hpp"
#include "pipeline/run.hpp"
#include "pipeline/run_dir.hpp"

namespace cohort::pipeline {
namespace {

namespace po = options::po;

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

std::string self_path() { return own_executable().string(); }

// Follows a Slurm run until it ends; its exit status.
int wait_for(const fs::path& dir) {
  while (true) {
    const RunStatus r = read_status(dir);
    if (r.state != "Running") {
      std::cout << draw(r);
      return r.state == "Succeeded" ? 0 : 1;
    }
    if (g_stop.load()) {
      std::cerr << "cohort pipeline: stopped waiting; the run goes on (cancel it with 'cohort pipeline cancel "
                << r.run << "')\n";
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

int cmd_run(const std::vector<std::string>& args) {
  std::vector<std::string> params;
  std::string dir;
  int parallel = 0;
  options::Parser parser({"pipeline run",
                          {"P.yaml [--param NAME=VALUE ...] [--dir D] [--local [--parallel N]] [--wait] [sbatch options]"},
                          "Runs a pipeline: KFP v2's compiled YAML or cohort's own. Every task is fingerprinted;\n"
                          "those the cache holds are served from it, the others submitted as sbatch jobs chained\n"
                          "with --dependency=afterok (or, with --local, run on this machine). Prints the run's\n"
                          "name; 'cohort pipeline status RUN' follows it. Options cohort does not know are\n"
                          "sbatch's, given to every task's job (--partition=gpu, --account=ml).",
                          {"cohort pipeline run two_step.yaml --param text=hello",
                           "cohort pipeline run train.yaml --local --dir /tmp/pipelines"}});
  parser.add()("param,p", po::value(&params)->value_name("NAME=VALUE"), "a pipeline parameter; repeat for more")(
      "dir,d", po::value(&dir)->value_name("D"),
      "where runs and the cache live, on a shared file system (COHORT_PIPELINE_DIR, else ~/.cohort/pipelines)")(
      "local", "run the tasks on this machine, without Slurm")(
      "parallel", po::value(&parallel)->value_name("N"), "with --local: tasks at once (one per CPU)")(
      "wait", "on Slurm: wait for the run to end, then draw it; exit 1 when it failed");
  parser.operands(1);
  parser.pass_on();
  const auto parsed = parser.parse(args);
  if (!parsed) return 0;
  if (parsed->operands.empty()) throw input_error("give the pipeline's YAML file (see 'cohort pipeline run --help')");
  if (parsed->has("local") && !parsed->passed_on.empty()) {
    throw input_error(parsed->passed_on[0] + ": sbatch's options have no use with --local");
  }
  if (parallel < 0) throw input_error("--parallel " + std::to_string(parallel) + ": must be at least 1");
  const Pipeline p = load_pipeline(parsed->operands[0]);
  StartOptions o;
  o.root = pipeline_root(dir);
  o.parameters = params;
  o.local = parsed->has("local");
  o.cohort = self_path();
  o.sbatch = parsed->passed_on;
  const Started s = start_run(p, fs::absolute(parsed->operands[0]).string(), o);
  std::cout << s.run << std::endl;  // at once: a script reading it may wait for the run
  if (o.local) {
    ::signal(SIGINT, on_signal);
    ::signal(SIGTERM, on_signal);
    const int rc = run_local(s.dir, o.cohort, parallel, g_stop);
    std::cerr << draw(read_status(s.dir));
    return rc;
  }
  for (const auto& n : read_status(s.dir).notes) std::cerr << "cohort pipeline: note: " << n << "\n";
  std::cerr << "cohort pipeline: run " << s.run << ": " << s.submitted << " jobs submitted, " << s.cached
            << " tasks from the cache; follow with 'cohort pipeline status " << s.run << "'\n";
  if (!parsed->has("wait")) return 0;
  ::signal(SIGINT, on_signal);
  return wait_for(s.dir);
}

// RUN [--dir D] and what else the verb takes.
struct RunArgs {
  fs::path dir;
  std::vector<std::string> operands;
  bool json = false;
};

std::optional<RunArgs> read_run_args(const std::string& verb, const options::Help& help, int operands, bool json,
                                     const std::vector<std::string>& args, int least) {
  std::string root;
  options::Parser parser(help);
  parser.add()("dir,d", po::value(&root)->value_name("D"), "where runs live (as for 'cohort pipeline run')");
  if (json) parser.add()("json", "print JSON instead of a table");
  parser.operands(operands);
  const auto parsed = parser.parse(args);
  if (!parsed) return std::nullopt;
  if (static_cast<int>(parsed->operands.size()) < least) {
    throw input_error("give the run (see 'cohort pipeline " + verb + " --help')");
  }
  return RunArgs{pipeline_root(root), parsed->operands, parsed->has("json")};
}

int cmd_status(const std::vector<std::string>& args) {
  const auto a = read_run_args("status", {"pipeline status", {"RUN [--dir D] [--json]"},
                                          "The run's DAG, each task's state from its state file and from Slurm.",
                                          {"cohort pipeline status two-step-20260101-120000-abcd"}},
                               1, true, args, 1);
  if (!a) return 0;
  const RunStatus r = read_status(find_run(a->dir, a->operands[0]));
  if (a->json) std::cout << json::write(status_json(r), 2) << "\n";
  else std::cout << draw(r);
  return 0;
}

int cmd_logs(const std::vector<std::string>& args) {
  const auto a = read_run_args("logs", {"pipeline logs", {"RUN [TASK] [--dir D]"},
                                        "A task's output (stdout and stderr, every attempt), or every task's in order.",
                                        {"cohort pipeline logs two-step-20260101-120000-abcd component2"}},
                               2, false, args, 1);
  if (!a) return 0;
  const RunStatus r = read_status(find_run(a->dir, a->operands[0]));
  bool found = false;
  for (const auto& t : r.tasks) {
    if (a->operands.size() > 1 && t.name != a->operands[1]) continue;
    found = true;
    if (a->operands.size() == 1) std::cout << "==> " << t.name << " (" << t.state << ") <==\n";
    std::cout << read_file(t.log).value_or("");
  }
  if (!found) throw input_error("run " + r.run + " has no task '" + a->operands[1] + "'");
  return 0;
}

int cmd_cancel(const std::vector<std::string>& args) {
  const auto a = read_run_args("cancel", {"pipeline cancel", {"RUN [--dir D]"},
                                          "Cancels the run's jobs that have not ended (or stops its local runner).",
                                          {"cohort pipeline cancel two-step-20260101-120000-abcd"}},
                               1, false, args, 1);
  if (!a) return 0;
  const fs::path dir = find_run(a->dir, a->operands[0]);
  const int n = cancel_run(dir);
  std::cerr << "cohort pipeline: run " << dir.filename().string() << " cancelled (" << n << " jobs)\n";
  return 0;
}

int cmd_list(const std::vector<std::string>& args) {
  const auto a = read_run_args("list", {"pipeline list", {"[--dir D] [--json]"}, "Every run, newest first.",
                                        {"cohort pipeline list --json"}},
                               0, true, args, 0);
  if (!a) return 0;
  const auto runs = list_runs(a->dir);
  if (a->json) {
    json::Value all = json::Value::array();
    for (const auto& r : runs) all.push(status_json(r));
    std::cout << json::write(all, 2) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"RUN", "PIPELINE", "MODE", "STATE", "TASKS"}};
  for (const auto& r : runs) {
    int ok = 0;
    for (const auto& t : r.tasks) ok += t.state == "succeeded" || t.state == "cached";
    rows.push_back({r.run, r.pipeline, r.mode, r.state, std::to_string(ok) + "/" + std::to_string(r.tasks.size())});
  }
  print_table(std::cout, rows);
  return 0;
}

int cmd_exec_task(const std::vector<std::string>& args) {
  int attempt = 0;
  options::Parser parser({"pipeline exec-task", {"RUN_DIR TASK [--attempt N]"},
                          "Runs one task of a started run: what each task's job runs. Not for people.", {}});
  parser.add()("attempt", po::value(&attempt)->value_name("N"), "which try this is, from 0 (Slurm: its restart count)");
  parser.operands(2);
  const auto parsed = parser.parse(args);
  if (!parsed) return 0;
  if (parsed->operands.size() != 2) throw input_error("give the run's directory and the task");
  return exec_task(parsed->operands[0], parsed->operands[1], attempt);
}

}  // namespace

int pipeline_command(const std::vector<std::string>& args) {
  static constexpr options::Subcommand kVerbs[] = {
      {"run", "P.yaml [--param K=V ...] [--dir D] [--local] [--wait]", "fingerprint, serve from cache, submit the rest",
       &cmd_run},
      {"status", "RUN [--json]", "the run's DAG and each task's state", &cmd_status},
      {"logs", "RUN [TASK]", "a task's output, or every task's", &cmd_logs},
      {"cancel", "RUN", "cancel the run's jobs", &cmd_cancel},
      {"list", "[--json]", "every run, newest first", &cmd_list},
      {"exec-task", "RUN_DIR TASK", "run one task (what each task's job runs)", &cmd_exec_task},
  };
  return options::dispatch({{"pipeline",
                             {"<verb> [args]"},
                             "Kubeflow Pipelines on Slurm: KFP v2 compiled YAML (or cohort's own) as sbatch jobs\n"
                             "chained by afterok, each task cached by its fingerprint. See docs/pipelines.md.",
                             {"cohort pipeline run two_step.yaml --param text=hello --wait",
                              "cohort pipeline status RUN"}},
                            "verb",
                            kVerbs},
                           args);
}

}  // namespace cohort::pipeline
