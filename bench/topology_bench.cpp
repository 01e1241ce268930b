// topology_bench — what topology placement costs at every task launch: reading an hwloc
// XML topology into a Node, and planning a node's ranks.
//
// The baseline is hwloc itself loading the same XML in the same run: cohort's load can
// only add to it (the model is built from the loaded hwloc topology), so the ratio shows
// the price of the model, and the plan is shown against the same yardstick.
//
//   build/bin/topology_bench [FIXTURE_DIR] [--runs N]
#include <hwloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "topology/placement.hpp"
#include "topology/topology.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using cohort::topology::Node;

// Median of `runs` timed calls, in milliseconds, after one untimed warm-up call.
double median_ms(int runs, const std::function<void()>& call) {
  call();
  std::vector<double> ms;
  ms.reserve(static_cast<std::size_t>(runs));
  for (int i = 0; i < runs; ++i) {
    auto start = Clock::now();
    call();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::nth_element(ms.begin(), ms.begin() + runs / 2, ms.end());
  return ms[static_cast<std::size_t>(runs / 2)];
}

std::string read(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "topology_bench: cannot read %s\n", path.c_str());
    std::exit(1);
  }
  return {std::istreambuf_iterator<char>(in), {}};
}

// hwloc alone: the same XML, the same I/O filter, no model.
void hwloc_load(const std::string& xml) {
  hwloc_topology_t topology;
  hwloc_topology_init(&topology);
  hwloc_topology_set_io_types_filter(topology, HWLOC_TYPE_FILTER_KEEP_ALL);
  hwloc_topology_set_flags(topology, HWLOC_TOPOLOGY_FLAG_INCLUDE_DISALLOWED);
  hwloc_topology_set_xmlbuffer(topology, xml.c_str(), static_cast<int>(xml.size() + 1));
  if (hwloc_topology_load(topology) != 0) {
    std::fprintf(stderr, "topology_bench: hwloc cannot load the XML\n");
    std::exit(1);
  }
  hwloc_topology_destroy(topology);
}

// A large CPU node as XML: 2 packages x 4 NUMA x 4 L3 x 4 cores x 2 threads = 256 CPUs.
std::string large_node_xml() {
  hwloc_topology_t topology;
  hwloc_topology_init(&topology);
  hwloc_topology_set_synthetic(topology, "pack:2 numa:4 l3:4 core:4 pu:2");
  hwloc_topology_load(topology);
  char* buffer = nullptr;
  int length = 0;
  hwloc_topology_export_xmlbuffer(topology, &buffer, &length, 0);
  std::string xml(buffer, static_cast<std::size_t>(std::max(length - 1, 0)));
  hwloc_free_xmlbuffer(topology, buffer);
  hwloc_topology_destroy(topology);
  return xml;
}

struct Row {
  std::string what;
  double ms;
  double baseline_ms;
};

}  // namespace

int main(int argc, char** argv) {
  std::string dir = COHORT_TOPOLOGY_FIXTURES;
  int runs = 200;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--runs" && i + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--help" || arg == "-h") {
      std::printf("usage: topology_bench [FIXTURE_DIR] [--runs N]\n");
      return 0;
    } else {
      dir = arg;
    }
  }

  struct Case {
    std::string name;
    std::string xml;
    int ranks;
  };
  std::vector<Case> cases{
      {"DGX-style, 2 sockets, 8 GPUs, 9 NICs", read(dir + "/dgx_a100_2s_8gpu_8ib.xml"), 8},
      {"AMD MI250X, 4 NUMA, 8 GPUs, 4 NICs", read(dir + "/amd_mi250x_frontier.xml"), 8},
      {"CPU-only, 256 CPUs (synthetic)", large_node_xml(), 8},
  };

  std::vector<Row> rows;
  double worst_load = 0;
  double worst_plan = 0;
  for (const auto& c : cases) {
    const double base = median_ms(runs, [&] { hwloc_load(c.xml); });
    const double load = median_ms(runs, [&] { Node::from_xml(c.xml); });
    Node node = Node::from_xml(c.xml);
    cohort::topology::PlanRequest request;
    request.ranks = c.ranks;
    const double plan = median_ms(runs * 10, [&] { cohort::topology::plan(node, request); });
    rows.push_back({c.name + ": hwloc XML load (baseline)", base, base});
    rows.push_back({c.name + ": Node::from_xml", load, base});
    rows.push_back({c.name + ": plan " + std::to_string(c.ranks) + " ranks", plan, base});
    worst_load = std::max(worst_load, load);
    worst_plan = std::max(worst_plan, plan);
  }
  const double machine = median_ms(std::max(1, runs / 20), [] { Node::from_this_machine(); });

  std::printf("cohort topology benchmark: median of %d runs (plans: %d runs)\n\n", runs, runs * 10);
  std::printf("%-62s %10s  %s\n", "case", "median", "vs hwloc load");
  for (const auto& r : rows) {
    std::printf("%-62s %7.3f ms  %.3fx\n", r.what.c_str(), r.ms, r.ms / r.baseline_ms);
  }
  std::printf("%-62s %7.3f ms\n", "this machine: Node::from_this_machine (PCI scan included)", machine);
  std::printf("\ntargets: load < 20 ms (slowest %.3f ms: %s), plan < 1 ms (slowest %.3f ms: %s)\n",
              worst_load, worst_load < 20 ? "met" : "MISSED", worst_plan, worst_plan < 1 ? "met" : "MISSED");
  return 0;
}
