// launcher/supervisor.hpp — `cohort launch`: start a gang of ranks and keep it healthy.
//
// One gang is all ranks of a job step. Any rank that fails tears the whole gang down,
// which is then relaunched in the same allocation as the restart policy allows. A rank
// that hangs — stops beating its heartbeat, or is stopped by a signal — is dumped and
// treated as failed. On the batch script's preemption signal, ranks are asked to
// checkpoint and the job is requeued.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "launcher/contract.hpp"

namespace cohort::launcher {

struct JobSpec;

enum class RestartPolicy {
  never,       // any failure ends the job
  on_failure,  // restart after any failure, up to max_restarts
  exit_code,   // Kubeflow's rule: exit codes 1-127 are permanent, 128-255 retryable
};

RestartPolicy parse_restart_policy(const std::string& name);  // throws input_error

// Without --heartbeat-timeout, a rank that has beaten once is held to beating at least this
// often: torch.distributed's own limit on an NCCL collective (10 minutes), so a rank stuck
// in one is ended no later than PyTorch itself would end it. A rank that never beats is
// never held to it: it did not take part in the protocol.
inline constexpr double kDefaultHeartbeatTimeout = 600;

// A rank whose program, or any process it started, stays stopped (SIGSTOP, SIGTSTP: state
// T) this long is hung, whether it beats or not: a stopped process makes no progress at
// all. The bound only has to outlast stops that end by themselves (throttlers that stop and
// continue, the moments of a Slurm resume), and stays well below any heartbeat timeout.
inline constexpr double kStoppedRankSeconds = 10;

struct LaunchOptions {
  std::vector<std::string> command;  // what every rank runs
  bool local = false;                // run ranks on this machine, without Slurm
  int nproc = 1;                     // ranks in local mode
  int max_restarts = 0;              // like torchrun's --max-restarts
  RestartPolicy policy = RestartPolicy::on_failure;
  // Seconds without a heartbeat before a rank counts as hung. Unset: kDefaultHeartbeatTimeout,
  // from the rank's first beat on. 0: no hang detection at all, stopped ranks included.
  std::optional<double> heartbeat_timeout;
  double grace = 60;                 // seconds ranks get to checkpoint before requeue
  int preempt_signal = 0;            // the batch script's warning signal (SIGUSR1)
  int checkpoint_signal = 0;         // sent to ranks on preemption; 0: only the flag file
  int max_requeues = 3;              // bound on preemption requeues of one job
  std::string output_dir;            // per-rank log files; empty: lines prefixed by rank
  std::string run_dir;               // status, heartbeat and flag files of this launch
  std::string self;                  // path of the cohort executable the ranks run
  bool bind = true;                  // local mode: place ranks with the topology planner
  // Roles (PyTorchJob, TFJob, MPIJob) from `--spec`; null for one command on all ranks.
  std::shared_ptr<const JobSpec> spec;
};

struct RankOutcome {
  int rank = 0;
  std::string host;
  int exit_code = -1;    // -1 when ended by a signal, or never reported
  int term_signal = 0;
  bool hung = false;     // stopped beating, or was stopped, and was killed for it
  bool stopped = false;  // hung because a signal stopped it, not for want of a heartbeat
  bool reported = false; // the rank's runner wrote its outcome
  bool lost = false;     // its watcher's connection ended while it ran: its node or the network failed
  long long ended_ns = 0;  // wall clock at the end, to order failures
  std::string hang_why;    // hung: what its watcher saw ("no heartbeat for 60 s")
  std::string stack_file;  // hung: where its stack was dumped, in the attempt's directory
};

// The wait before restart number `restart` (1, 2, …): 1 s, doubling each time, at most 30 s,
// so a gang that fails at once does not hammer the scheduler and a flaky one restarts soon.
double restart_backoff_seconds(int restart);

// Runs the gang to completion and returns the process exit status: 0 exactly when the
// last attempt succeeded on every rank. Prints progress and one summary line on stderr.
int supervise(const LaunchOptions& options);

// Whether `line`, from srun's stderr, is srun's or slurmstepd's report of tasks that a
// teardown cohort began has ended ("srun: error: node2: task 0: Killed", "srun: Job step
// aborted: ...", "slurmstepd: error: *** STEP 7.0 ON node1 CANCELLED AT ... ***"). cohort
// says what it ended and why in its own words, so such lines are left out once it has
// begun a teardown; before that, they are the news of a failure and are kept.
bool is_teardown_report(std::string_view line);

// The per-rank side: runs `command` as one rank under the contract (and as a replica of
// `role`, when the job has roles), keeps its heartbeat watch and reports its outcome to
// the run directory. Returns the rank's exit status.
int run_rank(std::vector<std::string> command, std::string role = {});

// The role that makes a wrapper take its role, and the role's command, from its rank: every
// role in one step of a plain allocation, the roles packed onto its nodes in rank order.
inline constexpr const char* kRoleByRank = "by-rank";
struct RankRole {
  std::string name;
  std::vector<std::string> command;
  std::pair<std::string, std::vector<std::string>> as_pair() && { return {std::move(name), std::move(command)}; }
};
// From the role table (COHORT_LAUNCH_ROLES, "name:offset:replicas,...") and the roles'
// commands (COHORT_LAUNCH_COMMANDS, a JSON object of argv arrays) the supervisor hands out.
RankRole role_by_rank(const Environment& env, int rank);

}  // namespace cohort::launcher
