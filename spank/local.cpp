// Local (srun) and allocator (salloc, sbatch) contexts: refuse bad settings before the
// job is queued, so a typo costs a second rather than a place in the queue.
#include <cstdlib>

#include "spank/context.hpp"

namespace cohort::spank::plugin {

int local_init_post_opt(spank_t) {
  State& st = state();
  auto lookup = [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    return value ? std::optional<std::string>(value) : std::nullopt;
  };
  st.settings = merge_settings(lookup, st.option);
  st.enabled = placement_enabled(st.settings, st.args);
  return 0;
}

}  // namespace cohort::spank::plugin
