// launcher/contract.hpp — the launch contract: what every rank sees in its environment.
//
// torchrun's names, so PyTorch's init_method="env://" works unchanged; cohort's own under
// COHORT_*. The SPANK plugin, `cohort launch` and local mode all produce it from here.
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
};

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

// The process environment as a map.
Environment current_environment();

}  // namespace cohort::launcher
