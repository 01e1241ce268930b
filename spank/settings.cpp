#include "spank/settings.hpp"

#include <charconv>
#include <set>

#include "common/error.hpp"
#include "common/text.hpp"

namespace cohort::spank {
namespace {

using topology::NicPolicy;

// Where a value came from, as the user wrote it: "--cohort=threads:0", "COHORT_THREADS=0".
struct Source {
  std::string text;
  Error bad(const std::string& why) const { return input_error(text + ": " + why); }
};

int parse_count(std::string_view value, const char* what, int lo, int hi, const Source& src) {
  int n = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  const std::string range = std::to_string(lo) + ".." + std::to_string(hi);
  if (value.empty() || ec == std::errc::invalid_argument || end != value.data() + value.size()) {
    throw src.bad(std::string(what) + " must be a whole number " + range);
  }
  if (ec == std::errc::result_out_of_range || n < lo || n > hi) {
    throw src.bad(std::string(what) + " must be " + range);
  }
  return n;
}

bool parse_switch(std::string_view value, const char* what, const Source& src) {
  if (value == "on") return true;
  if (value == "off") return false;
  throw src.bad(std::string(what) + " must be on or off");
}

NicPolicy parse_nic(std::string_view value, const Source& src) {
  if (value == "nearest") return NicPolicy::nearest;
  if (value == "all") return NicPolicy::all;
  throw src.bad("nic must be nearest or all");
}

// One table drives both the option's key:value settings and the variables, so the two
// cannot drift apart.
struct ValueSetting {
  std::string_view key;       // in --cohort: "threads"
  std::string_view variable;  // "COHORT_THREADS"
  std::string_view accepted;  // for the variable table and messages
  void (*apply)(Settings&, std::string_view value, const Source&);
};

const ValueSetting kValueSettings[] = {
    {"placement", "COHORT_PLACEMENT", "on|off",
     [](Settings& s, std::string_view v, const Source& src) { s.enabled = parse_switch(v, "placement", src); }},
    {"verbose", "COHORT_VERBOSE", "on|off",
     [](Settings& s, std::string_view v, const Source& src) { s.verbose = parse_switch(v, "verbose", src); }},
    {"gpus-per-rank", "COHORT_GPUS_PER_RANK", "0..64",
     [](Settings& s, std::string_view v, const Source& src) {
       s.gpus_per_rank = parse_count(v, "gpus-per-rank", 0, kMaxGpusPerRank, src);
     }},
    {"threads", "COHORT_THREADS", "1..1024",
     [](Settings& s, std::string_view v, const Source& src) {
       s.threads = parse_count(v, "threads", 1, kMaxThreads, src);
     }},
    {"smt", "COHORT_SMT", "on|off",
     [](Settings& s, std::string_view v, const Source& src) { s.smt = parse_switch(v, "smt", src); }},
    {"nic", "COHORT_NIC", "nearest|all",
     [](Settings& s, std::string_view v, const Source& src) { s.nic = parse_nic(v, src); }},
};

const ValueSetting* find_value_setting(std::string_view key) {
  for (const auto& setting : kValueSettings) {
    // "placement" is spelt on/off in the option; only its variable takes a value.
    if (setting.key == key && key != "placement") return &setting;
  }
  return nullptr;
}

std::string unknown(std::string_view what) {
  return "unknown setting '" + std::string(what) + "' (accepted: " + std::string(kAcceptedSettings) + ")";
}

}  // namespace

void Settings::overlay(const Settings& over) {
  if (over.enabled) enabled = over.enabled;
  if (over.verbose) verbose = over.verbose;
  if (over.gpus_per_rank) gpus_per_rank = over.gpus_per_rank;
  if (over.threads) threads = over.threads;
  if (over.smt) smt = over.smt;
  if (over.nic) nic = over.nic;
}

Settings parse_settings(std::string_view text, std::string_view option) {
  Settings s;
  s.enabled = true;
  if (text.empty()) return s;
  std::set<std::string, std::less<>> seen;
  for (std::string_view item : split(text, ',')) {
    const Source src{std::string(option) + "=" + std::string(item)};
    if (item.empty()) {
      throw input_error(std::string(option) + "=" + std::string(text) +
                        ": empty setting between commas (accepted: " + std::string(kAcceptedSettings) + ")");
    }
    size_t colon = item.find(':');
    std::string_view key = item.substr(0, colon);
    // on and off are one setting, so "on,off" is a contradiction rather than a repeat.
    std::string_view slot = key == "on" || key == "off" ? "placement" : key;
    if (!seen.insert(std::string(slot)).second) {
      throw input_error(std::string(option) + "=" + std::string(text) + ": " + std::string(slot) +
                        " is given twice");
    }
    if (colon == item.npos) {
      if (item == "on") {
        s.enabled = true;
      } else if (item == "off") {
        s.enabled = false;
      } else if (item == "verbose") {
        s.verbose = true;
      } else if (find_value_setting(item)) {
        throw src.bad(std::string(item) + " needs a value, as in " + std::string(item) + ":" +
                      std::string(find_value_setting(item)->accepted));
      } else {
        throw src.bad(unknown(item));
      }
    } else {
      const ValueSetting* setting = find_value_setting(key);
      if (!setting) throw src.bad(unknown(key));
      setting->apply(s, item.substr(colon + 1), src);
    }
  }
  return s;
}

const std::vector<SettingVariable>& setting_variables() {
  static const std::vector<SettingVariable> variables = [] {
    std::vector<SettingVariable> v;
    for (const auto& setting : kValueSettings) v.push_back({setting.variable, setting.accepted});
    return v;
  }();
  return variables;
}

Settings settings_from_environment(const EnvLookup& lookup) {
  Settings s;
  for (const auto& setting : kValueSettings) {
    const std::string name(setting.variable);
    std::optional<std::string> value = lookup(name);
    if (!value || value->empty()) continue;
    setting.apply(s, *value, Source{name + "=" + *value});
  }
  return s;
}

Settings merge_settings(const EnvLookup& lookup, const std::optional<std::string>& option) {
  Settings s = settings_from_environment(lookup);
  if (option) s.overlay(parse_settings(*option));
  return s;
}

PluginArgs parse_plugin_args(const std::vector<std::string>& args) {
  PluginArgs out;
  std::set<std::string, std::less<>> seen;
  for (const std::string& arg : args) {
    const Source src{"plugstack.conf: " + arg};
    size_t eq = arg.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw src.bad("expected KEY=VALUE (accepted: " + std::string(kAcceptedPluginArgs) + ")");
    }
    const std::string key = arg.substr(0, eq), value = arg.substr(eq + 1);
    if (!seen.insert(key).second) throw src.bad(key + " is given twice");
    if (key == "default") {
      out.default_on = parse_switch(value, "default", src);
    } else if (key == "topology") {
      // The file is opened inside slurmstepd: only an administrator's absolute path.
      if (value.empty() || value.front() != '/') throw src.bad("topology must be an absolute path to an hwloc XML file");
      out.topology_file = value;
    } else if (key == "port_base") {
      out.port_base = parse_count(value, "port_base", 1, 65535, src);
    } else if (key == "port_range") {
      out.port_range = parse_count(value, "port_range", 1, 65535, src);
    } else {
      throw src.bad("unknown argument '" + key + "' (accepted: " + std::string(kAcceptedPluginArgs) + ")");
    }
  }
  if (out.port_base + out.port_range > 65536) {
    throw input_error("plugstack.conf: port_base=" + std::to_string(out.port_base) + " port_range=" +
                      std::to_string(out.port_range) + ": ports must stay below 65536");
  }
  return out;
}

bool placement_enabled(const Settings& settings, const PluginArgs& args) {
  return settings.enabled.value_or(args.default_on);
}

}  // namespace cohort::spank
