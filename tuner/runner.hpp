// tuner/runner.hpp — claiming, running and recording trials; the executors. Private to tuner/.
#pragma once

#include <atomic>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tuner/experiment.hpp"
#include "tuner/journal.hpp"

namespace cohort::tuner {

// Creates (or reopens) an experiment directory for `spec_path`: the spec copied in, the
// journal started with the experiment's seed. A directory that holds another experiment is
// refused. Returns the experiment.
Experiment init_experiment_dir(const std::filesystem::path& spec_path, const std::filesystem::path& dir);

// The experiment of an existing directory.
Experiment open_experiment_dir(const std::filesystem::path& dir);

// How many trials the experiment runs: maxTrialCount, or fewer when the algorithm's space
// is smaller.
int trial_budget(const Experiment& experiment);

// Claims the next trial under the journal's lock: its id, or nullopt when the experiment
// has ended or every trial has been claimed. `job` is the Slurm job id, empty locally.
std::optional<int> claim_trial(Journal& journal, const Experiment& experiment, const std::string& job);

struct TrialOutcome {
  TrialState state = TrialState::running;
  bool ended_experiment = false;  // this trial's end finished the experiment
};

// Runs a claimed trial to its end and records it. `stop` set from outside (a signal) kills
// the trial and records it Killed.
TrialOutcome run_trial(Journal& journal, const Experiment& experiment, int trial, const std::atomic<bool>& stop);

// The local executor: parallelTrialCount trials at a time until the experiment ends.
// Returns 0 when it ends Succeeded, 1 otherwise.
int run_local(const std::filesystem::path& dir, const Experiment& experiment, const std::atomic<bool>& stop,
              bool progress);

// One array task: claims one trial, runs it; cancels the array's pending tasks when this
// trial ended the experiment.
int run_array_task(const std::filesystem::path& dir, const std::atomic<bool>& stop);

// Marks trials whose runner is gone (a dead local process, a Slurm job no longer known)
// Killed, so that a stopped experiment can continue. Returns how many.
int reclaim_abandoned(Journal& journal);

// The array job's script for `sbatch`: `tasks` array tasks (0: the trial budget).
std::string array_script(const Experiment& experiment, const std::filesystem::path& dir,
                         const std::string& cohort_path,
                         int tasks = 0);

}  // namespace cohort::tuner
