#include "tuner/stopper.hpp"

#include <algorithm>

#include "common/error.hpp"
#include "common/yaml_reader.hpp"
#include "tuner/registry.hpp"
#include "tuner/stoppers.hpp"

namespace cohort::tuner {
namespace {

const std::vector<const StopperInfo*> kStoppers{&kMedianStop};

// "a", "a or b", "a, b or c".
std::string one_of(const std::vector<WholeNumberSetting>& settings) {
  std::string out;
  for (size_t i = 0; i < settings.size(); ++i) {
    if (i > 0) out += i + 1 == settings.size() ? " or " : ", ";
    out += settings[i].name;
  }
  return out;
}

}  // namespace

const StopperInfo* find_stopper(std::string_view name) { return find_named(kStoppers, name); }

std::string stopper_names() { return names_of(kStoppers); }

std::unique_ptr<Stopper> make_stopper(const Experiment& experiment) {
  if (experiment.early_stopping.empty()) return nullptr;
  const auto* s = find_stopper(experiment.early_stopping);
  if (!s) {
    throw input_error("'" + experiment.early_stopping + "' is not an early-stopping algorithm (expected one of: " +
                      stopper_names() + ")");
  }
  return s->make(experiment);
}

void whole_number_settings(const Experiment& experiment, const std::vector<WholeNumberSetting>& allowed,
                           const SpecError& fail) {
  for (size_t i = 0; i < experiment.early_stopping_settings.size(); ++i) {
    const Setting& setting = experiment.early_stopping_settings[i];
    const std::string path = "algorithmSettings[" + std::to_string(i) + "]";
    auto rule = std::find_if(allowed.begin(), allowed.end(), [&](const auto& a) { return a.name == setting.name; });
    if (rule == allowed.end()) {
      fail(path + ".name", "'" + setting.name + "' is not a " + experiment.early_stopping + " setting (expected " +
                               one_of(allowed) + ")");
      continue;
    }
    yaml::whole_number(setting.value, rule->least, rule->most, [&](const std::string& why) { fail(path + ".value", why); });
  }
}

}  // namespace cohort::tuner
