// topology/topo_command.hpp — `cohort topo`: the node's topology and placement plans.
#pragma once

#include <string>
#include <vector>

namespace cohort::topology {

// `cohort topo [--topology FILE] [--json]` and `cohort topo plan --ranks N …`.
// Receives the arguments after `topo`; prints to stdout and returns the exit status.
// Throws cohort::Error (input errors for bad options or files).
int topo_command(const std::vector<std::string>& args);

}  // namespace cohort::topology
