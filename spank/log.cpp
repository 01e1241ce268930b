#include <vector>

#include "spank/context.hpp"

namespace cohort::spank::plugin {

State& state() {
  static State s;
  return s;
}

void log_error(const std::string& message) { slurm_error("spank_cohort: %s", message.c_str()); }

void log_user(const std::string& message) { slurm_spank_log("spank_cohort: %s", message.c_str()); }

bool check(spank_err_t rc, const std::string& call) {
  if (rc == ESPANK_SUCCESS) return true;
  log_error(call + ": " + spank_strerror(rc));
  return false;
}

std::optional<std::string> job_getenv(spank_t sp, const std::string& name) {
  // Node lists and GPU lists can be long; grow until the value fits.
  for (size_t size = 4096; size <= (1u << 20); size *= 4) {
    std::vector<char> buf(size);
    spank_err_t rc = spank_getenv(sp, name.c_str(), buf.data(), static_cast<int>(buf.size()));
    if (rc == ESPANK_SUCCESS) return std::string(buf.data());
    if (rc == ESPANK_ENV_NOEXIST) return std::nullopt;
    if (rc != ESPANK_NOSPACE) {
      check(rc, "spank_getenv(" + name + ")");
      return std::nullopt;
    }
  }
  log_error("spank_getenv(" + name + "): value longer than 1 MiB, ignored");
  return std::nullopt;
}

}  // namespace cohort::spank::plugin
