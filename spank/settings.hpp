// spank/settings.hpp — what a user asks of the plugin (--cohort and COHORT_* variables) and
// what an administrator configures (plugstack.conf arguments). Pure C++: no Slurm symbols,
// so the rules are tested on their own and the plugin only moves text in and out.
//
//   auto env = [](const std::string& name) -> std::optional<std::string> { ... };
//   Settings s = merge_settings(env, "verbose,threads:4");   // command line wins over env
//   bool place = placement_enabled(s, parse_plugin_args({"default=off"}));
//
// Every parser throws cohort::input_error with a message that starts with the option or
// variable and its value, and says what would be accepted:
//   "--cohort=threads:0: threads must be 1..1024"
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "topology/placement.hpp"

namespace cohort::spank {

// The settings --cohort takes, for usage text and messages.
inline constexpr std::string_view kAcceptedSettings =
    "on, off, verbose, gpus-per-rank:K, threads:T, smt:on|off, nic:nearest|all";

inline constexpr int kMaxGpusPerRank = 64;
inline constexpr int kMaxThreads = 1024;

// Each field is unset until something sets it, so that sources can be layered.
struct Settings {
  std::optional<bool> enabled;        // placement on (--cohort, on) or off (off)
  std::optional<bool> verbose;        // one line per task saying what was applied
  std::optional<int> gpus_per_rank;   // 0..64; 0 is a CPU-only plan
  std::optional<int> threads;         // OMP_NUM_THREADS per rank, 1..1024
  std::optional<bool> smt;            // count hardware threads rather than cores
  std::optional<topology::NicPolicy> nic;

  // Fields set in `over` replace these.
  void overlay(const Settings& over);
  friend bool operator==(const Settings&, const Settings&) = default;
};

// --cohort's argument: "" (a bare --cohort) or a comma list of settings. Giving the
// option turns placement on unless the list says `off`. `option` names the option in
// messages.
Settings parse_settings(std::string_view text, std::string_view option = "--cohort");

// A variable's value, or nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// The COHORT_* variables that stand for settings, with what each accepts.
struct SettingVariable {
  std::string_view name;      // "COHORT_THREADS"
  std::string_view accepted;  // "1..1024"
};
const std::vector<SettingVariable>& setting_variables();

// Settings from COHORT_PLACEMENT, COHORT_VERBOSE, COHORT_GPUS_PER_RANK, COHORT_THREADS,
// COHORT_SMT and COHORT_NIC; empty values count as unset.
Settings settings_from_environment(const EnvLookup& lookup);

// The variables first, then --cohort (when given) on top, setting by setting.
Settings merge_settings(const EnvLookup& lookup, const std::optional<std::string>& option);

// plugstack.conf arguments: `required spank_cohort.so default=on topology=/etc/node.xml`.
struct PluginArgs {
  bool default_on = false;    // place steps that do not ask with --cohort
  std::string topology_file;  // absolute path of an hwloc XML; "" discovers the node
  int port_base = 29500;      // MASTER_PORT falls in [port_base, port_base + port_range)
  int port_range = 2000;
  friend bool operator==(const PluginArgs&, const PluginArgs&) = default;
};

inline constexpr std::string_view kAcceptedPluginArgs =
    "default=on|off, topology=FILE, port_base=N, port_range=N";

// Throws cohort::input_error starting with "plugstack.conf: " and the argument at fault.
PluginArgs parse_plugin_args(const std::vector<std::string>& args);

// Whether a step is placed: its own settings, else the administrator's default.
bool placement_enabled(const Settings& settings, const PluginArgs& args);

}  // namespace cohort::spank
