#include "topology/topo_command.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include "common/error.hpp"
#include "common/json.hpp"
#include "common/options.hpp"
#include "common/text.hpp"
#include "topology/placement.hpp"
#include "topology/topology.hpp"

namespace cohort::topology {
namespace {

namespace po = options::po;

options::Help topo_help() {
  return {"topo",
          {"[--topology FILE | --synthetic DESC] [--json]", "plan --ranks N [options]"},
          "Shows this node as cohort places work on it: packages, NUMA nodes and cores, the GPUs\n"
          "and network devices with their locality, and the distances between devices in the\n"
          "classes of `nvidia-smi topo -m`. Without --topology it reads this machine, or the\n"
          "hwloc XML file named by COHORT_TOPOLOGY_XML.",
          {"cohort topo", "cohort topo --topology node.xml --json", "cohort topo plan --ranks 8 --topology node.xml"}};
}

options::Help plan_help() {
  return {"topo plan",
          {"--ranks N [--gpus-per-rank K] [--threads-per-rank T] [--smt]\n"
           "[--cpus LIST] [--gpus LIST] [--nic nearest|all]\n"
           "[--topology FILE | --synthetic DESC] [--json]"},
          "Plans N local ranks: for each, its GPUs, network devices (nearest first), CPUs, memory\n"
          "NUMA nodes and thread count, with the reason. Rules the node cannot keep are listed.",
          {"cohort topo plan --ranks 8", "cohort topo plan --ranks 2 --gpus 4-7 --cpus 32-63 --nic all --json"}};
}

po::options_description source_options() {
  po::options_description opts("source");
  opts.add_options()
      ("topology", po::value<std::string>()->value_name("FILE"),
       "an hwloc XML file (lstopo --of xml FILE) instead of this machine")
      ("synthetic", po::value<std::string>()->value_name("DESC"),
       "an hwloc synthetic description, e.g. 'pack:2 core:8 pu:2'")
      ("json", "print JSON instead of tables");
  return opts;
}

Node load_node(const po::variables_map& vm) {
  if (vm.count("topology") && vm.count("synthetic")) {
    throw input_error("--topology and --synthetic both name a topology: give one");
  }
  if (vm.count("topology")) return Node::from_xml_file(vm["topology"].as<std::string>());
  if (vm.count("synthetic")) return Node::from_synthetic(vm["synthetic"].as<std::string>());
  if (const char* path = std::getenv("COHORT_TOPOLOGY_XML"); path && *path) {
    return Node::from_xml_file(path);
  }
  return Node::from_this_machine();
}

// --- output helpers --------------------------------------------------------------------

json::Value json_list(const std::vector<int>& v) {
  json::Value out = json::Value::array();
  for (int i : v) out.push(i);
  return out;
}

json::Value json_list(const std::vector<std::string>& v) {
  json::Value out = json::Value::array();
  for (const auto& s : v) out.push(s);
  return out;
}

std::string ints(const std::vector<int>& v) {
  return v.empty() ? "-" : join(v, ",", [](int i) { return std::to_string(i); });
}

std::string or_dash(const std::string& s) { return s.empty() ? "-" : s; }

std::string gib(std::uint64_t bytes) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(bytes % (1ULL << 30) ? 1 : 0)
    << static_cast<double>(bytes) / static_cast<double>(1ULL << 30) << " GiB";
  return s.str();
}

std::string gbytes(double value) {
  if (value <= 0) return "-";
  std::ostringstream s;
  s << std::fixed << std::setprecision(1) << value << " GB/s";
  return s.str();
}

std::vector<std::string> device_names(const Node& node) {
  std::vector<std::string> names;
  for (const auto& gpu : node.gpus()) names.push_back("GPU" + std::to_string(gpu.index));
  for (const auto& nic : node.nics()) names.push_back(nic.name);
  return names;
}

Link device_link(const Node& node, std::size_t a, std::size_t b) {
  const std::size_t g = node.gpus().size();
  const int ia = static_cast<int>(a < g ? a : a - g);
  const int ib = static_cast<int>(b < g ? b : b - g);
  if (a < g && b < g) return node.gpu_to_gpu(ia, ib);
  if (a < g) return node.gpu_to_nic(ia, ib);
  if (b < g) return node.gpu_to_nic(ib, ia);
  return node.nic_to_nic(ia, ib);
}

const Locality& device_locality(const Node& node, std::size_t i) {
  const std::size_t g = node.gpus().size();
  return i < g ? node.gpus()[i].locality : node.nics()[i - g].locality;
}

// --- cohort topo -----------------------------------------------------------------------

void add_locality(json::Value& object, const Locality& loc) {
  object.set("numa", json_list(loc.numa));
  object.set("package", loc.package);
  object.set("cpus", loc.cpus.to_string());
  object.set("pci_path", json_list(loc.pci_path));
}

void print_topology_json(std::ostream& out, const Node& node) {
  json::Value doc = json::Value::object();
  doc.set("source", node.source());
  doc.set("cpus", node.cpus().to_string());
  doc.set("allowed_cpus", node.allowed_cpus().to_string());
  doc.set("cores", static_cast<long long>(node.cores().size()));
  doc.set("pus", static_cast<long long>(node.cpus().count()));
  json::Value packages = json::Value::array();
  for (const auto& p : node.packages()) {
    json::Value o = json::Value::object();
    o.set("index", p.index);
    o.set("cpus", p.cpus.to_string());
    o.set("numa", json_list(p.numa));
    packages.push(std::move(o));
  }
  doc.set("packages", std::move(packages));
  json::Value numa = json::Value::array();
  for (const auto& n : node.numa_nodes()) {
    json::Value o = json::Value::object();
    o.set("index", n.index);
    o.set("package", n.package);
    o.set("cpus", n.cpus.to_string());
    o.set("memory_bytes", n.memory_bytes);
    numa.push(std::move(o));
  }
  doc.set("numa", std::move(numa));
  json::Value gpus = json::Value::array();
  for (const auto& g : node.gpus()) {
    json::Value o = json::Value::object();
    o.set("index", g.index);
    o.set("runtime_index", g.runtime_index);
    o.set("vendor", std::string(to_string(g.vendor)));
    o.set("model", g.model);
    o.set("pci", g.pci_bus_id);
    o.set("os_devices", json_list(g.os_devices));
    add_locality(o, g.locality);
    gpus.push(std::move(o));
  }
  doc.set("gpus", std::move(gpus));
  json::Value nics = json::Value::array();
  for (const auto& n : node.nics()) {
    json::Value o = json::Value::object();
    o.set("name", n.name);
    o.set("kind", std::string(to_string(n.kind)));
    o.set("pci", n.pci_bus_id);
    o.set("netdevs", json_list(n.netdevs));
    o.set("port", n.port);
    o.set("pci_link_gbytes", n.pci_link_gbytes);
    add_locality(o, n.locality);
    nics.push(std::move(o));
  }
  doc.set("nics", std::move(nics));
  const auto names = device_names(node);
  json::Value matrix = json::Value::array();
  for (std::size_t a = 0; a < names.size(); ++a) {
    std::vector<std::string> row;
    for (std::size_t b = 0; b < names.size(); ++b) row.push_back(device_link(node, a, b).to_string());
    matrix.push(json_list(row));
  }
  json::Value distances = json::Value::object();
  distances.set("devices", json_list(names));
  distances.set("matrix", std::move(matrix));
  doc.set("distances", std::move(distances));
  out << json::write(doc) << "\n";
}

void print_topology_table(std::ostream& out, const Node& node) {
  out << "node: " << node.source() << "\n"
      << node.packages().size() << (node.packages().size() == 1 ? " package, " : " packages, ")
      << node.numa_nodes().size() << (node.numa_nodes().size() == 1 ? " NUMA node, " : " NUMA nodes, ")
      << node.cores().size() << " cores, " << node.cpus().count() << " hardware threads (CPUs "
      << node.cpus().to_string() << ", allowed " << node.allowed_cpus().to_string() << ")\n\n";

  std::vector<std::vector<std::string>> numa{{"NUMA", "PACKAGE", "CORES", "CPUS", "MEMORY"}};
  for (const auto& n : node.numa_nodes()) {
    int cores = 0;
    for (const auto& c : node.cores()) cores += c.numa == n.index;
    numa.push_back({std::to_string(n.index), n.package >= 0 ? std::to_string(n.package) : "-",
                    std::to_string(cores), n.cpus.to_string(), gib(n.memory_bytes)});
  }
  print_table(out, numa);
  out << "\n";

  if (node.gpus().empty()) {
    out << "GPUs: none (hwloc shows no CUDA, NVML, ROCm SMI, Level Zero or OpenCL device and no "
           "GPU-class PCI device)\n";
  } else {
    std::vector<std::vector<std::string>> gpus{{"GPU", "VENDOR", "MODEL", "PCI", "OS DEVICES", "NUMA", "CPUS"}};
    for (const auto& g : node.gpus()) {
      gpus.push_back({std::to_string(g.index), std::string(to_string(g.vendor)), or_dash(g.model),
                      or_dash(g.pci_bus_id), or_dash(join(g.os_devices, ",")), ints(g.locality.numa),
                      or_dash(g.locality.cpus.to_string())});
    }
    print_table(out, gpus);
  }
  out << "\n";
  if (node.nics().empty()) {
    out << "NICs: none\n";
  } else {
    std::vector<std::vector<std::string>> nics{{"NIC", "KIND", "PCI", "PORT", "NETDEV", "PCIE", "NUMA", "CPUS"}};
    for (const auto& n : node.nics()) {
      nics.push_back({n.name, std::string(to_string(n.kind)), or_dash(n.pci_bus_id),
                      n.port > 0 ? std::to_string(n.port) : "-", or_dash(join(n.netdevs, ",")),
                      gbytes(n.pci_link_gbytes), ints(n.locality.numa), or_dash(n.locality.cpus.to_string())});
    }
    print_table(out, nics);
  }

  const auto names = device_names(node);
  if (names.size() < 2 && node.gpus().empty()) return;
  out << "\n";
  std::vector<std::vector<std::string>> matrix;
  std::vector<std::string> header{""};
  header.insert(header.end(), names.begin(), names.end());
  header.push_back("CPU Affinity");
  header.push_back("NUMA Affinity");
  matrix.push_back(header);
  for (std::size_t a = 0; a < names.size(); ++a) {
    std::vector<std::string> row{names[a]};
    for (std::size_t b = 0; b < names.size(); ++b) row.push_back(device_link(node, a, b).to_string());
    const auto& loc = device_locality(node, a);
    row.push_back(or_dash(loc.cpus.to_string()));
    row.push_back(ints(loc.numa));
    matrix.push_back(std::move(row));
  }
  print_table(out, matrix);
  out << "\nLegend:\n"
         "  X    = self\n"
         "  NV#  = NVLink, # links (through NVSwitches included)\n"
         "  PIX  = at most one PCIe switch\n"
         "  PXB  = several PCIe switches, no host bridge\n"
         "  PHB  = a PCIe host bridge\n"
         "  NODE = between host bridges within a NUMA node or package\n"
         "  SYS  = across packages (the SMP interconnect)\n";
}

int show(const std::vector<std::string>& args) {
  options::Parser parser(topo_help());
  parser.add(source_options());
  auto parsed = parser.parse(args);
  if (!parsed) return 0;
  const auto& vm = parsed->values;
  Node node = load_node(vm);
  if (vm.count("json")) {
    print_topology_json(std::cout, node);
  } else {
    print_topology_table(std::cout, node);
  }
  return 0;
}

// --- cohort topo plan ------------------------------------------------------------------

void print_plan_json(std::ostream& out, const std::vector<RankPlacement>& ranks) {
  json::Value list = json::Value::array();
  for (const auto& r : ranks) {
    json::Value o = json::Value::object();
    o.set("local_rank", r.local_rank);
    o.set("gpus", json_list(r.gpus));
    o.set("nics", json_list(r.nics));
    o.set("cpus", r.cpus.to_string());
    o.set("numa", json_list(r.numa));
    o.set("threads", r.threads);
    o.set("reason", r.reason);
    o.set("broken", json_list(r.broken));
    list.push(std::move(o));
  }
  out << json::write(list) << "\n";
}

void print_plan_table(std::ostream& out, const Node& node, const std::vector<RankPlacement>& ranks) {
  out << "node: " << node.source() << "\n\n";
  std::vector<std::vector<std::string>> rows{{"RANK", "GPUS", "NICS", "CPUS", "NUMA", "THREADS", "REASON"}};
  for (const auto& r : ranks) {
    rows.push_back({std::to_string(r.local_rank), ints(r.gpus), r.nics.empty() ? "-" : join(r.nics, ","),
                    r.cpus.to_string(), ints(r.numa), std::to_string(r.threads), r.reason});
  }
  print_table(out, rows);
  // Ranks that broke the same rule for the same reason are listed together.
  std::vector<std::pair<std::string, std::vector<int>>> broken;
  for (const auto& r : ranks) {
    for (const auto& rule : r.broken) {
      auto it = std::find_if(broken.begin(), broken.end(), [&](const auto& b) { return b.first == rule; });
      if (it == broken.end()) {
        broken.push_back({rule, {r.local_rank}});
      } else {
        it->second.push_back(r.local_rank);
      }
    }
  }
  if (!broken.empty()) {
    out << "\nrules not kept:\n";
    for (const auto& [rule, who] : broken) {
      out << "  " << (who.size() == 1 ? "rank " : "ranks ") << format_index_list(who) << ": " << rule << "\n";
    }
  }
}

int plan_command(const std::vector<std::string>& args) {
  options::Parser parser(plan_help());
  parser.add()
      ("ranks", po::value<int>()->value_name("N"), "local ranks to place (required)")
      ("gpus-per-rank", po::value<int>()->value_name("K"),
       "GPUs for each rank (default: the allowed GPUs shared evenly; 0: CPU-only)")
      ("threads-per-rank", po::value<int>()->value_name("T"), "threads for each rank (default: one per core)")
      ("smt", "count hardware threads, not cores, for the default thread count")
      ("cpus", po::value<std::string>()->value_name("LIST"), "CPUs the ranks may use, e.g. 0-15,32-47")
      ("gpus", po::value<std::string>()->value_name("LIST"), "GPUs the ranks may use, e.g. 0-3")
      ("nic", po::value<std::string>()->value_name("POLICY")->default_value("nearest"),
       "nearest: the NIC nearest each rank's GPUs; all: every fabric NIC, nearest first");
  parser.add(source_options());
  auto parsed = parser.parse(args);
  if (!parsed) return 0;
  const auto& vm = parsed->values;
  if (!vm.count("ranks")) throw parser.usage_error("plan needs --ranks N");

  PlanRequest request;
  RequestNames names{"--ranks", "--gpus-per-rank", "--threads-per-rank", "--cpus", "--gpus"};
  request.ranks = vm["ranks"].as<int>();
  if (vm.count("gpus-per-rank")) request.gpus_per_rank = vm["gpus-per-rank"].as<int>();
  if (vm.count("threads-per-rank")) request.threads_per_rank = vm["threads-per-rank"].as<int>();
  request.smt = vm.count("smt") > 0;
  const std::string nic = vm["nic"].as<std::string>();
  if (nic == "nearest") {
    request.nics = NicPolicy::nearest;
  } else if (nic == "all") {
    request.nics = NicPolicy::all;
  } else {
    throw input_error("--nic " + nic + ": must be 'nearest' or 'all'");
  }
  if (vm.count("cpus")) {
    const auto text = vm["cpus"].as<std::string>();
    request.allowed_cpus = CpuSet::parse(text, "--cpus " + text);
  }
  if (vm.count("gpus")) {
    const auto text = vm["gpus"].as<std::string>();
    request.allowed_gpus = parse_index_list(text, "--gpus " + text);
  }
  Node node = load_node(vm);
  check_request(node, request, names);
  auto ranks = plan(node, request);
  if (vm.count("json")) {
    print_plan_json(std::cout, ranks);
  } else {
    print_plan_table(std::cout, node, ranks);
  }
  return 0;
}

}  // namespace

int topo_command(const std::vector<std::string>& args) {
  if (!args.empty() && args.front() == "plan") {
    return plan_command(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  return show(args);
}

}  // namespace cohort::topology
