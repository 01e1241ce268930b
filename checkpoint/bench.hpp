// checkpoint/bench.hpp — `cohort bench ckpt`: checkpoint save and load throughput against
// raw write+fsync and read of the same bytes.
#pragma once

#include <string>
#include <vector>

namespace cohort::checkpoint {

// Receives the arguments after `bench ckpt`. Initialises MPI itself when run without it.
int bench_command(const std::vector<std::string>& args);

}  // namespace cohort::checkpoint
