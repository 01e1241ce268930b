// checkpoint/retention.hpp — private to checkpoint/: which checkpoints retention removes, and
// removing them crash-safely.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.hpp"

namespace cohort::checkpoint::detail {

namespace fs = std::filesystem;

// The steps `retention` removes from `steps` (ascending), never `protect`.
std::vector<std::int64_t> steps_to_prune(const std::vector<std::int64_t>& steps,
                                         const Retention& retention,
                                         std::optional<std::int64_t> protect);
// Removes `steps` from `dir` crash-safely (hidden rename, then delete). Keeps going past a
// failure; failures are returned as text.
std::vector<std::string> remove_steps(const fs::path& dir, const std::vector<std::int64_t>& steps,
                                      std::vector<std::int64_t>& removed);

}  // namespace cohort::checkpoint::detail
