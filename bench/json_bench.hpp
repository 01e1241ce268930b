// bench/json_bench.hpp — `cohort bench json`: cohort::json against every JSON library Debian
// ships, on a KServe V2 request body. Built where those libraries are installed.
#pragma once

#include <string>
#include <vector>

namespace cohort::json {

int bench_command(const std::vector<std::string>& args);

}  // namespace cohort::json
