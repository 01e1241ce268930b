// python/bench.hpp — `cohort bench torch`: the torch.distributed backend "cohort" against
// gloo on the same ranks (bench/torch_backend.py under mpirun).
#pragma once

#include <string>
#include <vector>

namespace cohort::python {

int bench_command(const std::vector<std::string>& args);

}  // namespace cohort::python
