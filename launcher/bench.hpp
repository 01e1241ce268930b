// launcher/bench.hpp — `cohort bench launch`: `cohort launch`'s start-up against plain srun
// in the same allocation, and its teardown of a gang after a rank fails.
#pragma once

#include <string>
#include <vector>

namespace cohort::launcher {

// Receives the arguments after `bench launch`; needs a Slurm cluster (the mini-cluster
// will do). Returns the exit status (see --help).
int bench_command(const std::vector<std::string>& args);

}  // namespace cohort::launcher
