// Fuzzing what users and administrators give the SPANK plugin (spank/settings.hpp): the
// input is taken as a --cohort argument, as COHORT_* variables (NAME=VALUE lines) and as
// plugstack.conf arguments (one a line). Every refusal is an input error; nothing else
// may escape, since no exception may cross the plugin's C edge.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "spank/settings.hpp"

using namespace cohort;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> lines;
  for (std::size_t start = 0; start <= text.size();) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  std::map<std::string, std::string> variables;
  for (const auto& line : lines) {
    const std::size_t eq = line.find('=');
    if (eq != std::string::npos) variables[line.substr(0, eq)] = line.substr(eq + 1);
  }
  const spank::EnvLookup lookup = [&](const std::string& name) -> std::optional<std::string> {
    auto it = variables.find(name);
    return it == variables.end() ? std::nullopt : std::optional<std::string>(it->second);
  };

  std::optional<spank::Settings> settings;
  try {
    settings = spank::parse_settings(text);
    if (settings->threads && (*settings->threads < 1 || *settings->threads > spank::kMaxThreads)) std::abort();
    if (settings->gpus_per_rank && (*settings->gpus_per_rank < 0 || *settings->gpus_per_rank > spank::kMaxGpusPerRank)) {
      std::abort();
    }
  } catch (const Error&) {
  }
  try {
    spank::merge_settings(lookup, lines.empty() ? std::nullopt : std::optional<std::string>(lines.front()));
  } catch (const Error&) {
  }
  try {
    const spank::PluginArgs args = spank::parse_plugin_args(lines);
    if (args.port_base < 1 || args.port_range < 1 || args.port_base + args.port_range > 65536) std::abort();
    if (settings) spank::placement_enabled(*settings, args);
  } catch (const Error&) {
  }
  return 0;
}
