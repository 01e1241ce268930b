// tuner/report.hpp — what an experiment's journal says, for programs and for people: the
// JSON of `cohort sweep status --json` and `cohort sweep best --json`, and the SVG plot of
// the objective per trial that `cohort sweep plot` writes and the dashboard shows.
#pragma once

#include <optional>
#include <string>

#include "common/json.hpp"
#include "tuner/experiment.hpp"
#include "tuner/journal.hpp"

namespace cohort::tuner {

// The value the trial reported last for metric `name`.
std::optional<double> metric_of(const Trial& trial, const std::string& name);

// One trial: {trial, state, parameters, objective, metrics, duration, job, reason}.
json::Value trial_json(const Trial& trial);
// The best trial: {trial, parameters, objective, metrics}; `trial` must have an objective.
json::Value best_json(const Trial& trial);
// The whole experiment: {experiment, state, reason, algorithm, objective, maxTrialCount,
// arrayJob, trials, best, damagedRecords}.
json::Value status_json(const Experiment& experiment, const JournalState& state);

// The objective of every ended trial, and the best so far as a step line; "" when no trial
// has reported its objective yet.
std::string objective_plot_svg(const Experiment& experiment, const JournalState& state);

// `text` with <, > and & as entities: safe inside SVG and HTML text and quoted attributes
// once quotes are escaped too (see the dashboard's html_escape).
std::string svg_escape(const std::string& text);

}  // namespace cohort::tuner
