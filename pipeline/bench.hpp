// pipeline/bench.hpp — `cohort bench pipeline`: a DAG's submission against as many bare
// sbatch calls in the same run, and a fully cached rerun.
#pragma once

#include <string>
#include <vector>

namespace cohort::pipeline {

// Receives the arguments after `bench pipeline`; needs a Slurm cluster (the mini-cluster
// will do). Returns the exit status.
int bench_command(const std::vector<std::string>& args);

}  // namespace cohort::pipeline
