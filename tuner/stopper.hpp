// tuner/stopper.hpp — early stopping behind one small interface.
//
// A stopper watches a running trial: after each intermediate value of the objective it is
// asked whether to stop the trial now, and why. It is made from the experiment's
// earlyStopping (its algorithmName and algorithmSettings) and judges from the trial's own
// curve and the curves of the trials that have succeeded; like a sampler it keeps nothing
// between trials, so that every runner of a sweep, local or an array task, stops the same
// trials for the same history.
//
// Adding a stopper: a class deriving from Stopper and a StopperInfo describing it, in a file
// of its own, and one row naming it in the table in stopper.cpp.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tuner/experiment.hpp"

namespace cohort::tuner {

// A trial's intermediate values of the objective: (step, value), in the order reported.
using Curve = std::vector<std::pair<long long, double>>;

// The curves of the trials that have succeeded so far. Reading them costs a read of the
// journal, so a stopper calls it only once it would use them.
using CompletedCurves = std::function<const std::vector<Curve>&()>;

class Stopper {
 public:
  virtual ~Stopper() = default;
  // Asked after each intermediate value: the reason to stop the trial whose values so far
  // are `curve`, or nullopt to let it run on.
  virtual std::optional<std::string> should_stop(const Curve& curve, const CompletedCurves& completed) = 0;
};

struct StopperInfo {
  std::string_view name;  // earlyStopping.algorithmName, lower case
  // Checks settings; calls `fail` for the first problem, with `field` under
  // spec.earlyStopping.
  void (*validate)(const Experiment& experiment, const SpecError& fail);
  std::unique_ptr<Stopper> (*make)(const Experiment& experiment);
};

const StopperInfo* find_stopper(std::string_view name);
std::string stopper_names();  // "medianstop, …" for messages

// The stopper the experiment names; nullptr when it stops no trial early.
std::unique_ptr<Stopper> make_stopper(const Experiment& experiment);

// Validation helper for stoppers: each setting must be one of `allowed`, each a whole number
// in least..most; settings are checked in the order given.
struct WholeNumberSetting {
  std::string_view name;
  long long least;
  long long most;
};
void whole_number_settings(const Experiment& experiment, const std::vector<WholeNumberSetting>& allowed,
                           const SpecError& fail);

}  // namespace cohort::tuner
