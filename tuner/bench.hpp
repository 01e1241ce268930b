// tuner/bench.hpp — `cohort sweep bench`; private to tuner/.
#pragma once

#include <string>
#include <vector>

namespace cohort::tuner {

// Samplers against Optuna's TPE on standard problems; prints tables (see --help).
int sweep_bench(const std::vector<std::string>& args);

}  // namespace cohort::tuner
