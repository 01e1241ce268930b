// launcher/agent_bench.hpp — `cohort bench launch --simulate`: a supervisor's load with a
// large simulated gang on loopback, events over TCP against polling the run directory.
#pragma once

#include <string>
#include <vector>

namespace cohort::launcher {

// The bench, on this machine alone; returns the exit status (see --help).
int simulated_bench(const std::vector<std::string>& args);

}  // namespace cohort::launcher
