// serve/bench.hpp — `cohort bench serve`: the model server under wrk against nginx, Flask,
// batching off, JSON and the replica without the router, each in the same run
// (bench/serve.py measures; this prints).
#pragma once

#include <string>
#include <vector>

namespace cohort::serve {

int bench_command(const std::vector<std::string>& args);

}  // namespace cohort::serve
