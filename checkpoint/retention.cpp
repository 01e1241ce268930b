// Which checkpoints retention removes, and removing them crash-safely.
#include "checkpoint/retention.hpp"

#include <algorithm>
#include <set>

#include "checkpoint/layout.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"

namespace cohort::checkpoint::detail {

std::vector<std::int64_t> steps_to_prune(const std::vector<std::int64_t>& steps, const Retention& retention,
                                         std::optional<std::int64_t> protect) {
  if (retention.keep_last <= 0 && retention.keep_every <= 0) return {};
  std::set<std::int64_t> keep;
  if (protect) keep.insert(*protect);
  if (retention.keep_last > 0) {
    auto n = std::min<size_t>(steps.size(), static_cast<size_t>(retention.keep_last));
    keep.insert(steps.end() - static_cast<std::ptrdiff_t>(n), steps.end());
  }
  if (retention.keep_every > 0) {
    for (auto s : steps) {
      if (s % retention.keep_every == 0) keep.insert(s);
    }
  }
  std::vector<std::int64_t> out;
  for (auto s : steps) {
    if (!keep.count(s)) out.push_back(s);
  }
  return out;
}

std::vector<std::string> remove_steps(const fs::path& dir, const std::vector<std::int64_t>& steps,
                                      std::vector<std::int64_t>& removed) {
  std::vector<std::string> errors;
  for (auto step : steps) {
    fs::path from = dir / step_dir_name(step);
    fs::path hidden = dir / ("." + step_dir_name(step) + ".deleting-" + nonce());
    try {
      // After this rename the checkpoint is no longer committed; a crash during the
      // deletion below leaves only a hidden leftover.
      rename_durably(from, hidden);
    } catch (const Error& e) {
      errors.push_back(e.what());
      continue;
    }
    removed.push_back(step);
    std::error_code ec;
    fs::remove_all(hidden, ec);
    if (ec) errors.push_back(system_message("remove " + hidden.string(), ec.value()));
  }
  return errors;
}

}  // namespace cohort::checkpoint::detail
