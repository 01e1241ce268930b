// tuner/bench.hpp — `cohort bench sweep`: the samplers against Optuna's TPE.
#pragma once

#include <string>
#include <vector>

namespace cohort::tuner {

// Samplers against Optuna's TPE on standard problems; prints tables (see --help).
int bench_command(const std::vector<std::string>& args);

}  // namespace cohort::tuner
