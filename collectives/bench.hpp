// collectives/bench.hpp — `cohort bench collectives`: nccl-tests' table for cohort's
// collectives, checked results, a same-run MPI baseline, and the ResNet-50 gradient list.
#pragma once

#include <string>
#include <vector>

namespace cohort::collectives {

// Receives the arguments after `bench collectives`. Returns the exit status: 1 when any
// result was wrong. Run under mpirun or srun; rank 0 prints.
int bench_command(const std::vector<std::string>& args);

}  // namespace cohort::collectives
