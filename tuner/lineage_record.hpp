// tuner/lineage_record.hpp — private to tuner/: what a sweep tells the lineage store
// (lineage/record.hpp) when a trial ends.
#pragma once

#include "tuner/experiment.hpp"
#include "tuner/journal.hpp"

namespace cohort::tuner {

// Records trial `trial` as its journal now tells it: parameters, state, objective, metrics.
// Never throws.
void record_trial_lineage(const Journal& journal, const Experiment& experiment, int trial) noexcept;

}  // namespace cohort::tuner
