// lineage/bench.hpp — `cohort bench lineage`: records written per second into one lineage
// store by many processes at once, directly and through the spool, against one writer
// alone in the same run; every run checks that no record was lost or written twice.
#pragma once

#include <string>
#include <vector>

namespace cohort::lineage {

// Receives the arguments after `bench lineage`; returns the exit status (see --help).
int bench_command(const std::vector<std::string>& args);

}  // namespace cohort::lineage
