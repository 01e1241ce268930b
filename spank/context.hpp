// spank/context.hpp — shared by the plugin's files: its state, its logging, and one entry
// point per Slurm context. plugin.cpp dispatches the SPANK callbacks here; local.cpp
// (srun, salloc, sbatch) validates, remote.cpp (slurmstepd) plans and applies.
//
// Every function may throw; plugin.cpp turns exceptions into a logged line and -1, so
// nothing C++ reaches Slurm.
#pragma once

// spank.h declares the callbacks (slurm_spank_init, ...) outside its own extern "C"
// block; C linkage here is what lets plugin.cpp define them under the names Slurm looks up.
extern "C" {
#include <slurm/spank.h>
}

#include <optional>
#include <string>
#include <vector>

#include "launcher/contract.hpp"
#include "topology/binding.hpp"
#include "spank/settings.hpp"
#include "spank/step.hpp"
#include "topology/placement.hpp"
#include "topology/topology.hpp"

namespace cohort::spank::plugin {

// One process loads the plugin once; in slurmstepd the tasks are forked from it, so what
// user_init computes here is what every task_init reads.
struct State {
  PluginArgs args;
  std::optional<std::string> option;  // --cohort's argument when given ("" when bare)
  Settings settings;
  bool enabled = false;

  // Remote context: this node's share of a placed step.
  bool active = false;
  std::string host;
  std::optional<topology::Node> node;
  StepView view;
  std::vector<topology::RankPlacement> plan;
  std::string plan_error;  // why planning failed; each task then fails with it
  std::optional<topology::Machine> machine;
  launcher::Contract step_contract;  // the fields every task of the step shares
};
State& state();

// "spank_cohort: " + message, through Slurm's logging: errors reach the user and the log.
void log_error(const std::string& message);
// To the user: the terminal of srun, or the job's stderr (info only reaches the logs).
void log_user(const std::string& message);
// Logs a failed SPANK call with its name and Slurm's reason; true when rc is success.
bool check(spank_err_t rc, const std::string& call);

// A variable of the job's environment (remote context), nullopt when unset.
std::optional<std::string> job_getenv(spank_t sp, const std::string& name);

int local_init_post_opt(spank_t sp);   // local and allocator contexts
int remote_init_post_opt(spank_t sp);
int remote_user_init(spank_t sp);
int remote_task_init(spank_t sp);

}  // namespace cohort::spank::plugin
