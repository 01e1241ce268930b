// dashboard/bench.hpp — `cohort bench dashboard`: the server time of a sweep's page and of its
// API answer for a sweep of N trials, against reading the same journal alone (what `cohort
// sweep status --json` does) in the same run; and how often Slurm is asked while many pages
// load at once.
#pragma once

#include <string>
#include <vector>

namespace cohort::dashboard {

int bench_command(const std::vector<std::string>& args);

}  // namespace cohort::dashboard
