#include "spank/step.hpp"

#include <algorithm>
#include <optional>

#include "common/error.hpp"
#include "common/text.hpp"
#include "launcher/placement_env.hpp"

namespace cohort::spank {
namespace {

// The one variable a step's GPUs are read from, named in every message about them.
constexpr const char* kStepGpusVariable = "SLURM_STEP_GPUS";

using topology::CpuSet;
using topology::GpuVendor;
using topology::NicKind;
using topology::Node;
using topology::RankPlacement;

std::vector<std::string> split_commas(const std::string& text) {
  const auto pieces = split(text, ',');
  return {pieces.begin(), pieces.end()};
}

}  // namespace

CpuSet cpus_of_cores(const Node& node, const std::string& cores) {
  CpuSet cpus;
  const int count = static_cast<int>(node.cores().size());
  for (int core : topology::parse_index_list(cores, "S_STEP_ALLOC_CORES " + cores)) {
    if (core < 0 || core >= count) {
      throw input_error("S_STEP_ALLOC_CORES " + cores + ": core " + std::to_string(core) + " is not in the topology (" +
                        node.source() + " has " + std::to_string(count) + " cores" +
                        (count > 0 ? ", 0-" + std::to_string(count - 1) : "") +
                        "); slurm.conf's node description and the topology disagree");
    }
    cpus |= node.cores()[static_cast<size_t>(core)].pus;
  }
  return cpus;
}

topology::PlanRequest make_request(const Node& node, const Settings& settings, const StepView& step) {
  topology::PlanRequest request;
  request.ranks = step.local_tasks;
  request.gpus_per_rank = settings.gpus_per_rank;
  request.threads_per_rank = settings.threads.value_or(0);
  request.smt = settings.smt.value_or(false);
  request.nics = settings.nic.value_or(topology::NicPolicy::nearest);
  if (!step.alloc_cores.empty()) request.allowed_cpus = cpus_of_cores(node, step.alloc_cores);
  request.allowed_gpus = step.gpus.empty() ? std::vector<int>{}
                                           : topology::parse_index_list(step.gpus, std::string(kStepGpusVariable) + " " + step.gpus);
  return request;
}

bool gpus_unlocated(const Node& node, const StepView& step) { return node.gpus().empty() && !step.gpus.empty(); }

namespace {

// Slurm's GPUs for a node whose topology shows none, shared out in Slurm's order: `per_rank`
// each when the user asked, else an even share; with fewer GPUs than ranks, ranks share.
void share_out_unlocated(std::vector<RankPlacement>& plan, const std::vector<int>& gpus, std::optional<int> per_rank,
                         const std::string& source) {
  const int n = static_cast<int>(gpus.size());
  const int ranks = static_cast<int>(plan.size());
  if (per_rank && *per_rank * ranks > n) {
    throw input_error("--cohort=gpus-per-rank " + std::to_string(*per_rank) + ": " + std::to_string(ranks) +
                      " tasks would need " + std::to_string(*per_rank * ranks) + " GPUs; " + kStepGpusVariable + " has " +
                      std::to_string(n));
  }
  const int each = per_rank ? *per_rank : std::max(1, n / std::max(1, ranks));
  for (int r = 0; r < ranks; ++r) {
    auto& p = plan[static_cast<size_t>(r)];
    p.gpus.clear();
    for (int k = 0; k < each; ++k) p.gpus.push_back(gpus[static_cast<size_t>((n >= ranks ? r * each + k : r) % n)]);
    p.broken.push_back("GPUs in Slurm's order without locality: the topology (" + source + ") shows no GPUs");
  }
}

}  // namespace

std::vector<RankPlacement> plan_step(const Node& node, const Settings& settings, const StepView& step) {
  topology::PlanRequest request = make_request(node, settings, step);
  topology::RequestNames names;
  names.ranks = "tasks on this node";
  names.gpus_per_rank = "--cohort=gpus-per-rank";
  names.threads_per_rank = "--cohort=threads";
  names.cpus = "S_STEP_ALLOC_CORES " + step.alloc_cores + " (CPUs)";
  names.gpus = kStepGpusVariable;
  // A node whose hwloc sees no GPU (no PCI information, or GPUs that are only device files,
  // as the mini-cluster's) still has the GPUs Slurm gave the step: the CPUs are planned and
  // the GPUs handed out as Slurm numbers them.
  if (gpus_unlocated(node, step)) {
    const std::vector<int> gpus = *request.allowed_gpus;
    const std::optional<int> per_rank = request.gpus_per_rank;
    request.allowed_gpus = std::vector<int>{};
    request.gpus_per_rank = 0;
    topology::check_request(node, request, names);
    auto plan = topology::plan(node, request);
    if (per_rank != 0) share_out_unlocated(plan, gpus, per_rank, node.source());
    return plan;
  }
  topology::check_request(node, request, names);
  return topology::plan(node, request);
}

launcher::Environment task_environment(const Node& node, const RankPlacement& placement,
                                       const launcher::Contract& contract, const StepView& step) {
  launcher::Environment env = contract.to_environment();
  launcher::DeviceNumbering numbering;
  if (!step.gpus.empty()) numbering.slurm_gpus = topology::parse_index_list(step.gpus, kStepGpusVariable);
  numbering.cuda_visible = split_commas(step.cuda_visible_devices);
  numbering.rocr_visible = split_commas(step.rocr_visible_devices);
  env.merge(launcher::placement_environment(node, placement, numbering));
  return env;
}

std::string describe(const RankPlacement& p) {
  std::string line = "GPUs " + (p.gpus.empty() ? std::string("none") : join(p.gpus, ",", [](int g) { return std::to_string(g); }));
  line += ", CPUs " + p.cpus.to_string();
  line += ", NUMA " + (p.numa.empty() ? std::string("none") : join(p.numa, ",", [](int n) { return std::to_string(n); }));
  line += ", NICs " + (p.nics.empty() ? std::string("none") : join(p.nics, ","));
  line += ", " + std::to_string(p.threads) + (p.threads == 1 ? " thread" : " threads");
  for (const auto& why : p.broken) line += "; " + why;
  return line;
}

}  // namespace cohort::spank
