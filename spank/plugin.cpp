// spank_cohort.so: the SPANK callbacks Slurm calls, each dispatched to the file for its
// context. This is the only file with C linkage; an exception stops here, as one logged
// line and -1.
#include <exception>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "spank/context.hpp"

namespace cohort::spank::plugin {
namespace {

template <typename F>
int guarded(const char* callback, F&& body) noexcept {
  try {
    return body();
  } catch (const Error& e) {
    // cohort's messages already name the input at fault.
    log_error(e.what());
  } catch (const std::exception& e) {
    log_error(std::string(callback) + ": " + e.what());
  } catch (...) {
    log_error(std::string(callback) + ": unknown failure");
  }
  return -1;
}

int on_cohort_option(int, const char* optarg, int remote) {
  return guarded("--cohort", [&] {
    std::string text = optarg ? optarg : "";
    // A bare `#SBATCH --cohort` reaches the job's srun through the environment, where
    // Slurm has printed its missing argument as "(null)".
    if (text == "(null)") text.clear();
    // Refuse a bad value where the user typed it; slurmstepd checks again after merging.
    if (!remote) parse_settings(text);
    state().option = std::move(text);
    return 0;
  });
}

char kOptionName[] = "cohort";
char kOptionArg[] = "SETTINGS";
char kOptionUsage[] =
    "[cohort] place each task by hardware topology (GPUs, NICs, cores, memory) and export "
    "the launch contract (RANK, MASTER_ADDR, ...). SETTINGS, comma separated: on, off, verbose, "
    "gpus-per-rank:K, threads:T, smt:on|off, nic:nearest|all";

spank_option kOptions[] = {
    {kOptionName, kOptionArg, kOptionUsage, 2, 0, on_cohort_option},
    SPANK_OPTIONS_TABLE_END,
};

bool placing_context(spank_context_t ctx) {
  return ctx == S_CTX_LOCAL || ctx == S_CTX_ALLOCATOR || ctx == S_CTX_REMOTE;
}

int init(spank_t sp, int ac, char** av) {
  // slurmd and prolog/epilog contexts have nothing to place; they load the plugin and
  // leave it alone.
  if (!placing_context(spank_context())) return 0;
  std::vector<std::string> args(av, av + ac);
  state().args = parse_plugin_args(args);
  for (spank_option* opt = kOptions; opt->name; ++opt) {
    if (!check(spank_option_register(sp, opt), std::string("spank_option_register(--") + opt->name + ")")) return -1;
  }
  return 0;
}

int init_post_opt(spank_t sp) {
  switch (spank_context()) {
    case S_CTX_LOCAL:
    case S_CTX_ALLOCATOR:
      return local_init_post_opt(sp);
    case S_CTX_REMOTE:
      return remote_init_post_opt(sp);
    default:
      return 0;
  }
}

int finish() {
  // Drop the node model and hwloc handle before the daemon unloads the plugin.
  state() = State{};
  return 0;
}

}  // namespace
}  // namespace cohort::spank::plugin

namespace plugin = cohort::spank::plugin;

extern "C" {

// Declared extern first: a const at namespace scope would otherwise have internal linkage
// in C++, and Slurm could not find the plugin's identity.
extern const char plugin_name[];
extern const char plugin_type[];
extern const unsigned int plugin_version;
extern const unsigned int spank_plugin_version;
SPANK_PLUGIN(cohort, 1)

int slurm_spank_init(spank_t sp, int ac, char** av) {
  return plugin::guarded("init", [&] { return plugin::init(sp, ac, av); });
}

int slurm_spank_init_post_opt(spank_t sp, int, char**) {
  return plugin::guarded("init_post_opt", [&] { return plugin::init_post_opt(sp); });
}

int slurm_spank_user_init(spank_t sp, int, char**) {
  return plugin::guarded("user_init", [&] { return plugin::remote_user_init(sp); });
}

int slurm_spank_task_init(spank_t sp, int, char**) {
  return plugin::guarded("task_init", [&] { return plugin::remote_task_init(sp); });
}

int slurm_spank_exit(spank_t, int, char**) {
  return plugin::guarded("exit", [] { return plugin::finish(); });
}

}  // extern "C"
