#include "launcher/launch_command.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <set>
#include <sstream>

#include "common/environment.hpp"
#include "common/error.hpp"
#include "common/options.hpp"
#include "common/process.hpp"
#include "common/scratch_dir.hpp"
#include "common/text.hpp"
#include "launcher/job_spec.hpp"
#include "launcher/lineage_record.hpp"
#include "launcher/supervisor.hpp"

namespace cohort::launcher {
namespace {

namespace po = options::po;

options::Help launch_help() {
  return {"launch",
          {"[options] -- COMMAND [ARGS...]"},
          "Starts every rank of a job step running COMMAND and supervises the gang: when any rank\n"
          "fails or hangs, all ranks are torn down and relaunched as the restart policy allows; on\n"
          "the batch script's warning signal the ranks are asked to checkpoint and the job is\n"
          "requeued. Inside an allocation it runs one srun step with all tasks; with --local (or\n"
          "outside Slurm) it runs --nproc ranks on this machine. Every rank gets the launch\n"
          "contract: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR,\n"
          "MASTER_PORT, TORCHELASTIC_RESTART_COUNT, COHORT_RESTART_COUNT, COHORT_HEARTBEAT_FILE,\n"
          "COHORT_CHECKPOINT_REQUEST.",
          {"in an sbatch script:",
           "  #SBATCH -N 2 --ntasks-per-node=4 --signal=B:USR1@120 --requeue",
           "  exec cohort launch --max-restarts 3 --heartbeat-timeout 300 -- python3 train.py",
           "on this machine:",
           "  cohort launch --local --nproc 2 -- python3 train.py",
           "roles, as a heterogeneous job:",
           "  cohort launch --spec tfjob.yaml --emit-sbatch > job.sh && sbatch job.sh"}};
}

// What the options give that is not a LaunchOptions field as it stands.
struct Given {
  std::string policy = "on-failure", preempt = "USR1", checkpoint = "none", spec_path, spec_yaml, role;
  double heartbeat_timeout = 0;
};

options::Parser launch_parser(LaunchOptions& o, Given& g) {
  options::Parser parser(launch_help());
  parser.add()
      ("local", "run the ranks on this machine instead of in a Slurm step")
      ("nproc", po::value<int>(&o.nproc)->value_name("N"), "ranks to run in local mode (default 1)")
      ("no-bind", "local mode: leave the ranks unplaced (no CPU, memory or GPU assignment)")
      ("max-restarts", po::value<int>(&o.max_restarts)->default_value(0)->value_name("N"),
       "gang restarts allowed after failures")
      ("restart-policy", po::value<std::string>(&g.policy)->default_value("on-failure")->value_name("POLICY"),
       "never | on-failure | exit-code (1-127 permanent, 128-255 retryable)")
      ("heartbeat-timeout", po::value<double>(&g.heartbeat_timeout)->value_name("SECONDS"),
       "seconds without a heartbeat before a rank counts as hung (default: 600, from the rank's first beat; "
       "0: no hang detection, stopped ranks included)")
      ("grace", po::value<double>(&o.grace)->default_value(60)->value_name("SECONDS"),
       "seconds ranks get to checkpoint before requeue")
      ("preempt-signal", po::value<std::string>(&g.preempt)->default_value("USR1")->value_name("SIGNAL"),
       "the batch script's warning signal (sbatch --signal=B:SIG@T)")
      ("checkpoint-signal", po::value<std::string>(&g.checkpoint)->default_value("none")->value_name("SIGNAL"),
       "signal sent to ranks on preemption besides the flag file (none: flag file only)")
      ("max-requeues", po::value<int>(&o.max_requeues)->default_value(3)->value_name("N"),
       "requeues after preemption allowed")
      ("output-dir", po::value<std::string>(&o.output_dir)->value_name("DIR"),
       "write each rank's output to DIR/rank-R.log")
      ("spec", po::value<std::string>(&g.spec_path)->value_name("FILE"),
       "a PyTorchJob, TFJob or MPIJob spec (YAML): roles, replicas, resources, policies")
      ("spec-yaml", po::value<std::string>(&g.spec_yaml)->value_name("YAML"),
       "the same spec given as text, as a Katib trial with a PyTorchJob, TFJob or MPIJob trialSpec runs")
      ("emit-sbatch", "with --spec: print the sbatch script (one hetjob component per role) and exit")
      ("run-dir", po::value<std::string>(&o.run_dir)->value_name("DIR"),
       "shared directory for the ranks' status files (default: $COHORT_RUN_DIR/job-ID, else "
       "$SCRATCH/.cohort/runs/job-ID, else $HOME/.cohort/runs/job-ID)");
  parser.add_hidden()("as-rank", "run as one rank's wrapper (started by cohort launch itself)")(
      "role", po::value<std::string>(&g.role), "the rank's role, with --as-rank; by-rank: from its rank (roles packed)");
  // The command may also come before "--" when it takes no options of its own.
  parser.operands(-1);
  return parser;
}

// How many nodes the cluster has, as sinfo counts them; nullopt where Slurm cannot be asked
// (a script may be written away from the cluster).
std::optional<int> cluster_nodes() {
  if (!find_program("sinfo")) return std::nullopt;
  try {
    RunOptions o;
    o.timeout = std::chrono::seconds(30);
    const ProcessResult r = run_process({"sinfo", "-h", "-N", "-o", "%N"}, o);
    if (!r.ok()) return std::nullopt;
    std::set<std::string> names;
    for (auto line : split(r.out, '\n')) {
      if (!line.empty()) names.emplace(line);
    }
    return static_cast<int>(names.size());
  } catch (const Error&) {
    return std::nullopt;
  }
}

// Where a job's run directory goes when --run-dir is not given: a directory every node
// shares, never the submit directory, which is often a source tree.
std::string default_run_root() {
  if (const std::string root = env_or("COHORT_RUN_DIR"); !root.empty()) return root;
  for (const char* base : {"SCRATCH", "HOME"}) {
    if (const std::string dir = env_or(base); !dir.empty()) return dir + "/.cohort/runs";
  }
  throw input_error("no place for the run directory: set COHORT_RUN_DIR to a directory every node shares, or give --run-dir");
}

// `--emit-sbatch`: heterogeneous where the cluster has a node for each role's component,
// else the roles packed into one allocation.
int print_sbatch(const JobSpec& spec, const std::string& spec_path, const std::string& self) {
  bool packed = false;
  if (const auto nodes = cluster_nodes()) {
    if (auto why = why_it_cannot_start(spec, *nodes)) throw input_error("--spec " + spec_path + ": " + *why);
    packed = nodes_needed(spec) > *nodes;
  }
  std::cout << emit_sbatch(spec, std::filesystem::absolute(spec_path).string(), self, packed);
  return 0;
}

}  // namespace

int parse_signal(const std::string& option, const std::string& text) {
  std::string name = text;
  if (name.rfind("SIG", 0) == 0) name = name.substr(3);
  if (const auto n = parse_integer(name, 1, NSIG - 1)) return static_cast<int>(*n);
  for (int s = 1; s < NSIG; ++s) {
    const char* abbrev = ::sigabbrev_np(s);
    if (abbrev && name == abbrev) return s;
  }
  throw input_error(option + " " + text + ": not a signal (e.g. USR1, SIGUSR2, 10)");
}

int launch_command(const std::vector<std::string>& args) {
  // Everything after "--" is the command, untouched by option parsing.
  auto dash = std::find(args.begin(), args.end(), "--");
  std::vector<std::string> own(args.begin(), dash);
  std::vector<std::string> command(dash == args.end() ? args.end() : dash + 1, args.end());

  LaunchOptions o;
  Given given;
  options::Parser parser = launch_parser(o, given);
  auto parsed = parser.parse(own);
  if (!parsed) return 0;
  const po::variables_map& vm = parsed->values;
  command.insert(command.begin(), parsed->operands.begin(), parsed->operands.end());
  if (vm.count("as-rank")) return run_rank(command, given.role);

  o.self = own_executable().string();
  if (!given.spec_yaml.empty()) {
    if (!given.spec_path.empty()) throw input_error("give --spec FILE or --spec-yaml TEXT, not both");
    if (vm.count("emit-sbatch")) throw input_error("--emit-sbatch needs --spec FILE: the script runs the spec from its file");
  }
  if (!given.spec_path.empty() || !given.spec_yaml.empty()) {
    const std::string named = given.spec_yaml.empty() ? "--spec " + given.spec_path : std::string("--spec-yaml");
    if (!command.empty()) throw input_error(named + ": the roles' commands come from the spec; drop the command after --");
    auto spec = std::make_shared<JobSpec>(given.spec_yaml.empty() ? load_job_spec(given.spec_path)
                                                                  : parse_job_spec(given.spec_yaml, "--spec-yaml"));
    for (const auto& note : spec->notes) std::cerr << "cohort: launch: " << named << ": " << note << "\n";
    if (vm.count("emit-sbatch")) return print_sbatch(*spec, given.spec_path, o.self);
    if (vm["max-restarts"].defaulted()) o.max_restarts = spec->backoff_limit;
    o.spec = spec;
    o.command = {"(" + spec->name + ")"};
  } else {
    if (vm.count("emit-sbatch")) throw input_error("--emit-sbatch needs --spec FILE");
    if (command.empty()) throw input_error("no command: give the program after --, e.g. cohort launch -- python3 train.py");
    o.command = command;
  }
  o.policy = parse_restart_policy(given.policy);
  o.preempt_signal = parse_signal("--preempt-signal", given.preempt);
  o.checkpoint_signal = given.checkpoint == "none" ? 0 : parse_signal("--checkpoint-signal", given.checkpoint);
  if (o.max_restarts < 0) throw input_error("--max-restarts " + std::to_string(o.max_restarts) + ": must be 0 or more");
  if (o.max_requeues < 0) throw input_error("--max-requeues " + std::to_string(o.max_requeues) + ": must be 0 or more");
  if (vm.count("heartbeat-timeout")) {
    if (!(given.heartbeat_timeout >= 0)) {
      std::ostringstream text;
      text << given.heartbeat_timeout;
      throw input_error("--heartbeat-timeout " + text.str() + ": must be 0 (off) or more seconds");
    }
    o.heartbeat_timeout = given.heartbeat_timeout;
  }
  if (o.grace < 0) throw input_error("--grace: must be 0 or more seconds");
  const std::string job = env_or("SLURM_JOB_ID");
  o.local = vm.count("local") || job.empty();
  o.bind = !vm.count("no-bind");
  if (vm.count("nproc") && !o.local) {
    throw input_error("--nproc " + std::to_string(o.nproc) +
                      ": inside an allocation the ranks are the allocation's tasks; add --local to run them here");
  }
  if (o.nproc < 1 || o.nproc > 4096) throw input_error("--nproc " + std::to_string(o.nproc) + ": must be 1..4096");

  if (!o.output_dir.empty()) o.output_dir = std::filesystem::absolute(o.output_dir).string();

  bool own_run_dir = o.run_dir.empty();
  if (own_run_dir) {
    if (o.local) {
      std::string tmpl = (std::getenv("TMPDIR") ? std::string(std::getenv("TMPDIR")) : "/tmp") + "/cohort-launch.XXXXXX";
      if (!::mkdtemp(tmpl.data())) throw Error("cannot create a run directory " + tmpl + ": " + std::strerror(errno));
      o.run_dir = tmpl;
    } else {
      o.run_dir = default_run_root() + "/job-" + job;
    }
  }
  o.run_dir = std::filesystem::absolute(o.run_dir).string();
  // Made here, it is scratch, gone however the launch ends, unless a requeued job keeps it.
  RemovedAtExit scratch(own_run_dir ? o.run_dir : "");
  const std::string lineage_name = record_lineage_start(o, job);
  int status = supervise(o);
  bool requeued = status == 0 && std::filesystem::exists(o.run_dir + "/checkpoint-request");
  if (requeued) scratch.keep();
  record_lineage_end(lineage_name, o, status, requeued);
  return status;
}

}  // namespace cohort::launcher
