// Reading hwloc into a Node: everything hwloc knows is copied out once, so that callers
// never hold an hwloc handle and a Node can be shared freely.
#include <hwloc.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/text.hpp"
#include "topology/hwloc_topology.hpp"
#include "topology/topology.hpp"

namespace cohort::topology {
namespace {

// An hwloc bitmap as a CpuSet. Infinite bitmaps (hwloc's "all") are cut at `limit`.
CpuSet to_cpuset(hwloc_const_bitmap_t bitmap, int limit = 1 << 16) {
  CpuSet set;
  if (!bitmap) return set;
  for (int i = hwloc_bitmap_first(bitmap); i >= 0 && i < limit; i = hwloc_bitmap_next(bitmap, i)) {
    set.insert(i);
  }
  return set;
}

std::vector<int> to_indices(hwloc_const_bitmap_t bitmap) { return to_cpuset(bitmap).cpus(); }

int os_or_logical(hwloc_obj_t obj) {
  return obj->os_index == HWLOC_UNKNOWN_INDEX ? static_cast<int>(obj->logical_index)
                                              : static_cast<int>(obj->os_index);
}

std::string pci_bus_id(const hwloc_obj_attr_u::hwloc_pcidev_attr_s& pci) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.%01x", static_cast<unsigned>(pci.domain),
                static_cast<unsigned>(pci.bus), static_cast<unsigned>(pci.dev),
                static_cast<unsigned>(pci.func));
  return buf;
}

bool is_host_bridge(hwloc_obj_t obj) {
  return obj->type == HWLOC_OBJ_BRIDGE && obj->attr->bridge.upstream_type == HWLOC_OBJ_BRIDGE_HOST;
}

std::string describe_bridge(hwloc_obj_t obj) {
  if (is_host_bridge(obj)) {
    char buf[48];
    const auto& down = obj->attr->bridge.downstream.pci;
    std::snprintf(buf, sizeof buf, "HostBridge %04x:[%02x-%02x]", static_cast<unsigned>(down.domain),
                  static_cast<unsigned>(down.secondary_bus),
                  static_cast<unsigned>(down.subordinate_bus));
    return buf;
  }
  return "PCIBridge " + pci_bus_id(obj->attr->bridge.upstream.pci);
}

std::string info(hwloc_obj_t obj, const char* name) {
  const char* value = hwloc_obj_get_info_by_name(obj, name);
  return value ? value : "";
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// The trailing number of an OS device name: "cuda3" -> 3, "opencl0d2" -> 2.
std::optional<int> trailing_number(std::string_view name) {
  std::size_t end = name.size();
  std::size_t start = end;
  while (start > 0 && name[start - 1] >= '0' && name[start - 1] <= '9') --start;
  if (start == end) return std::nullopt;
  const auto n = parse_integer(name.substr(start), 0, std::numeric_limits<int>::max());
  if (!n) return std::nullopt;  // more digits than any device number has
  return static_cast<int>(*n);
}

hwloc_obj_t pci_parent(hwloc_obj_t osdev) {
  for (hwloc_obj_t p = osdev->parent; p; p = p->parent) {
    if (p->type == HWLOC_OBJ_PCI_DEVICE) return p;
    if (p->type != HWLOC_OBJ_OS_DEVICE) return nullptr;
  }
  return nullptr;
}

// Which vendor runtime an OS device belongs to, in the order that decides numbering:
// CUDA numbers what applications see, NVML and ROCm SMI follow PCI order.
enum class GpuApi { cuda, nvml, rsmi, levelzero, opencl, none };

GpuApi gpu_api(hwloc_obj_t osdev) {
  std::string subtype = osdev->subtype ? osdev->subtype : "";
  std::string_view name = osdev->name ? osdev->name : "";
  if (subtype == "CUDA" || (subtype.empty() && starts_with(name, "cuda"))) return GpuApi::cuda;
  if (subtype == "NVML" || (subtype.empty() && starts_with(name, "nvml"))) return GpuApi::nvml;
  if (subtype == "RSMI" || (subtype.empty() && starts_with(name, "rsmi"))) return GpuApi::rsmi;
  if (subtype == "LevelZero" || (subtype.empty() && starts_with(name, "ze"))) return GpuApi::levelzero;
  if (subtype == "OpenCL" || (subtype.empty() && starts_with(name, "opencl"))) return GpuApi::opencl;
  return GpuApi::none;
}

GpuVendor vendor_from_pci(unsigned vendor_id) {
  switch (vendor_id) {
    case 0x10de: return GpuVendor::nvidia;
    case 0x1002: return GpuVendor::amd;
    case 0x8086: return GpuVendor::intel;
    default: return GpuVendor::other;
  }
}

GpuVendor vendor_from_text(std::string_view text) {
  auto has = [&](std::string_view w) { return text.find(w) != std::string_view::npos; };
  if (has("NVIDIA")) return GpuVendor::nvidia;
  if (has("AMD") || has("Advanced Micro Devices")) return GpuVendor::amd;
  if (has("Intel")) return GpuVendor::intel;
  return GpuVendor::other;
}

// Display, 3D and accelerator classes from GPU vendors. A BMC's VGA (ASPEED, Matrox) is
// a display device too, which is why the vendor matters.
bool is_gpu_pci(hwloc_obj_t pci) {
  const auto& a = pci->attr->pcidev;
  unsigned base = a.class_id >> 8;
  bool gpu_vendor = a.vendor_id == 0x10de || a.vendor_id == 0x1002 || a.vendor_id == 0x8086;
  if (base == 0x03) return gpu_vendor;
  if (a.class_id == 0x1200) return a.vendor_id == 0x10de || a.vendor_id == 0x1002;
  return false;
}

// What the distance computation needs to know about a device beyond its public Locality.
struct Place {
  hwloc_obj_t identity = nullptr;         // the PCI device, or the OS device without one
  std::vector<hwloc_obj_t> path;          // I/O ancestors, CPU side first, ending at identity
};

struct GpuEntry {
  Gpu gpu;
  Place place;
  GpuApi best_api = GpuApi::none;
  std::optional<int> api_index;
  std::vector<hwloc_obj_t> osdevs;
  std::vector<GpuApi> apis;  // the runtimes that name this GPU
};

bool is_pci(hwloc_obj_t obj) { return obj->type == HWLOC_OBJ_PCI_DEVICE; }

}  // namespace

// Builds a Node from a loaded hwloc topology. A friend of Node.
class NodeBuilder {
 public:
  NodeBuilder(hwloc_topology_t topology, std::string source) : topo_(topology) {
    node_.source_ = std::move(source);
  }

  Node build() {
    read_cpus();
    read_gpus();
    read_nics();
    compute_links();
    return std::move(node_);
  }

 private:
  void read_cpus() {
    hwloc_obj_t root = hwloc_get_root_obj(topo_);
    node_.cpus_ = to_cpuset(root->cpuset);
    node_.allowed_cpus_ = to_cpuset(hwloc_topology_get_allowed_cpuset(topo_)) & node_.cpus_;

    for (hwloc_obj_t p = nullptr; (p = hwloc_get_next_obj_by_type(topo_, HWLOC_OBJ_PACKAGE, p));) {
      Package pkg;
      pkg.index = os_or_logical(p);
      pkg.cpus = to_cpuset(p->cpuset);
      pkg.numa = to_indices(p->nodeset);
      node_.packages_.push_back(std::move(pkg));
    }
    for (hwloc_obj_t n = nullptr; (n = hwloc_get_next_obj_by_type(topo_, HWLOC_OBJ_NUMANODE, n));) {
      NumaNode numa;
      numa.index = os_or_logical(n);
      numa.cpus = to_cpuset(n->cpuset);
      numa.memory_bytes = n->attr->numanode.local_memory;
      numa.package = package_of(numa.cpus);
      node_.numa_.push_back(std::move(numa));
    }
    std::sort(node_.numa_.begin(), node_.numa_.end(),
              [](const NumaNode& a, const NumaNode& b) { return a.index < b.index; });

    // Without Core objects (some synthetic descriptions), each PU stands for a core.
    hwloc_obj_type_t core_type =
        hwloc_get_nbobjs_by_type(topo_, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
    for (hwloc_obj_t c = nullptr; (c = hwloc_get_next_obj_by_type(topo_, core_type, c));) {
      Core core;
      core.index = static_cast<int>(node_.cores_.size());
      core.pus = to_cpuset(c->cpuset);
      if (core.pus.empty()) continue;
      core.package = package_of(core.pus);
      int first = core.pus.first();
      for (const auto& numa : node_.numa_) {
        if (numa.cpus.contains(first)) {
          core.numa = numa.index;
          break;
        }
      }
      node_.cores_.push_back(std::move(core));
    }
  }

  // The package whose CPUs include all of `cpus`, or -1.
  int package_of(const CpuSet& cpus) const {
    if (cpus.empty()) return -1;
    for (const auto& pkg : node_.packages_) {
      if (cpus.is_subset_of(pkg.cpus)) return pkg.index;
    }
    return -1;
  }

  Locality locality_of(hwloc_obj_t obj, Place& place) const {
    Locality loc;
    place.identity = obj;
    for (hwloc_obj_t p = obj; p && (p->type == HWLOC_OBJ_BRIDGE || p->type == HWLOC_OBJ_PCI_DEVICE ||
                                   p->type == HWLOC_OBJ_OS_DEVICE);
         p = p->parent) {
      if (p->type == HWLOC_OBJ_BRIDGE || p == obj) place.path.push_back(p);
    }
    std::reverse(place.path.begin(), place.path.end());
    for (hwloc_obj_t p : place.path) {
      if (p->type == HWLOC_OBJ_BRIDGE) loc.pci_path.push_back(describe_bridge(p));
    }
    hwloc_obj_t anchor = hwloc_get_non_io_ancestor_obj(topo_, obj);
    if (anchor) {
      loc.cpus = to_cpuset(anchor->cpuset);
      loc.numa = to_indices(anchor->nodeset);
      loc.package = package_of(loc.cpus);
    }
    return loc;
  }

  void read_gpus() {
    std::map<hwloc_obj_t, GpuEntry> by_identity;
    std::vector<hwloc_obj_t> order;  // first-seen order keeps the result independent of map order
    auto entry_for = [&](hwloc_obj_t identity) -> GpuEntry& {
      auto [it, inserted] = by_identity.try_emplace(identity);
      if (inserted) {
        order.push_back(identity);
        it->second.gpu.locality = locality_of(identity, it->second.place);
        if (identity->type == HWLOC_OBJ_PCI_DEVICE) {
          it->second.gpu.pci_bus_id = pci_bus_id(identity->attr->pcidev);
          it->second.gpu.vendor = vendor_from_pci(identity->attr->pcidev.vendor_id);
        }
      }
      return it->second;
    };

    for (hwloc_obj_t os = nullptr; (os = hwloc_get_next_osdev(topo_, os));) {
      // Sub-devices (Level Zero tiles) are parts of a GPU, not GPUs.
      if (os->parent && os->parent->type == HWLOC_OBJ_OS_DEVICE) continue;
      GpuApi api = gpu_api(os);
      if (api == GpuApi::none) continue;
      // OpenCL also lists accelerators (FPGAs) and custom devices: only its GPUs count.
      if (api == GpuApi::opencl && info(os, "OpenCLDeviceType") != "" &&
          info(os, "OpenCLDeviceType") != "GPU") {
        continue;
      }
      hwloc_obj_t pci = pci_parent(os);
      GpuEntry& e = entry_for(pci ? pci : os);
      e.osdevs.push_back(os);
      e.gpu.os_devices.push_back(os->name ? os->name : "");
      if (e.gpu.model.empty()) e.gpu.model = info(os, "GPUModel");
      if (e.gpu.vendor == GpuVendor::other) {
        if (api == GpuApi::cuda || api == GpuApi::nvml) e.gpu.vendor = GpuVendor::nvidia;
        else if (api == GpuApi::rsmi) e.gpu.vendor = GpuVendor::amd;
        else e.gpu.vendor = vendor_from_text(info(os, "GPUVendor"));
      }
      e.apis.push_back(api);
      if (auto n = trailing_number(os->name ? os->name : ""); n && api < e.best_api) {
        e.best_api = api;
        e.api_index = n;
      }
    }
    for (hwloc_obj_t pci = nullptr; (pci = hwloc_get_next_pcidev(topo_, pci));) {
      if (by_identity.count(pci) || !is_gpu_pci(pci)) continue;
      GpuEntry& e = entry_for(pci);
      e.gpu.model = info(pci, "PCIDevice");
    }
    order = merge_unplaced(by_identity, order);

    std::vector<GpuEntry*> entries;
    for (hwloc_obj_t id : order) entries.push_back(&by_identity[id]);
    // Vendor first, then the runtime's number where every GPU has one, else PCI order.
    std::stable_sort(entries.begin(), entries.end(), [](const GpuEntry* a, const GpuEntry* b) {
      if (a->gpu.vendor != b->gpu.vendor) return a->gpu.vendor < b->gpu.vendor;
      if (a->best_api != b->best_api) return a->best_api < b->best_api;
      if (a->api_index != b->api_index) return a->api_index < b->api_index;
      return a->gpu.pci_bus_id < b->gpu.pci_bus_id;
    });
    std::map<GpuVendor, int> per_vendor;
    for (GpuEntry* e : entries) {
      e->gpu.index = static_cast<int>(node_.gpus_.size());
      e->gpu.runtime_index = per_vendor[e->gpu.vendor]++;
      node_.gpus_.push_back(std::move(e->gpu));
      gpu_places_.push_back(std::move(e->place));
      gpu_osdevs_.push_back(std::move(e->osdevs));
    }
  }

  // An OS device hwloc could not tie to its PCI function (OpenCL in a VM, a runtime that
  // does not report bus ids) names a GPU that its PCI device, or another runtime, names
  // already. Per runtime, such devices join the vendor's PCI GPUs that this runtime does
  // not name yet, both in order; any left over are dropped. Only where hwloc saw no PCI
  // GPU of that vendor do they stand for GPUs, from one runtime only.
  static std::vector<hwloc_obj_t> merge_unplaced(std::map<hwloc_obj_t, GpuEntry>& by_identity,
                                                 const std::vector<hwloc_obj_t>& order) {
    std::map<GpuVendor, std::vector<hwloc_obj_t>> pci_gpus, unplaced;
    for (hwloc_obj_t id : order) (is_pci(id) ? pci_gpus : unplaced)[by_identity[id].gpu.vendor].push_back(id);
    std::set<hwloc_obj_t> dropped;
    for (auto& [vendor, devices] : unplaced) {
      std::stable_sort(devices.begin(), devices.end(), [&](hwloc_obj_t a, hwloc_obj_t b) {
        const auto& ea = by_identity[a];
        const auto& eb = by_identity[b];
        if (ea.best_api != eb.best_api) return ea.best_api < eb.best_api;
        return ea.api_index < eb.api_index;
      });
      auto& targets = pci_gpus[vendor];
      std::sort(targets.begin(), targets.end(), [&](hwloc_obj_t a, hwloc_obj_t b) {
        return by_identity[a].gpu.pci_bus_id < by_identity[b].gpu.pci_bus_id;
      });
      const GpuApi first_api = by_identity[devices.front()].best_api;
      std::map<GpuApi, std::size_t> next;  // per runtime, the next PCI GPU to consider
      for (hwloc_obj_t id : devices) {
        GpuEntry& orphan = by_identity[id];
        const GpuApi api = orphan.best_api;
        if (targets.empty()) {
          if (api != first_api) dropped.insert(id);
          continue;
        }
        dropped.insert(id);
        std::size_t& t = next[api];
        while (t < targets.size() && std::count(by_identity[targets[t]].apis.begin(),
                                                by_identity[targets[t]].apis.end(), api)) {
          ++t;
        }
        if (t == targets.size()) continue;
        GpuEntry& into = by_identity[targets[t++]];
        into.osdevs.insert(into.osdevs.end(), orphan.osdevs.begin(), orphan.osdevs.end());
        into.gpu.os_devices.insert(into.gpu.os_devices.end(), orphan.gpu.os_devices.begin(),
                                   orphan.gpu.os_devices.end());
        into.apis.push_back(api);
        if (!orphan.gpu.model.empty()) into.gpu.model = orphan.gpu.model;
        if (api < into.best_api) {
          into.best_api = api;
          into.api_index = orphan.api_index;
        }
      }
    }
    std::vector<hwloc_obj_t> kept;
    for (hwloc_obj_t id : order) {
      if (!dropped.count(id)) kept.push_back(id);
    }
    return kept;
  }

  static NicKind nic_kind(std::string_view name, bool openfabrics) {
    if (starts_with(name, "rdmap") || starts_with(name, "efa")) return NicKind::efa;
    if (starts_with(name, "hsn") || starts_with(name, "hsi") || starts_with(name, "cxi")) {
      return NicKind::slingshot;
    }
    if (openfabrics || starts_with(name, "ib")) return NicKind::openfabrics;
    return NicKind::ethernet;
  }

  // The first active port of an OpenFabrics device (hwloc's "Port<N>State" 4 is ACTIVE),
  // else its first port, else 0.
  static int openfabrics_port(hwloc_obj_t os) {
    int first = 0;
    for (unsigned i = 0; i < os->infos_count; ++i) {
      std::string_view name = os->infos[i].name;
      if (!starts_with(name, "Port") || name.size() <= 9 || name.substr(name.size() - 5) != "State") {
        continue;
      }
      auto digits = name.substr(4, name.size() - 9);
      int port = 0;
      for (char ch : digits) {
        if (ch < '0' || ch > '9') {
          port = 0;
          break;
        }
        port = port * 10 + (ch - '0');
      }
      if (port <= 0) continue;
      if (std::string_view(os->infos[i].value) == "4") return port;
      if (first == 0 || port < first) first = port;
    }
    return first;
  }

  void read_nics() {
    // OpenFabrics devices first: a port's kernel interface (ib0, ens1f0np0) joins the
    // OpenFabrics device on the same PCI function instead of counting as a second NIC.
    std::map<hwloc_obj_t, std::vector<std::size_t>> fabric_by_pci;
    struct Pending {
      Nic nic;
      Place place;
    };
    std::vector<Pending> pending;
    for (hwloc_obj_t os = nullptr; (os = hwloc_get_next_osdev(topo_, os));) {
      if (os->attr->osdev.type != HWLOC_OBJ_OSDEV_OPENFABRICS || !os->name) continue;
      Pending p;
      hwloc_obj_t pci = pci_parent(os);
      p.nic.name = os->name;
      p.nic.kind = nic_kind(p.nic.name, true);
      p.nic.port = openfabrics_port(os);
      p.nic.locality = locality_of(pci ? pci : os, p.place);
      if (pci) {
        p.nic.pci_bus_id = pci_bus_id(pci->attr->pcidev);
        p.nic.pci_link_gbytes = pci->attr->pcidev.linkspeed;
        fabric_by_pci[pci].push_back(pending.size());
      }
      pending.push_back(std::move(p));
    }
    for (hwloc_obj_t os = nullptr; (os = hwloc_get_next_osdev(topo_, os));) {
      if (os->attr->osdev.type != HWLOC_OBJ_OSDEV_NETWORK || !os->name) continue;
      hwloc_obj_t pci = pci_parent(os);
      if (pci && fabric_by_pci.count(pci)) {
        for (std::size_t i : fabric_by_pci[pci]) pending[i].nic.netdevs.push_back(os->name);
        continue;
      }
      Pending p;
      p.nic.name = os->name;
      p.nic.kind = nic_kind(p.nic.name, false);
      p.nic.netdevs.push_back(os->name);
      std::string port = info(os, "Port");
      if (const auto n = parse_integer(port, 0, 65535)) p.nic.port = static_cast<int>(*n);
      p.nic.locality = locality_of(pci ? pci : os, p.place);
      if (pci) {
        p.nic.pci_bus_id = pci_bus_id(pci->attr->pcidev);
        p.nic.pci_link_gbytes = pci->attr->pcidev.linkspeed;
      }
      pending.push_back(std::move(p));
    }
    // PCI order, then name: the order NCCL and `ibv_devices` list them in.
    std::stable_sort(pending.begin(), pending.end(), [](const Pending& a, const Pending& b) {
      if (a.nic.pci_bus_id != b.nic.pci_bus_id) return a.nic.pci_bus_id < b.nic.pci_bus_id;
      return a.nic.name < b.nic.name;
    });
    for (auto& p : pending) {
      node_.nics_.push_back(std::move(p.nic));
      nic_places_.push_back(std::move(p.place));
    }
  }

  // NVLink counts between GPUs from hwloc's "NVLinkBandwidth" matrix (NVML backend),
  // whose values are MB/s: hwloc adds 25000 per NVLink 2 to 4 link. GPUs linked through
  // NVSwitches reach each other with the smaller of their bandwidths to the switches.
  std::vector<int> nvlink_counts() const {
    const std::size_t g = node_.gpus_.size();
    std::vector<int> links(g * g, 0);
    unsigned nr = 1;
    hwloc_distances_s* raw = nullptr;
    if (hwloc_distances_get_by_name(topo_, "NVLinkBandwidth", &nr, &raw, 0) != 0 || nr == 0) {
      return links;
    }
    auto release = [topo = topo_](hwloc_distances_s* d) { hwloc_distances_release(topo, d); };
    std::unique_ptr<hwloc_distances_s, decltype(release)> dist(raw, release);
    std::map<hwloc_obj_t, int> gpu_of;
    for (std::size_t i = 0; i < g; ++i) {
      for (hwloc_obj_t os : gpu_osdevs_[i]) gpu_of[os] = static_cast<int>(i);
      gpu_of[gpu_places_[i].identity] = static_cast<int>(i);
    }
    const unsigned n = dist->nbobjs;
    std::vector<int> who(n, -1);
    std::vector<bool> is_switch(n, false);
    for (unsigned i = 0; i < n; ++i) {
      hwloc_obj_t obj = dist->objs[i];
      if (auto it = gpu_of.find(obj); it != gpu_of.end()) {
        who[i] = it->second;
      } else if (obj->subtype && std::string_view(obj->subtype) == "NVSwitch") {
        is_switch[i] = true;
      }
    }
    std::vector<double> bw(g * g, 0), to_switches(g, 0);
    for (unsigned i = 0; i < n; ++i) {
      if (who[i] < 0) continue;
      for (unsigned j = 0; j < n; ++j) {
        if (i == j) continue;
        auto value = static_cast<double>(dist->values[i * n + j]);
        if (who[j] >= 0 && who[j] != who[i]) bw[who[i] * g + who[j]] += value;
        if (is_switch[j]) to_switches[who[i]] += value;
      }
    }
    for (std::size_t a = 0; a < g; ++a) {
      for (std::size_t b = 0; b < g; ++b) {
        if (a == b) continue;
        double total = bw[a * g + b] + std::min(to_switches[a], to_switches[b]);
        if (total > 0) links[a * g + b] = std::max(1, static_cast<int>(std::lround(total / 25000.0)));
      }
    }
    return links;
  }

  Link pci_link(const Place& a, const Locality& la, const Place& b, const Locality& lb) const {
    if (a.identity == b.identity) return {LinkClass::self, 0};
    std::size_t common = 0;
    while (common < a.path.size() && common < b.path.size() && a.path[common] == b.path[common]) {
      ++common;
    }
    if (common > 0) {
      hwloc_obj_t meet = a.path[common - 1];
      if (is_host_bridge(meet)) return {LinkClass::phb, 0};
      // Bridges passed from one device to the other, the meeting one included. One
      // switch is its upstream port and two downstream ports: three bridges at most.
      std::size_t bridges = 1;
      for (std::size_t i = common; i < a.path.size(); ++i) bridges += a.path[i]->type == HWLOC_OBJ_BRIDGE;
      for (std::size_t i = common; i < b.path.size(); ++i) bridges += b.path[i]->type == HWLOC_OBJ_BRIDGE;
      return {bridges <= 3 ? LinkClass::pix : LinkClass::pxb, 0};
    }
    if (la.package >= 0 && la.package == lb.package) return {LinkClass::node, 0};
    if (node_.packages_.size() <= 1) return {LinkClass::node, 0};
    bool same_numa = !la.numa.empty() && la.numa == lb.numa;
    return {same_numa ? LinkClass::node : LinkClass::sys, 0};
  }

  void compute_links() {
    const std::size_t g = node_.gpus_.size();
    const std::size_t n = g + node_.nics_.size();
    auto place = [&](std::size_t i) -> const Place& { return i < g ? gpu_places_[i] : nic_places_[i - g]; };
    auto loc = [&](std::size_t i) -> const Locality& {
      return i < g ? node_.gpus_[i].locality : node_.nics_[i - g].locality;
    };
    std::vector<int> nvlinks = nvlink_counts();
    node_.links_.assign(n * n, Link{});
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t j = 0; j < n; ++j) {
        Link link = i == j ? Link{LinkClass::self, 0} : pci_link(place(i), loc(i), place(j), loc(j));
        if (i < g && j < g && i != j && nvlinks[i * g + j] > 0) link = {LinkClass::nvlink, nvlinks[i * g + j]};
        node_.links_[i * n + j] = link;
      }
    }
  }

  hwloc_topology_t topo_;
  Node node_;
  std::vector<Place> gpu_places_;
  std::vector<std::vector<hwloc_obj_t>> gpu_osdevs_;
  std::vector<Place> nic_places_;
};

namespace {

// Keeps bridges, PCI devices and OS devices: GPUs and NICs are I/O objects, and their
// bridges are their PCIe path. Disallowed CPUs stay in the model; allowed_cpus() marks them.
void configure(hwloc_topology_t topology, hwloc_type_filter_e io_filter) {
  hwloc_topology_set_io_types_filter(topology, io_filter);
  hwloc_topology_set_flags(topology, HWLOC_TOPOLOGY_FLAG_INCLUDE_DISALLOWED);
}

Node load(HwlocTopology& topology, const std::string& source, bool input) {
  if (hwloc_topology_load(topology.get()) != 0) {
    if (input) {
      throw input_error(source + ": not an hwloc topology, or one hwloc cannot load (write one with "
                                 "`lstopo --of xml FILE`)");
    }
    throw Error(system_message(source + ": hwloc_topology_load", errno));
  }
  return NodeBuilder(topology.get(), source).build();
}

// The text with its comments blanked out, line breaks kept, so that line numbers in
// messages match the file.
std::string without_comments(std::string_view xml) {
  std::string out;
  out.reserve(xml.size());
  std::size_t at = 0;
  while (at < xml.size()) {
    std::size_t open = xml.find("<!--", at);
    if (open == std::string_view::npos) break;
    std::size_t close = xml.find("-->", open + 4);
    if (close == std::string_view::npos) break;
    out.append(xml.substr(at, open - at));
    out.append(static_cast<std::size_t>(std::count(xml.begin() + static_cast<std::ptrdiff_t>(open),
                                                    xml.begin() + static_cast<std::ptrdiff_t>(close), '\n')),
               '\n');
    at = close + 3;
  }
  out.append(xml.substr(at));
  return out;
}

// hwloc's built-in XML parser, used where its libxml2 plugin is not installed, reads the
// XML declaration and the DOCTYPE line by line: it rejects comments and blank lines, which
// a file documented at its top has. Neither carries meaning between XML tags.
std::string for_builtin_parser(std::string_view xml) {
  std::string out;
  out.reserve(xml.size());
  std::size_t at = 0;
  while (at < xml.size()) {
    std::size_t end = xml.find('\n', at);
    if (end == std::string_view::npos) end = xml.size();
    std::string_view line = xml.substr(at, end - at);
    if (line.find_first_not_of(" \t\r") != std::string_view::npos) {
      out.append(line);
      out.push_back('\n');
    }
    at = end + 1;
  }
  return out;
}

// hwloc 2.9 dereferences a missing complete_cpuset or complete_nodeset of an object that
// has the plain set, and crashes the process: a hand-written file must not take a
// launcher down with it.
void check_complete_sets(std::string_view xml, const std::string& name) {
  for (std::size_t at = xml.find("<object "); at != std::string_view::npos; at = xml.find("<object ", at + 1)) {
    std::size_t end = xml.find('>', at);
    std::string_view tag = xml.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
    for (std::string_view set : {"cpuset", "nodeset"}) {
      std::string plain = " " + std::string(set) + "=\"";
      std::string complete = " complete_" + std::string(set) + "=\"";
      if (tag.find(plain) == std::string_view::npos || tag.find(complete) != std::string_view::npos) continue;
      auto line = 1 + std::count(xml.begin(), xml.begin() + static_cast<std::ptrdiff_t>(at), '\n');
      throw input_error(name + ":" + std::to_string(line) + ": object has a " + std::string(set) +
                        " but no complete_" + std::string(set) + ", which hwloc needs (copy the " +
                        std::string(set) + " into it, or write the file with `lstopo --of xml FILE`)");
    }
  }
}

}  // namespace

Node Node::from_this_machine() {
  HwlocTopology topology;
  // Only the PCI devices that matter (GPUs, NICs, storage) and the bridges above them:
  // scanning every PCI function on a large node costs milliseconds for nothing.
  configure(topology.get(), HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
  return load(topology, "this machine", false);
}

Node Node::from_xml_file(const std::string& path) {
  const auto text = read_file(path);
  if (!text) {
    throw input_error(system_message(path + ": cannot read the topology file", errno) +
                      " (write one with `lstopo --of xml FILE`)");
  }
  return from_xml(*text, path);
}

Node Node::from_xml(std::string_view xml, const std::string& name) {
  if (xml.find("<topology") == std::string_view::npos) {
    throw input_error(name + ": not an hwloc topology: no <topology> element (write one with "
                             "`lstopo --of xml FILE`)");
  }
  const std::string uncommented = without_comments(xml);
  check_complete_sets(uncommented, name);
  const std::string buffer = for_builtin_parser(uncommented);
  HwlocTopology topology;
  configure(topology.get(), HWLOC_TYPE_FILTER_KEEP_ALL);
  if (hwloc_topology_set_xmlbuffer(topology.get(), buffer.c_str(), static_cast<int>(buffer.size() + 1)) != 0) {
    throw input_error(name + ": not an hwloc topology (write one with `lstopo --of xml FILE`)");
  }
  return load(topology, name, true);
}

Node Node::from_synthetic(const std::string& description) {
  HwlocTopology topology;
  configure(topology.get(), HWLOC_TYPE_FILTER_KEEP_ALL);
  if (hwloc_topology_set_synthetic(topology.get(), description.c_str()) != 0) {
    throw input_error("synthetic topology '" + description +
                      "': hwloc cannot read it (write levels like 'pack:2 core:8 pu:2')");
  }
  return load(topology, "synthetic '" + description + "'", true);
}

const NumaNode* Node::find_numa(int index) const {
  for (const auto& n : numa_) {
    if (n.index == index) return &n;
  }
  return nullptr;
}

std::string_view to_string(GpuVendor vendor) {
  switch (vendor) {
    case GpuVendor::nvidia: return "nvidia";
    case GpuVendor::amd: return "amd";
    case GpuVendor::intel: return "intel";
    case GpuVendor::other: return "other";
  }
  return "other";
}

std::string_view to_string(NicKind kind) {
  switch (kind) {
    case NicKind::openfabrics: return "openfabrics";
    case NicKind::slingshot: return "slingshot";
    case NicKind::efa: return "efa";
    case NicKind::ethernet: return "ethernet";
  }
  return "ethernet";
}

std::string Link::to_string() const {
  switch (cls) {
    case LinkClass::self: return "X";
    case LinkClass::nvlink: return "NV" + std::to_string(nvlinks);
    case LinkClass::pix: return "PIX";
    case LinkClass::pxb: return "PXB";
    case LinkClass::phb: return "PHB";
    case LinkClass::node: return "NODE";
    case LinkClass::sys: return "SYS";
  }
  return "SYS";
}

}  // namespace cohort::topology
