#include "lineage/record.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "common/environment.hpp"
#include "common/process.hpp"
#include "common/text.hpp"
#include "lineage/store.hpp"

namespace cohort::lineage {

namespace {

// Runs `body` in one transaction of the default store. Whatever goes wrong is one line on
// stderr, once per process: the work being recorded has happened and must not fail now.
template <typename Body>
void record(const char* what, Body&& body) noexcept {
  static bool warned = false;
  try {
    if (!Store::enabled()) return;
    Store store = Store::open_default();
    store.transaction([&] { body(store); });
  } catch (const std::exception& e) {
    if (warned) return;
    warned = true;
    std::cerr << "cohort: lineage: " << what << " was not recorded: " << e.what()
              << " (COHORT_LINEAGE=off records nothing)\n";
  } catch (...) {
  }
}

// The execution COHORT_LINEAGE_EXECUTION names, "TYPE/NAME"; nothing when unset or not of
// that shape.
std::optional<std::pair<std::string, std::string>> outer_execution() {
  const std::string value = env_or(kExecutionVariable);
  const auto slash = value.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == value.size()) return std::nullopt;
  return std::pair{value.substr(0, slash), value.substr(slash + 1)};
}

// An experiment's directory as its context and trials are named: absolute, without "." or "..".
std::string normal(const std::string& dir) { return std::filesystem::absolute(dir).lexically_normal().string(); }

// The sweep trial this process runs in: its experiment's directory and its id.
std::optional<std::pair<std::string, int>> current_trial() {
  const std::string dir = env_or("COHORT_SWEEP_DIR");
  const auto id = parse_integer(env_or("COHORT_TRIAL_ID"), 0, 1 << 30);
  if (dir.empty() || !id) return std::nullopt;
  return std::pair{dir, static_cast<int>(*id)};
}

std::int64_t experiment_context(Store& store, const std::string& dir) {
  return store.put_context({.type = "Experiment", .name = normal(dir)});
}

std::int64_t job_context(Store& store, const std::string& job) {
  return store.put_context({.type = "Job", .name = "job-" + job, .properties = {{"job_id", job}}});
}

long long unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string trial_name(const std::string& dir, int trial) { return normal(dir) + "#" + std::to_string(trial); }

std::string record_launch_start(const LaunchStart& launch) noexcept {
  std::string name;
  try {
    name = (launch.job.empty() ? "local" : "job-" + launch.job) + "/" + host_name() + ":" +
           std::to_string(::getpid()) + "@" + std::to_string(unix_seconds());
  } catch (...) {
    return {};
  }
  bool recorded = false;
  record("the launch", [&](Store& store) {
    Execution e{.type = "Launch", .name = name, .state = "RUNNING"};
    e.properties = {{"command", join(launch.command, " ", shell_quote)},
                    {"host", host_name()},
                    {"cwd", std::filesystem::current_path().string()}};
    if (!launch.job.empty()) e.properties["job_id"] = launch.job;
    if (launch.ranks > 0) e.properties["ranks"] = std::int64_t{launch.ranks};
    if (auto outer = outer_execution()) e.properties["within"] = outer->first + "/" + outer->second;
    const auto trial = current_trial();
    if (trial) e.properties["trial"] = trial_name(trial->first, trial->second);
    const std::int64_t id = store.put_execution(e);
    if (!launch.job.empty()) store.associate(job_context(store, launch.job), id);
    if (trial) store.associate(experiment_context(store, trial->first), id);
    recorded = true;
  });
  if (!recorded) return {};
  ::setenv(kExecutionVariable, ("Launch/" + name).c_str(), 1);
  return name;
}

void record_launch_end(const LaunchEnd& end) noexcept {
  if (end.name.empty()) return;
  record("the launch's end", [&](Store& store) {
    const char* state = end.outcome == "succeeded" ? "COMPLETE" : end.outcome == "requeued" ? "CANCELED" : "FAILED";
    store.put_execution({.type = "Launch", .name = end.name, .state = state,
                         .properties = {{"exit_status", std::int64_t{end.exit_status}},
                                        {"restarts", std::int64_t{end.restarts}},
                                        {"outcome", end.outcome}}});
  });
}

void record_trial_end(const TrialEnd& trial) noexcept {
  record("the trial", [&](Store& store) {
    Execution e{.type = "Trial", .name = trial_name(trial.experiment_dir, trial.trial)};
    e.state = trial.state == "Succeeded" || trial.state == "EarlyStopped" ? "COMPLETE"
              : trial.state == "Killed"                                   ? "CANCELED"
                                                                          : "FAILED";
    e.properties = {{"trial", std::int64_t{trial.trial}}, {"trial_state", trial.state}};
    for (const auto& [k, v] : trial.parameters) e.properties["param." + k] = v;
    if (!trial.objective_metric.empty()) e.properties["objective_metric"] = trial.objective_metric;
    if (trial.objective) e.properties["objective"] = *trial.objective;
    for (const auto& [k, v] : trial.metrics) e.properties["metric." + k] = v;
    if (!trial.job.empty()) e.properties["job_id"] = trial.job;
    const std::int64_t id = store.put_execution(e);
    store.associate(store.put_context({.type = "Experiment", .name = normal(trial.experiment_dir),
                                       .properties = {{"experiment", trial.experiment}}}),
                    id);
    if (!trial.job.empty()) store.associate(job_context(store, trial.job), id);
  });
}

void record_checkpoint(const CheckpointCommit& checkpoint) noexcept {
  record("the checkpoint", [&](Store& store) {
    const std::int64_t id = store.put_artifact({.type = "Checkpoint", .uri = checkpoint.path,
                                                .name = "step " + std::to_string(checkpoint.step),
                                                .digest = checkpoint.digest,
                                                .properties = {{"step", checkpoint.step}}});
    if (auto outer = outer_execution()) {
      store.put_event(store.put_execution({.type = outer->first, .name = outer->second}), id, EventType::output,
                      "checkpoint");
    }
    if (auto trial = current_trial()) {
      store.put_event(store.put_execution({.type = "Trial", .name = trial_name(trial->first, trial->second)}), id,
                      EventType::output, "checkpoint");
      store.attribute(experiment_context(store, trial->first), id);
    }
    if (const std::string job = env_or("SLURM_JOB_ID"); !job.empty()) store.attribute(job_context(store, job), id);
  });
}

}  // namespace cohort::lineage
