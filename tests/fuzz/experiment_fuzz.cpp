// Fuzzing Katib experiments (tuner/experiment.hpp): an experiment is read or refused with
// an input error, and one that is read can propose its first trial and build that trial's
// command line and environment.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/error.hpp"
#include "tuner/experiment.hpp"
#include "tuner/sampler.hpp"

using namespace cohort;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  tuner::Experiment experiment;
  try {
    experiment = tuner::parse_experiment(text, "exp.yaml");
  } catch (const Error&) {
    return 0;
  }
  if (experiment.parameters.empty() || experiment.command.empty() || experiment.parallel_trial_count < 1) std::abort();
  if (!experiment.max_trial_count || *experiment.max_trial_count < 1) std::abort();
  try {
    auto sampler = tuner::make_sampler(experiment, 7);
    if (auto point = sampler->suggest(0, {})) {
      const tuner::Assignment assignment = tuner::to_assignment(experiment, *point);
      experiment.command_for(assignment);
      experiment.environment_for(assignment);
    }
  } catch (const Error&) {
  }
  return 0;
}
