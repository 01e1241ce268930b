// launcher/placement_env.hpp — what a rank's environment gains from its placement.
//
// The devices it may use, in the numbering the rank sees (CUDA_VISIBLE_DEVICES and
// CUDA_DEVICE_ORDER, ROCR_VISIBLE_DEVICES or ZE_AFFINITY_MASK), its network devices
// (NCCL_IB_HCA, UCX_NET_DEVICES), OMP_NUM_THREADS, and cohort's own COHORT_CPUS,
// COHORT_GPUS, COHORT_NICS and COHORT_NUMA. The SPANK plugin and local mode both use it,
// so a rank sees the same contract however it was placed.
#pragma once

#include <string>
#include <vector>

#include "launcher/contract.hpp"
#include "topology/placement.hpp"
#include "topology/topology.hpp"

namespace cohort::launcher {

// How the rank's GPU runtime numbers the node's GPUs. Slurm numbers a step's GPUs in its
// own CUDA_VISIBLE_DEVICES: global indices without device cgroups, 0..n-1 with them.
// Following that numbering keeps the value right in either case. Empty: the runtime's
// own index of each GPU (a rank started outside Slurm).
struct DeviceNumbering {
  std::vector<int> slurm_gpus;            // the node GPU indices Slurm gave the step, in order
  std::vector<std::string> cuda_visible;  // Slurm's CUDA_VISIBLE_DEVICES entries, same order
  std::vector<std::string> rocr_visible;  // Slurm's ROCR_VISIBLE_DEVICES entries, same order
};

Environment placement_environment(const topology::Node& node, const topology::RankPlacement& placement,
                                  const DeviceNumbering& numbering = {});

}  // namespace cohort::launcher
