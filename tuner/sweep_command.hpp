// tuner/sweep_command.hpp — `cohort sweep`, the command.
#pragma once

#include <string>
#include <vector>

namespace cohort::tuner {

// `cohort sweep <verb> …`: run, submit, task, resume, init, status, best, report, plot;
// returns the exit status (see --help).
int sweep_command(const std::vector<std::string>& args);

}  // namespace cohort::tuner
