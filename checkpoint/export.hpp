// checkpoint/export.hpp — `cohort ckpt export`, to safetensors or NumPy's .npz.
#pragma once

#include <string>
#include <vector>

namespace cohort::checkpoint {

// Receives the arguments after `ckpt export`.
int export_command(const std::vector<std::string>& args);

}  // namespace cohort::checkpoint
