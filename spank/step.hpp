// spank/step.hpp — from what Slurm says about a step on one node to each task's plan and
// environment. Pure C++ (no Slurm symbols, no hwloc calls): the remote context gathers
// the text Slurm gives it into a StepView, and this file does the rest.
//
//   StepView view;                      // S_STEP_ALLOC_CORES, SLURM_STEP_GPUS, …
//   auto ranks = plan_step(node, settings, view);
//   Environment env = task_environment(node, ranks[task], contract, view);
#pragma once

#include <string>
#include <vector>

#include "launcher/contract.hpp"
#include "spank/settings.hpp"
#include "topology/placement.hpp"
#include "topology/topology.hpp"

namespace cohort::spank {

// One step on one node, as Slurm describes it.
struct StepView {
  int local_tasks = 1;
  // S_STEP_ALLOC_CORES: Slurm's core indices ("0-3,8"), which follow hwloc's logical core
  // order. Empty: the step may use every allowed CPU of the node.
  std::string alloc_cores;
  // SLURM_STEP_GPUS, as slurmstepd sets it: the node's GPU indices the step was given.
  // Unset variables mean the step has no GPUs: a step never takes GPUs Slurm did not give.
  std::string gpus;
  // What Slurm put in the step's CUDA_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES, in the order
  // of `gpus`: global indices without device cgroups, 0..n-1 with them. Empty when unset.
  std::string cuda_visible_devices;
  std::string rocr_visible_devices;
};

// The CPUs of Slurm's cores: every hardware thread of each listed core. Throws
// cohort::input_error naming S_STEP_ALLOC_CORES when a core is not in the topology.
topology::CpuSet cpus_of_cores(const topology::Node& node, const std::string& cores);

// The planner's request for this step: one rank per local task, restricted to the step's
// cores and GPUs, tuned by the user's settings.
topology::PlanRequest make_request(const topology::Node& node, const Settings& settings, const StepView& step);

// True when Slurm gave the step GPUs that the node's topology does not show at all (hwloc
// found none: no PCI information, or the mini-cluster's emulated GPUs). plan_step then
// plans the CPUs and hands the GPUs out in Slurm's order, without locality, each rank's
// `broken` saying so.
bool gpus_unlocated(const topology::Node& node, const StepView& step);

// Every local task's placement. Throws cohort::input_error whose message names the
// setting or Slurm variable at fault ("--cohort=gpus-per-rank 4: only 2 GPUs are allowed").
std::vector<topology::RankPlacement> plan_step(const topology::Node& node, const Settings& settings,
                                               const StepView& step);

// What one task's environment gains: the launch contract, the devices it may use in the
// numbering the task sees, thread count, and COHORT_CPUS/GPUS/NICS/NUMA.
launcher::Environment task_environment(const topology::Node& node, const topology::RankPlacement& placement,
                                       const launcher::Contract& contract, const StepView& step);

// One line for `verbose`: "GPUs 3, CPUs 3,19, NUMA 0, NICs mlx5_3, 2 threads".
std::string describe(const topology::RankPlacement& placement);

}  // namespace cohort::spank
