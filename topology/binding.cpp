#include "topology/binding.hpp"

#include <hwloc.h>

#include <cerrno>

#include "common/error.hpp"
#include "common/text.hpp"
#include "topology/hwloc_topology.hpp"

namespace cohort::topology {
namespace {


struct BitmapFree {
  void operator()(hwloc_bitmap_t b) const { hwloc_bitmap_free(b); }
};
using Bitmap = std::unique_ptr<hwloc_bitmap_s, BitmapFree>;

Bitmap new_bitmap() {
  Bitmap b(hwloc_bitmap_alloc());
  if (!b) throw Error("hwloc_bitmap_alloc: out of memory");
  return b;
}

CpuSet to_cpuset(hwloc_const_bitmap_t bitmap) {
  CpuSet set;
  if (!bitmap || hwloc_bitmap_weight(bitmap) < 0) return set;  // infinite: no list to give
  for (int i = hwloc_bitmap_first(bitmap); i >= 0; i = hwloc_bitmap_next(bitmap, i)) set.insert(i);
  return set;
}

std::string numa_list(const std::vector<int>& numa) {
  return join(numa, ",", [](int n) { return std::to_string(n); });
}

}  // namespace

struct Machine::Handle {
  HwlocTopology topology;
};

Machine::Machine(std::unique_ptr<Handle> handle) : handle_(std::move(handle)) {}
Machine::Machine(Machine&&) noexcept = default;
Machine& Machine::operator=(Machine&&) noexcept = default;
Machine::~Machine() = default;

Machine Machine::load() {
  auto handle = std::make_unique<Handle>();
  // CPUs and NUMA nodes are all binding needs; skipping PCI keeps the load quick.
  hwloc_topology_set_io_types_filter(handle->topology.get(), HWLOC_TYPE_FILTER_KEEP_NONE);
  if (hwloc_topology_load(handle->topology.get()) != 0) {
    throw Error(system_message("hwloc_topology_load (this machine)", errno));
  }
  return Machine(std::move(handle));
}

CpuSet Machine::allowed_cpus() const { return to_cpuset(hwloc_topology_get_allowed_cpuset(handle_->topology.get())); }

Binding Machine::bind_self(const CpuSet& cpus, const std::vector<int>& numa) const {
  Binding result;
  hwloc_topology_t topo = handle_->topology.get();

  const CpuSet allowed = allowed_cpus();
  if (cpus.empty()) {
    result.cpu_note = "the plan has no CPUs";
  } else if (!cpus.is_subset_of(allowed)) {
    const CpuSet absent = cpus - allowed;
    result.cpu_note = (absent.count() == 1 ? "CPU " + absent.to_string() + " is" : "CPUs " + absent.to_string() + " are") +
                      " not on this machine, which allows " + allowed.to_string();
  } else {
    Bitmap set = new_bitmap();
    for (int cpu : cpus.cpus()) hwloc_bitmap_set(set.get(), static_cast<unsigned>(cpu));
    if (hwloc_set_cpubind(topo, set.get(), HWLOC_CPUBIND_PROCESS) != 0) {
      throw Error(system_message("binding to CPUs " + cpus.to_string(), errno));
    }
    result.cpu_applied = true;
  }

  hwloc_const_nodeset_t have = hwloc_topology_get_allowed_nodeset(topo);
  Bitmap nodes = new_bitmap();
  std::vector<int> missing;
  for (int n : numa) {
    if (n >= 0 && hwloc_bitmap_isset(have, static_cast<unsigned>(n))) {
      hwloc_bitmap_set(nodes.get(), static_cast<unsigned>(n));
    } else {
      missing.push_back(n);
    }
  }
  if (numa.empty()) {
    result.memory_note = "the plan has no NUMA node";
    return result;
  }
  if (!missing.empty()) {
    result.memory_note = "NUMA " + numa_list(missing) + (missing.size() == 1 ? " is" : " are") + " not on this machine";
    return result;
  }
  // Linux keeps memory policy per thread and hwloc has no process-wide call there; the
  // caller is a task's only thread, about to exec, and exec keeps the policy.
  if (hwloc_set_membind(topo, nodes.get(), HWLOC_MEMBIND_BIND, HWLOC_MEMBIND_THREAD | HWLOC_MEMBIND_BYNODESET) != 0) {
    // A kernel without NUMA policy support, or a sandbox that forbids set_mempolicy, is a
    // machine that cannot honour memory binding rather than a failed task.
    if (errno != ENOSYS && errno != EPERM && errno != EXDEV) {
      throw Error(system_message("binding memory to NUMA " + numa_list(numa), errno));
    }
    result.memory_note = system_message("this machine refuses memory policies", errno);
    return result;
  }
  result.memory_applied = true;
  return result;
}

}  // namespace cohort::topology
