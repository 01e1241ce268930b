// What topology placement costs at every task launch: reading an hwloc XML topology into a
// Node, and planning a node's ranks.
//
// The baseline is hwloc itself loading the same XML in the same run: cohort's load can
// only add to it (the model is built from the loaded hwloc topology), so the ratio shows
// the price of the model, and the plan is shown against the same yardstick.
#include "topology/bench.hpp"

#include <hwloc.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>

#include "common/bench.hpp"
#include "common/error.hpp"
#include "common/options.hpp"
#include "topology/placement.hpp"
#include "topology/topology.hpp"

namespace cohort::topology {
namespace {

namespace po = options::po;

// A fixture as hwloc itself can read it with either of its XML parsers: without the
// comments and blank lines that document it (cohort removes them the same way).
std::string read_fixture(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read " + path + " (name the directory of cohort's topology fixtures)");
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

using Topology = std::unique_ptr<hwloc_topology, decltype(&hwloc_topology_destroy)>;

Topology new_topology() {
  hwloc_topology_t topology = nullptr;
  if (hwloc_topology_init(&topology) != 0) throw Error("hwloc cannot initialise a topology");
  return {topology, &hwloc_topology_destroy};
}

// hwloc alone: the same XML, the same I/O filter, no model.
void hwloc_load(const std::string& xml) {
  Topology topology = new_topology();
  hwloc_topology_set_io_types_filter(topology.get(), HWLOC_TYPE_FILTER_KEEP_ALL);
  hwloc_topology_set_flags(topology.get(), HWLOC_TOPOLOGY_FLAG_INCLUDE_DISALLOWED);
  hwloc_topology_set_xmlbuffer(topology.get(), xml.c_str(), static_cast<int>(xml.size() + 1));
  if (hwloc_topology_load(topology.get()) != 0) throw Error("hwloc cannot load the XML");
}

// A large CPU node as XML: 2 packages x 4 NUMA x 4 L3 x 4 cores x 2 threads = 256 CPUs.
std::string large_node_xml() {
  Topology topology = new_topology();
  hwloc_topology_set_synthetic(topology.get(), "pack:2 numa:4 l3:4 core:4 pu:2");
  hwloc_topology_load(topology.get());
  char* buffer = nullptr;
  int length = 0;
  hwloc_topology_export_xmlbuffer(topology.get(), &buffer, &length, 0);
  std::string xml(buffer, static_cast<std::size_t>(std::max(length - 1, 0)));
  hwloc_free_xmlbuffer(topology.get(), buffer);
  return xml;
}

double milliseconds(const std::function<void()>& call) { return bench::seconds(call) * 1e3; }

struct Case {
  std::string name;
  std::string xml;
  int ranks;
};

}  // namespace

int bench_command(const std::vector<std::string>& args) {
  std::string runs_text = "200";
  options::Parser parser(
      {"bench topo",
       {"[FIXTURE_DIR] [--runs N] [--json]"},
       "Times what placement costs at every task launch: loading an hwloc XML topology into\n"
       "cohort's node model, and planning 8 ranks on it, for a DGX-style node, an AMD MI250X\n"
       "node and a 256-CPU node; the baseline is hwloc alone loading the same XML. The calls\n"
       "alternate, and each figure is the median of N runs. FIXTURE_DIR holds the XML files\n"
       "(default: the source tree's tests/topology/fixtures).",
       {"cohort bench topo --runs 300", "cohort bench topo --json"}});
  parser.add()("runs", po::value(&runs_text)->value_name("N"), "timed runs of each call (200)")(
      "json", "print one JSON object instead of the table");
  parser.operands(1);
  auto parsed = parser.parse(args);
  if (!parsed) return 0;
  const int runs = static_cast<int>(options::whole_number("--runs", runs_text, 1, 1'000'000));
  const std::string dir = parsed->operands.empty() ? COHORT_TOPOLOGY_FIXTURES : parsed->operands[0];
  const std::vector<Case> cases{
      {"DGX-style, 2 sockets, 8 GPUs, 9 NICs", read_fixture(dir + "/dgx_a100_2s_8gpu_8ib.xml"), 8},
      {"AMD MI250X, 4 NUMA, 8 GPUs, 4 NICs", read_fixture(dir + "/amd_mi250x_frontier.xml"), 8},
      {"CPU-only, 256 CPUs (synthetic)", large_node_xml(), 8},
  };

  bench::Report report("topo");
  report.context("runs", runs);
  report.context("fixtures", dir);
  auto& table = report.table("placement", "medians of alternating runs, against hwloc loading the same XML",
                             {{.name = "case", .text = true},
                              {.name = "call", .text = true},
                              {.name = "median", .unit = "ms", .digits = 3},
                              {.name = "spread", .unit = "%", .digits = 1},
                              {.name = "ratio", .digits = 3}});
  double worst_load = 0, worst_plan = 0;
  for (const auto& c : cases) {
    Node node = Node::from_xml(c.xml);
    PlanRequest request;
    request.ranks = c.ranks;
    const auto ms = bench::alternate({1, runs}, {[&] { return milliseconds([&] { hwloc_load(c.xml); }); },
                                                 [&] { return milliseconds([&] { Node::from_xml(c.xml); }); },
                                                 [&] { return milliseconds([&] { plan(node, request); }); }});
    const std::string calls[] = {"hwloc XML load (baseline)", "Node::from_xml",
                                 "plan " + std::to_string(c.ranks) + " ranks"};
    for (std::size_t i = 0; i < ms.size(); ++i) {
      table.add({c.name, calls[i], ms[i].median, 100 * ms[i].spread(), bench::number(ms[i].median / ms[0].median)});
    }
    worst_load = std::max(worst_load, ms[1].median);
    worst_plan = std::max(worst_plan, ms[2].median);
  }
  const auto machine = bench::alternate({1, std::max(1, runs / 20)},
                                        {[] { return milliseconds([] { Node::from_this_machine(); }); }})[0];
  table.add({"this machine", "Node::from_this_machine (PCI scan included)", machine.median, 100 * machine.spread(),
             json::Value()});
  report.figure({"slowest_load_ms", "slowest load", worst_load, "ms", 3,
                 std::string("(target < 20 ms: ") + (worst_load < 20 ? "met)" : "MISSED)")});
  report.figure({"slowest_plan_ms", "slowest plan", worst_plan, "ms", 3,
                 std::string("(target < 1 ms: ") + (worst_plan < 1 ? "met)" : "MISSED)")});
  report.print(std::cout, parsed->has("json"));
  return 0;
}

}  // namespace cohort::topology
