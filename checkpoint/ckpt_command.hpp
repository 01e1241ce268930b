// checkpoint/ckpt_command.hpp — `cohort ckpt`: list, inspect, verify and prune checkpoints.
#pragma once

#include <string>
#include <vector>

namespace cohort::checkpoint {

// Receives the arguments after `ckpt`; returns the exit status (0 ok, 1 a checkpoint
// failed verification, 2 bad usage). Throws cohort::Error for bad input or failure.
int ckpt_command(const std::vector<std::string>& args);

}  // namespace cohort::checkpoint
