// checkpoint/bench.hpp — `cohort ckpt bench`, the checkpoint throughput benchmark.
#pragma once

#include <string>
#include <vector>

namespace cohort::checkpoint {

// Receives the arguments after `ckpt bench`. Initialises MPI itself when run without it.
int bench_command(const std::vector<std::string>& args);

}  // namespace cohort::checkpoint
