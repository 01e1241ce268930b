#include "spank/step.hpp"

#include <algorithm>

#include "common/error.hpp"

namespace cohort::spank {
namespace {

using topology::CpuSet;
using topology::GpuVendor;
using topology::NicKind;
using topology::Node;
using topology::RankPlacement;

template <typename T, typename F>
std::string join(const std::vector<T>& items, F&& format) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ',';
    out += format(item);
  }
  return out;
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    out.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// The name a task uses for node GPU `gpu`. Slurm numbers the step's GPUs in its own
// variable, globally without device cgroups and from 0 with them; following that
// numbering keeps the value valid in either case. Without it, the runtime's own index.
std::string visible_name(const Node& node, int gpu, const std::vector<int>& step_gpus,
                         const std::vector<std::string>& slurm_names) {
  if (!slurm_names.empty() && slurm_names.size() == step_gpus.size()) {
    auto it = std::find(step_gpus.begin(), step_gpus.end(), gpu);
    if (it != step_gpus.end()) return slurm_names[static_cast<size_t>(it - step_gpus.begin())];
  }
  return std::to_string(node.gpus()[static_cast<size_t>(gpu)].runtime_index);
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
                                           : topology::parse_index_list(step.gpus, step.gpus_variable + " " + step.gpus);
  return request;
}

std::vector<RankPlacement> plan_step(const Node& node, const Settings& settings, const StepView& step) {
  topology::PlanRequest request = make_request(node, settings, step);
  topology::RequestNames names;
  names.ranks = "tasks on this node";
  names.gpus_per_rank = "--cohort=gpus-per-rank";
  names.threads_per_rank = "--cohort=threads";
  names.cpus = "S_STEP_ALLOC_CORES " + step.alloc_cores + " (CPUs)";
  names.gpus = step.gpus_variable;
  topology::check_request(node, request, names);
  return topology::plan(node, request);
}

launcher::Environment task_environment(const Node& node, const RankPlacement& placement,
                                       const launcher::Contract& contract, const StepView& step) {
  launcher::Environment env = contract.to_environment();
  env["COHORT_CPUS"] = placement.cpus.to_string();
  env["COHORT_GPUS"] = join(placement.gpus, [](int g) { return std::to_string(g); });
  env["COHORT_NICS"] = join(placement.nics, [](const std::string& n) { return n; });
  env["COHORT_NUMA"] = join(placement.numa, [](int n) { return std::to_string(n); });
  env["OMP_NUM_THREADS"] = std::to_string(placement.threads);

  if (!placement.gpus.empty()) {
    const std::vector<int> step_gpus =
        step.gpus.empty() ? std::vector<int>{} : topology::parse_index_list(step.gpus, step.gpus_variable);
    const GpuVendor vendor = node.gpus()[static_cast<size_t>(placement.gpus.front())].vendor;
    auto names_from = [&](const std::string& slurm_value) {
      const auto slurm_names = split_commas(slurm_value);
      return join(placement.gpus, [&](int g) { return visible_name(node, g, step_gpus, slurm_names); });
    };
    switch (vendor) {
      case GpuVendor::nvidia:
        env["CUDA_VISIBLE_DEVICES"] = names_from(step.cuda_visible_devices);
        // CUDA's default order is fastest first, which need not match Slurm's or hwloc's.
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID";
        break;
      case GpuVendor::amd:
        env["ROCR_VISIBLE_DEVICES"] =
            names_from(step.rocr_visible_devices.empty() ? step.cuda_visible_devices : step.rocr_visible_devices);
        break;
      case GpuVendor::intel:
        env["ZE_AFFINITY_MASK"] = names_from("");
        break;
      case GpuVendor::other:
        break;
    }
  }

  std::vector<std::string> hcas, ucx;
  for (const std::string& name : placement.nics) {
    auto nic = std::find_if(node.nics().begin(), node.nics().end(), [&](const auto& n) { return n.name == name; });
    if (nic == node.nics().end()) continue;
    const std::string port = std::to_string(nic->port > 0 ? nic->port : 1);
    if (nic->kind == NicKind::openfabrics) {
      hcas.push_back(name + ":" + port);
      ucx.push_back(name + ":" + port);
    } else {
      ucx.push_back(nic->netdevs.empty() ? name : nic->netdevs.front());
    }
  }
  // '=' makes NCCL match names exactly, so mlx5_1 does not also select mlx5_10.
  if (!hcas.empty()) env["NCCL_IB_HCA"] = "=" + join(hcas, [](const std::string& h) { return h; });
  if (!ucx.empty()) env["UCX_NET_DEVICES"] = join(ucx, [](const std::string& u) { return u; });
  return env;
}

std::string describe(const RankPlacement& p) {
  std::string line = "GPUs " + (p.gpus.empty() ? std::string("none") : join(p.gpus, [](int g) { return std::to_string(g); }));
  line += ", CPUs " + p.cpus.to_string();
  line += ", NUMA " + (p.numa.empty() ? std::string("none") : join(p.numa, [](int n) { return std::to_string(n); }));
  line += ", NICs " + (p.nics.empty() ? std::string("none") : join(p.nics, [](const std::string& n) { return n; }));
  line += ", " + std::to_string(p.threads) + (p.threads == 1 ? " thread" : " threads");
  for (const auto& why : p.broken) line += "; " + why;
  return line;
}

}  // namespace cohort::spank
