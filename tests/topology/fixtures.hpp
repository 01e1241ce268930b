// Paths to the hwloc XML fixtures beside this file, and the nodes they describe.
#pragma once

#include <string>
#include <vector>

#include "topology/topology.hpp"

namespace cohort::topology::testing {

inline std::string fixture(const std::string& name) {
  return std::string(COHORT_TOPOLOGY_FIXTURES) + "/" + name;
}

inline const std::vector<std::string>& all_fixtures() {
  static const std::vector<std::string> names{
      "dgx_a100_2s_8gpu_8ib.xml", "one_socket_4gpu.xml", "two_socket_cpu_only.xml",
      "gpus_on_one_socket.xml", "amd_mi250x_frontier.xml"};
  return names;
}

inline Node load(const std::string& name) { return Node::from_xml_file(fixture(name)); }

}  // namespace cohort::topology::testing
