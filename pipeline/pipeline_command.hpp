// pipeline/pipeline_command.hpp — `cohort pipeline`: run KFP v2 and cohort pipelines as
// chained Slurm jobs (or here, with --local), and follow, cancel and list their runs.
#pragma once

#include <string>
#include <vector>

namespace cohort::pipeline {

// Receives the arguments after `pipeline`; returns the exit status.
int pipeline_command(const std::vector<std::string>& args);

}  // namespace cohort::pipeline
