#include "tuner/lineage_record.hpp"

#include <iostream>

#include "lineage/record.hpp"

namespace cohort::tuner {

void record_trial_lineage(const Journal& journal, const Experiment& experiment, int trial) noexcept {
  lineage::TrialEnd end;
  try {
    const JournalState state = journal.read();
    const Trial* t = state.find(trial);
    if (!t) return;
    end = {.experiment_dir = journal.dir().string(),
           .experiment = experiment.name,
           .trial = trial,
           .parameters = t->parameters,
           .state = to_string(t->state),
           .objective_metric = experiment.objective.metric,
           .objective = t->objective,
           .metrics = t->metrics,
           .job = t->job};
  } catch (const std::exception& e) {
    std::cerr << "cohort: lineage: trial " << trial << " was not recorded: " << e.what() << "\n";
    return;
  }
  lineage::record_trial_end(end);
}

}  // namespace cohort::tuner
