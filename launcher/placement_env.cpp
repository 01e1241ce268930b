#include "launcher/placement_env.hpp"

#include <algorithm>

#include "common/text.hpp"

namespace cohort::launcher {
namespace {

using topology::GpuVendor;
using topology::NicKind;
using topology::Node;

std::string number(int n) { return std::to_string(n); }

// The name the rank uses for node GPU `gpu`: Slurm's entry for it when Slurm numbered the
// step's GPUs, else the runtime's own index.
std::string visible_name(const Node& node, int gpu, const std::vector<int>& slurm_gpus,
                         const std::vector<std::string>& slurm_names) {
  if (!slurm_names.empty() && slurm_names.size() == slurm_gpus.size()) {
    auto it = std::find(slurm_gpus.begin(), slurm_gpus.end(), gpu);
    if (it != slurm_gpus.end()) return slurm_names[static_cast<size_t>(it - slurm_gpus.begin())];
  }
  // A GPU Slurm gave that the topology does not show keeps Slurm's own index.
  if (static_cast<size_t>(gpu) >= node.gpus().size()) return std::to_string(gpu);
  return std::to_string(node.gpus()[static_cast<size_t>(gpu)].runtime_index);
}



}  // namespace

Environment placement_environment(const Node& node, const topology::RankPlacement& placement,
                                  const DeviceNumbering& numbering) {
  Environment env;
  env["COHORT_CPUS"] = placement.cpus.to_string();
  env["COHORT_GPUS"] = join(placement.gpus, ",", number);
  env["COHORT_NICS"] = join(placement.nics, ",");
  env["COHORT_NUMA"] = join(placement.numa, ",", number);
  env["OMP_NUM_THREADS"] = std::to_string(placement.threads);

  auto names_from = [&](const std::vector<std::string>& slurm_names) {
    return join(placement.gpus, ",", [&](int g) { return visible_name(node, g, numbering.slurm_gpus, slurm_names); });
  };
  const bool unlocated = !placement.gpus.empty() && static_cast<size_t>(placement.gpus.front()) >= node.gpus().size();
  if (unlocated) {
    // GPUs the topology does not show are known only as Slurm's gres, of no known vendor:
    // each variable Slurm set for the step is narrowed to the rank's GPUs (CUDA's when
    // Slurm set none).
    if (!numbering.cuda_visible.empty() || numbering.rocr_visible.empty()) {
      env["CUDA_VISIBLE_DEVICES"] = names_from(numbering.cuda_visible);
    }
    if (!numbering.rocr_visible.empty()) env["ROCR_VISIBLE_DEVICES"] = names_from(numbering.rocr_visible);
  } else if (!placement.gpus.empty()) {
    const GpuVendor vendor = node.gpus()[static_cast<size_t>(placement.gpus.front())].vendor;
    switch (vendor) {
      case GpuVendor::nvidia:
        env["CUDA_VISIBLE_DEVICES"] = names_from(numbering.cuda_visible);
        // CUDA's default order is fastest first, which need not match Slurm's or hwloc's.
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID";
        break;
      case GpuVendor::amd:
        env["ROCR_VISIBLE_DEVICES"] =
            names_from(numbering.rocr_visible.empty() ? numbering.cuda_visible : numbering.rocr_visible);
        break;
      case GpuVendor::intel:
        env["ZE_AFFINITY_MASK"] = names_from({});
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
  if (!hcas.empty()) env["NCCL_IB_HCA"] = "=" + join(hcas, ",");
  if (!ucx.empty()) env["UCX_NET_DEVICES"] = join(ucx, ",");
  return env;
}

}  // namespace cohort::launcher
