// topology/placement.hpp — which GPUs, network devices, cores and memory each local rank
// of a job step gets.
//
// The rules:
//   1. Ranks spread over NUMA domains in proportion to the GPUs they hold there (to the
//      allowed cores, when ranks hold no GPUs), each package's first domain before any
//      package's second; CPU-only ranks also take the cores of a domain left without ranks.
//   2. Fewer ranks than GPUs: each rank gets several GPUs of one locality, nearest first.
//   3. A rank's cores are local to its GPUs (in its NUMA domain).
//   4. Cpusets are disjoint while there are cores enough, and use whole cores before
//      SMT siblings.
//   5. A rank's NIC is the fabric NIC nearest its GPUs; equally near NICs are shared out
//      evenly between the ranks that tie. Ethernet counts only without a fabric NIC.
// When a rule cannot hold (more ranks than cores, GPUs shared, GPUs spread unevenly, no
// allowed core near a GPU), the affected ranks say which rule broke and why in `broken`;
// a plan is never silently worse than asked.
//
// Deterministic: the same node and request always give the same plan. Pure: no hwloc
// calls, no global state, no output; safe to call from any thread.
//
//   PlanRequest request;
//   request.ranks = 8;
//   for (const auto& r : plan(node, request))
//     std::cout << r.local_rank << " GPU " << r.gpus[0] << " " << r.cpus.to_string() << "\n";
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "topology/topology.hpp"

namespace cohort::topology {

enum class NicPolicy {
  nearest,  // each rank gets the NIC nearest its GPUs (one per GPU, shared out on ties)
  all,      // each rank gets every fabric NIC, nearest first
};

struct PlanRequest {
  int ranks = 1;                 // local ranks on this node, >= 1
  // GPUs for each rank. Unset: as many as the allowed GPUs give each rank evenly (at
  // least 1 when there are GPUs); 0: a CPU-only plan.
  std::optional<int> gpus_per_rank;
  int threads_per_rank = 0;      // 0: one thread per core the rank gets (per PU with smt)
  bool smt = false;              // count hardware threads rather than cores for threads
  NicPolicy nics = NicPolicy::nearest;
  // The CPUs the step may use (Slurm's cpuset for the step); unset: the node's allowed CPUs.
  std::optional<CpuSet> allowed_cpus;
  // The GPUs the step was given, as node indices (Slurm's GPU indices); unset: all GPUs.
  std::optional<std::vector<int>> allowed_gpus;
};

struct RankPlacement {
  int local_rank = 0;
  std::vector<int> gpus;           // Gpu::index values, nearest to each other first
  std::vector<std::string> nics;   // Nic::name values, nearest first
  CpuSet cpus;
  std::vector<int> numa;           // NUMA nodes to take memory from
  int threads = 1;
  std::string reason;              // why this placement, one line
  std::vector<std::string> broken; // rules this rank's placement could not keep, and why
};

// Plans every local rank. Throws cohort::input_error when the request does not fit the
// node: ranks < 1, CPUs or GPUs that are not on the node, more GPUs per rank than allowed.
std::vector<RankPlacement> plan(const Node& node, const PlanRequest& request);

// The same checks plan() makes, with messages that start with the name the caller's
// users know the field by and the value: with `gpus = "--gpus"` an unknown GPU reads
// "--gpus 0,9: GPU 9 is not on this node (it has GPUs 0-7)". The CLI and the SPANK
// plugin name their own options this way.
struct RequestNames {
  std::string ranks = "ranks";
  std::string gpus_per_rank = "GPUs per rank";
  std::string threads_per_rank = "threads per rank";
  std::string cpus = "allowed CPUs";
  std::string gpus = "allowed GPUs";
};
void check_request(const Node& node, const PlanRequest& request, const RequestNames& names);

}  // namespace cohort::topology
