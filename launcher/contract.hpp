// launcher/contract.hpp — the launch contract: what every rank sees in its environment.
//
// torchrun's names, so PyTorch's init_method="env://" works unchanged; cohort's own under
// COHORT_*. The SPANK plugin, `cohort launch` and local mode all produce it from here, and
// a rank's wrapper reads it back from here: no other file names these variables.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cohort::launcher {

using Environment = std::map<std::string, std::string>;

struct Contract {
  int rank = 0;              // RANK
  int world_size = 1;        // WORLD_SIZE
  int local_rank = 0;        // LOCAL_RANK
  int local_world_size = 1;  // LOCAL_WORLD_SIZE
  int group_rank = 0;        // GROUP_RANK: node index within the step
  std::string master_addr;   // MASTER_ADDR
  int master_port = 0;       // MASTER_PORT
  int restart_count = 0;     // COHORT_RESTART_COUNT and TORCHELASTIC_RESTART_COUNT
  std::string heartbeat_file;      // COHORT_HEARTBEAT_FILE, empty when no heartbeat is kept
  std::string checkpoint_request;  // COHORT_CHECKPOINT_REQUEST flag file, when set

  // The variables, ready to merge into a rank's environment.
  Environment to_environment() const;

  bool operator==(const Contract&) const = default;
};

// The contract read back from the variables to_environment() writes:
// contract_from_environment(c.to_environment()) == c. A variable that is unset or empty
// keeps Contract's default, except LOCAL_RANK (RANK's value) and LOCAL_WORLD_SIZE
// (WORLD_SIZE's). Throws cohort::Error (input) naming a variable that is not a number.
Contract contract_from_environment(const Environment& env);

// MASTER_PORT for a job step: the same on every node, different for the steps of one job
// so that a relaunched gang never meets a lingering listener of the previous one.
// Ports fall in [base, base + range).
int derive_master_port(long job_id, long step_id, int base = 29500, int range = 2000);

// The contract of one task of a Slurm step, from the variables slurmstepd sets
// (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NODEID, SLURM_STEP_TASKS_PER_NODE,
// SLURM_STEP_NODELIST, SLURM_JOB_ID, SLURM_STEP_ID). MASTER_ADDR is the step's first node,
// unless `master_addr` names a better one (an address resolved by the launcher).
// Throws cohort::Error naming the missing or malformed variable.
Contract contract_from_slurm(const Environment& env, const std::optional<std::string>& master_addr = {});

// `cohort launch` in an allocation runs the gang as one srun step. Slurm says where each
// task stands (contract_from_slurm); the launcher decides for the whole gang what Slurm
// cannot know: the restart count, the checkpoint request, the rendezvous address it resolved
// and, for jobs with roles, the rendezvous port (0: derived from the step, as for any task).
// gang_environment() writes those for srun's environment; contract_from_slurm_gang() reads
// one task's contract back from Slurm's variables and them. The rendezvous travels as
// COHORT_MASTER_ADDR and COHORT_MASTER_PORT, names of the launcher's own, so that a
// MASTER_ADDR a SPANK plugin sets for the task cannot stand in for it.
Environment gang_environment(const Contract& gang);
Contract contract_from_slurm_gang(const Environment& env);

// The process environment as a map.
Environment current_environment();

}  // namespace cohort::launcher
