// dashboard/html.hpp — the pages, rendered on the server: every value from a store, a
// journal or Slurm goes through html_escape on its way in. Private to dashboard/.
#pragma once

#include <string>

#include "common/json.hpp"
#include "dashboard/data.hpp"
#include "lineage/store.hpp"

namespace cohort::dashboard {

class TrafficCache;

std::string overview_page(const lineage::Store& store, const std::filesystem::path& services_root);
std::string jobs_page(const lineage::Store& store, const json::Value& slurm);
std::string job_page(const JobView& job);
std::string sweeps_page(const lineage::Store& store);
std::string sweep_page(const SweepView& sweep);
std::string pipelines_page(const lineage::Store& store);
std::string pipeline_page(const PipelineView& run);
std::string models_page(const lineage::Store& store);
std::string model_page(const lineage::Store& store, std::int64_t artifact);
std::string endpoints_page(const lineage::Store& store, const std::filesystem::path& services_root, TrafficCache& traffic);
std::string error_page(int status, const std::string& message);

// Each trial an polyline across one axis per parameter and one for the objective: which
// regions of the space the good trials came from. "" when no trial has an objective.
std::string parallel_coordinates_svg(const tuner::Experiment& experiment, const tuner::JournalState& state);

// Every trial's objective at each step it reported, one line per trial, the best drawn
// over the rest; "" when no trial reported a step. And one trial's, small, for its row.
std::string metric_curves_svg(const tuner::Experiment& experiment, const tuner::JournalState& state);
std::string trial_curve_svg(const tuner::Trial& trial);

}  // namespace cohort::dashboard
