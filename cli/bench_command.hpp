// cli/bench_command.hpp — `cohort bench <area>`: every component's benchmark behind one
// command. Each area is one row of the table in bench_command.cpp and one function of its
// component; all print the same table format and the same --json shape (common/bench.hpp).
#pragma once

#include <string>
#include <vector>

namespace cohort::cli {

// Receives the arguments after `bench`; runs the area args[0] names.
int bench_command(const std::vector<std::string>& args);

}  // namespace cohort::cli
