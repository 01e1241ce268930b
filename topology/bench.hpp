// topology/bench.hpp — `cohort bench topo`: what topology placement costs at every task
// launch, against hwloc loading the same XML in the same run.
#pragma once

#include <string>
#include <vector>

namespace cohort::topology {

// Receives the arguments after `bench topo`; returns the exit status (see --help).
int bench_command(const std::vector<std::string>& args);

}  // namespace cohort::topology
