// topology/topology.hpp — the node as cohort sees it: packages, NUMA nodes, cores, GPUs of
// any vendor and network devices, each device with its locality and PCIe path, and the
// distance between any two devices in the classes `nvidia-smi topo -m` prints.
//
// A Node is a plain value: loading reads hwloc once and keeps no hwloc handle, so a Node
// may be copied, shared between threads and read concurrently. Loading touches no global
// state and prints nothing; it throws cohort::Error (input errors for a bad file or
// description).
//
//   auto node = cohort::topology::Node::from_xml_file("dgx.xml");
//   for (const auto& gpu : node.gpus())
//     std::cout << gpu.index << " " << gpu.pci_bus_id << " NUMA " << gpu.locality.numa[0];
//   node.gpu_to_nic(0, 0).to_string();   // "PIX"
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace cohort::topology {

// A set of logical CPUs (hwloc PUs, by operating-system index), as Linux and Slurm write
// them: "0-3,8".
class CpuSet {
 public:
  CpuSet() = default;
  CpuSet(std::initializer_list<int> cpus);

  // Parses list syntax ("0-3,8,10-11"; "" is the empty set). Throws cohort::input_error
  // whose message starts with `what` (for instance "--cpus 0-x") on malformed text.
  static CpuSet parse(std::string_view list, std::string_view what = "CPU list");
  // CPUs first..last, both included.
  static CpuSet range(int first, int last);

  // List syntax, ascending, ranges collapsed: "0-3,8". Empty set: "".
  std::string to_string() const;

  void insert(int cpu);
  void erase(int cpu);
  bool contains(int cpu) const;
  bool empty() const { return words_.empty(); }
  int count() const;
  int first() const;  // the lowest CPU, -1 when empty
  std::vector<int> cpus() const;  // ascending

  bool intersects(const CpuSet& other) const;
  bool is_subset_of(const CpuSet& other) const;

  CpuSet& operator|=(const CpuSet& other);
  CpuSet& operator&=(const CpuSet& other);
  CpuSet& operator-=(const CpuSet& other);
  friend CpuSet operator|(CpuSet a, const CpuSet& b) { return a |= b; }
  friend CpuSet operator&(CpuSet a, const CpuSet& b) { return a &= b; }
  friend CpuSet operator-(CpuSet a, const CpuSet& b) { return a -= b; }
  friend bool operator==(const CpuSet&, const CpuSet&) = default;

 private:
  void trim();
  std::vector<std::uint64_t> words_;  // bit i of word w is CPU 64*w+i; no trailing zero words
};

// Parses an index list in the same syntax ("0-3,6") into ascending, distinct indices.
// Throws cohort::input_error starting with `what` on malformed text.
std::vector<int> parse_index_list(std::string_view list, std::string_view what);
// Formats ascending indices in list syntax: {0,1,2,3,6} -> "0-3,6".
std::string format_index_list(const std::vector<int>& indices);

struct Package {
  int index = 0;          // operating-system index
  CpuSet cpus;
  std::vector<int> numa;  // NUMA nodes of this package
};

struct NumaNode {
  int index = 0;            // operating-system index, as numactl and COHORT_NUMA use it
  int package = -1;         // -1 when the node has no package objects
  CpuSet cpus;
  std::uint64_t memory_bytes = 0;
};

struct Core {
  int index = 0;     // logical index, 0..cores-1 in topology order
  int package = -1;
  int numa = -1;     // the NUMA node holding this core's CPUs
  CpuSet pus;        // its hardware threads; the first is the primary one
};

// Where a device sits: the CPUs and memory close to it, and its path through PCIe.
struct Locality {
  CpuSet cpus;                        // CPUs local to the device
  std::vector<int> numa;              // NUMA nodes local to the device
  int package = -1;                   // -1 when the device is not below a single package
  // Bridges from the CPU side down to the device: "HostBridge 0000:[00-3f]",
  // "PCIBridge 0000:00:01.0", …
  std::vector<std::string> pci_path;
};

enum class GpuVendor { nvidia, amd, intel, other };
std::string_view to_string(GpuVendor vendor);

struct Gpu {
  // Position in Node::gpus(). On single-vendor nodes this is also the vendor runtime's
  // index (CUDA_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES) and Slurm's GPU index.
  int index = 0;
  int runtime_index = 0;                // the vendor runtime's own number for this GPU
  GpuVendor vendor = GpuVendor::other;
  std::string model;                    // "NVIDIA A100-SXM4-80GB"; "" when unknown
  std::string pci_bus_id;               // "0000:07:00.0"; "" when not a PCI device
  std::vector<std::string> os_devices;  // hwloc names of the same GPU: "cuda0", "nvml0"
  Locality locality;
};

enum class NicKind { openfabrics, slingshot, efa, ethernet };
std::string_view to_string(NicKind kind);

struct Nic {
  std::string name;                  // "mlx5_0", "hsn0", "rdmap0s6", "eth0": NCCL_IB_HCA's names
  NicKind kind = NicKind::ethernet;
  std::string pci_bus_id;            // "" when not a PCI device
  std::vector<std::string> netdevs;  // kernel interfaces of the same port: "ib0"
  int port = 0;                      // 0 when unknown
  double pci_link_gbytes = 0;        // PCIe link bandwidth in GB/s as hwloc saw it; 0 unknown
  Locality locality;
};

// How two devices reach each other, nearest first, in `nvidia-smi topo -m` terms.
enum class LinkClass {
  self,    // X: the same device
  nvlink,  // NV#: direct NVLink (through NVSwitches counts)
  pix,     // PIX: at most one PCIe switch
  pxb,     // PXB: several PCIe switches, no host bridge
  phb,     // PHB: through a PCIe host bridge
  node,    // NODE: between host bridges within a NUMA node or package
  sys,     // SYS: across packages (the SMP interconnect)
};

struct Link {
  LinkClass cls = LinkClass::sys;
  int nvlinks = 0;  // NVLink count for LinkClass::nvlink

  std::string to_string() const;  // "X", "NV12", "PIX", "PXB", "PHB", "NODE", "SYS"
  // Orders links nearest first: more NVLinks are nearer than fewer.
  friend bool operator<(const Link& a, const Link& b) {
    if (a.cls != b.cls) return a.cls < b.cls;
    return a.nvlinks > b.nvlinks;
  }
  friend bool operator==(const Link&, const Link&) = default;
};

class Node {
 public:
  // This machine, as hwloc discovers it, with the PCI and OS devices. Includes CPUs the
  // calling process may not use; allowed_cpus() says which it may.
  static Node from_this_machine();
  // An hwloc XML export (`lstopo --of xml`), or a file written by hand; comments are
  // allowed. Throws cohort::input_error naming the path (and line) when the file cannot
  // be read, is not an hwloc topology, or has an object with a cpuset or nodeset but not
  // its complete_cpuset or complete_nodeset (which would crash hwloc 2.9).
  static Node from_xml_file(const std::string& path);
  // The same, from XML text; `name` stands for the text in messages and source().
  static Node from_xml(std::string_view xml, const std::string& name = "XML text");
  // An hwloc synthetic description, "pack:2 numa:1 core:8 pu:2": CPUs only.
  static Node from_synthetic(const std::string& description);

  const std::string& source() const { return source_; }  // "this machine", a path, …
  const std::vector<Package>& packages() const { return packages_; }
  const std::vector<NumaNode>& numa_nodes() const { return numa_; }
  const std::vector<Core>& cores() const { return cores_; }
  const std::vector<Gpu>& gpus() const { return gpus_; }
  const std::vector<Nic>& nics() const { return nics_; }
  const CpuSet& cpus() const { return cpus_; }                  // every PU
  const CpuSet& allowed_cpus() const { return allowed_cpus_; }  // PUs hwloc says are usable

  // Distances between devices, by index in gpus() and nics().
  Link gpu_to_gpu(int a, int b) const { return links_[at(a, b)]; }
  Link gpu_to_nic(int gpu, int nic) const { return links_[at(gpu, gpu_count() + nic)]; }
  Link nic_to_nic(int a, int b) const { return links_[at(gpu_count() + a, gpu_count() + b)]; }

  // The NUMA node with this operating-system index, or nullptr.
  const NumaNode* find_numa(int index) const;

 private:
  friend class NodeBuilder;
  int gpu_count() const { return static_cast<int>(gpus_.size()); }
  std::size_t at(int a, int b) const {
    return static_cast<std::size_t>(a) * (gpus_.size() + nics_.size()) + static_cast<std::size_t>(b);
  }

  std::string source_;
  std::vector<Package> packages_;
  std::vector<NumaNode> numa_;
  std::vector<Core> cores_;
  std::vector<Gpu> gpus_;
  std::vector<Nic> nics_;
  CpuSet cpus_;
  CpuSet allowed_cpus_;
  std::vector<Link> links_;  // (gpus + nics)², GPUs first
};

}  // namespace cohort::topology
