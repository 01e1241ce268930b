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

#include "common/text.hpp"
#include "topology/placement.hpp"
#include "topology/topology.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using cohort::topology::Node;

double elapsed_ms(const std::function<void()>& call) {
  auto start = Clock::now();
  call();
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double median(std::vector<double> ms) {
  std::nth_element(ms.begin(), ms.begin() + static_cast<std::ptrdiff_t>(ms.size() / 2), ms.end());
  return ms[ms.size() / 2];
}

// Medians of `runs` timed calls of each, after one untimed warm-up call each. The calls
// alternate, so that whatever else the machine does weighs on both alike.
std::vector<double> median_ms(int runs, const std::vector<std::function<void()>>& calls) {
  std::vector<std::vector<double>> ms(calls.size());
  for (const auto& call : calls) call();
  for (int i = 0; i < runs; ++i) {
    for (std::size_t c = 0; c < calls.size(); ++c) ms[c].push_back(elapsed_ms(calls[c]));
  }
  std::vector<double> out;
  for (auto& m : ms) out.push_back(median(std::move(m)));
  return out;
}

// A fixture as hwloc itself can read it with either of its XML parsers: without the
// comments and blank lines that document it (cohort removes them the same way).
std::string read(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "topology_bench: cannot read %s\n", path.c_str());
    std::exit(1);
  }
  std::string text{std::istreambuf_iterator<char>(in), {}};
  for (std::size_t open; (open = text.find("<!--")) != std::string::npos;) {
    text.erase(open, text.find("-->", open) + 3 - open);
  }
  std::string out;
  for (std::size_t at = 0; at < text.size();) {
    std::size_t end = std::min(text.find('\n', at), text.size());
    if (text.find_first_not_of(" \t\r", at) < end) out.append(text, at, end - at).push_back('\n');
    at = end + 1;
  }
  return out;
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
      const auto n = cohort::parse_integer(argv[++i], 1, 1'000'000);
      if (!n) {
        std::fprintf(stderr, "topology_bench: --runs %s: expected a whole number 1..1000000\n", argv[i]);
        return 2;
      }
      runs = static_cast<int>(*n);
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
    Node node = Node::from_xml(c.xml);
    cohort::topology::PlanRequest request;
    request.ranks = c.ranks;
    auto ms = median_ms(runs, {[&] { hwloc_load(c.xml); }, [&] { Node::from_xml(c.xml); },
                               [&] { cohort::topology::plan(node, request); }});
    rows.push_back({c.name + ": hwloc XML load (baseline)", ms[0], ms[0]});
    rows.push_back({c.name + ": Node::from_xml", ms[1], ms[0]});
    rows.push_back({c.name + ": plan " + std::to_string(c.ranks) + " ranks", ms[2], ms[0]});
    worst_load = std::max(worst_load, ms[1]);
    worst_plan = std::max(worst_plan, ms[2]);
  }
  const double machine = median_ms(std::max(1, runs / 20), {[] { Node::from_this_machine(); }})[0];

  std::printf("cohort topology benchmark: medians of %d alternating runs\n\n", runs);
  std::printf("%-62s %10s  %s\n", "case", "median", "vs hwloc load");
  for (const auto& r : rows) {
    std::printf("%-62s %7.3f ms  %.3fx\n", r.what.c_str(), r.ms, r.ms / r.baseline_ms);
  }
  std::printf("%-62s %7.3f ms\n", "this machine: Node::from_this_machine (PCI scan included)", machine);
  std::printf("\ntargets: load < 20 ms (slowest %.3f ms: %s), plan < 1 ms (slowest %.3f ms: %s)\n",
              worst_load, worst_load < 20 ? "met" : "MISSED", worst_plan, worst_plan < 1 ? "met" : "MISSED");
  return 0;
}
