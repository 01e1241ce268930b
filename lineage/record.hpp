// lineage/record.hpp — what cohort's own commands record in the lineage store, each in one
// call made where the command already knows it.
//
//   cohort launch   an Execution "Launch" (command, run and output directories, restarts,
//                   exit status, outcome) in the
//                   Context "Job" of its Slurm job; RUNNING when it starts, then its end
//   cohort sweep    an Execution "Trial" per trial (param.NAME, the objective, every metric)
//                   in the Context "Experiment" of its directory
//   checkpoints     an Artifact "Checkpoint" per committed step (path, step, digest), the
//                   OUTPUT of the execution the saving process runs under (below)
//   anything else   record_execution: one execution with its inputs, outputs and contexts
//                   (a pipeline task in its run, a model export)
//
// Which execution a process runs under: COHORT_LINEAGE_EXECUTION="TYPE/NAME" (cohort launch
// sets it for its ranks; a pipeline task may set it for its command), and the trial of a
// sweep (COHORT_SWEEP_DIR, COHORT_TRIAL_ID). A checkpoint saved in a trial's launch is the
// output of both, so its history shows the trial's parameters and the launch beside them.
//
// None of these throws or fails the work it records: with COHORT_LINEAGE=off they do
// nothing, and a store that cannot be written costs one warning line on stderr.
//
// The spool. SQLite's locks cannot be trusted across the machines of a network or parallel
// file system (NFS, Lustre, GPFS, BeeGFS, CephFS): there each record is instead written whole
// as one file in STORE.spool/ (an atomic rename, which those file systems do keep), and
// whoever reads the store next merges the spool into it (open_merged), one process on one
// machine. COHORT_LINEAGE_SPOOL=1 spools wherever the store is, =0 never does.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lineage/store.hpp"

namespace cohort::lineage {

// The variable that names the execution a process runs under, "TYPE/NAME".
inline constexpr const char* kExecutionVariable = "COHORT_LINEAGE_EXECUTION";

struct LaunchStart {
  std::vector<std::string> command;
  std::string job;  // SLURM_JOB_ID; empty in local mode
  int ranks = 0;    // local mode's --nproc; 0 when the allocation decides
  std::string run_dir = {};     // where its ranks' placement, status and heartbeats are
  std::string output_dir = {};  // its ranks' logs (rank-R.log); empty when not asked for
};

// Records a launch as RUNNING and sets COHORT_LINEAGE_EXECUTION in this process's
// environment, so that the ranks it starts know it. Returns the execution's name ("" when
// nothing is recorded), for record_launch_end.
std::string record_launch_start(const LaunchStart& launch) noexcept;

struct LaunchEnd {
  std::string name;     // from record_launch_start
  int exit_status = 0;  // what cohort launch exits with
  int restarts = 0;     // gang restarts and requeues, all attempts but the first
  std::string outcome;  // "succeeded", "failed", "requeued"
};
void record_launch_end(const LaunchEnd& end) noexcept;

struct TrialEnd {
  std::string experiment_dir;  // absolute
  std::string experiment;      // the experiment's name
  int trial = 0;
  std::vector<std::pair<std::string, std::string>> parameters;
  std::string state;  // Katib's: Succeeded, Failed, EarlyStopped, Killed
  std::string objective_metric;
  std::optional<double> objective;
  std::vector<std::pair<std::string, double>> metrics;
  std::string job;  // the array task's Slurm job id, if any
};
void record_trial_end(const TrialEnd& trial) noexcept;

struct CheckpointCommit {
  std::string path;  // the committed step's directory, absolute
  std::int64_t step = 0;
  std::string digest;  // "crc32c:…" of its manifest, which holds every tensor's checksum
};
void record_checkpoint(const CheckpointCommit& checkpoint) noexcept;

// Anything else that ran, with what it read and made: a pipeline task, a serving rollout.
// Applied like the records above, or spooled where the store must not be written from here.
struct ExecutionRecord {
  Execution execution;  // give it a name: it is found again by (type, name)
  std::vector<std::pair<std::string, Artifact>> inputs;   // the event's path, the artifact
  std::vector<std::pair<std::string, Artifact>> outputs;  // likewise; they are attributed to the contexts
  std::vector<Context> contexts;                          // it is associated with each
};
// False when nothing was recorded (off, or the one warning line said why). Never throws.
bool record_execution(const ExecutionRecord& record) noexcept;

// The folder where records wait to be merged into the store at `store`: "STORE.spool".
std::filesystem::path spool_directory(const std::filesystem::path& store);

struct Merged {
  int records = 0;  // applied to the store and removed from the spool
  int damaged = 0;  // not records at all; renamed to NAME.damaged and left
};
// Applies every record waiting in the store's spool, oldest first, and removes it. Safe
// when several readers merge at once: applying a record twice changes nothing.
Merged merge_spool(Store& store);
// Store::open, then merge_spool: what every reader of the store calls.
Store open_merged(const std::filesystem::path& path);

// The Trial execution's name for a trial of the experiment in `dir`: "DIR#ID".
std::string trial_name(const std::string& dir, int trial);

}  // namespace cohort::lineage
