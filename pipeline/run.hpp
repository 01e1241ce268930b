// pipeline/run.hpp — running a pipeline: on Slurm, each task an sbatch job chained to its
// upstream jobs with --dependency=afterok (and --kill-on-invalid-dep=yes, so that a failed
// task's dependants never start), or on this machine with --local; tasks served from the
// cache by fingerprint; and what a run's directory says about it afterwards.
//
// A run lives in ROOT/runs/RUN/: run.json (the pipeline as resolved, written once),
// jobs.json (the Slurm job of each task), cached.json (the tasks served from the cache at
// the start), and tasks/TASK/{state.json,log,artifacts/,parameters/}. ROOT/cache/FINGERPRINT.json names the outputs of a task that succeeded,
// for any later run whose task has the same fingerprint. Every file is written whole
// (common/fd's atomic writes): a reader sees the old state or the new, never a part.
#pragma once

#include <atomic>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/json.hpp"
#include "pipeline/spec.hpp"

namespace cohort::pipeline {

// --dir, else $COHORT_PIPELINE_DIR, else ~/.cohort/pipelines: it must be on a file system
// every node sees.
std::filesystem::path pipeline_root(const std::string& given);

// What a task produced: each output parameter's value, each output artifact's path and
// SHA-256.
struct Outputs {
  std::map<std::string, std::string> parameters;
  std::map<std::string, std::pair<std::string, std::string>> artifacts;  // name → (path, sha256)
};

// States, as `cohort pipeline status` shows them: pending (waiting for upstream or for
// Slurm), running, retrying, succeeded, cached, failed, skipped (an upstream task failed),
// cancelled.
struct TaskStatus {
  std::string name;
  std::string state = "pending";
  std::vector<std::string> after;
  std::string job;            // Slurm job id, empty locally or when cached
  std::string slurm_reason;   // why Slurm holds it, while pending
  int attempt = 0;            // 0 for the first try
  int max_retries = 0;
  std::string fingerprint;
  std::string reason;         // why it failed, or where its cached outputs came from
  std::string log;            // its stdout and stderr
  double started = 0, ended = 0;
  Outputs outputs;
};

struct RunStatus {
  std::string run;
  std::string pipeline;
  std::string mode;           // "slurm" or "local"
  std::string state;          // Running, Succeeded, Failed, Cancelled
  std::filesystem::path dir;
  double created = 0;
  std::vector<TaskStatus> tasks;  // upstream first
  std::vector<std::string> notes;
};

struct StartOptions {
  std::filesystem::path root;
  std::vector<std::string> parameters;  // NAME=VALUE
  bool local = false;
  std::string cohort;                   // the executable each task's wrapper runs
  std::vector<std::string> sbatch;      // extra sbatch options for every task
};

struct Started {
  std::filesystem::path dir;
  std::string run;
  int cached = 0;      // tasks served from the cache without a job
  int submitted = 0;   // Slurm jobs submitted
};

// Creates the run's directory, serves from the cache every task whose inputs are already
// known and whose fingerprint has a cached result, and (unless local) submits the others as
// chained sbatch jobs. A failed sbatch cancels the jobs submitted before it. `source` is the
// pipeline's file, recorded for people.
Started start_run(const Pipeline& pipeline, const std::string& source, const StartOptions& options);

// Runs a started local run's remaining tasks on this machine, `parallel` at a time (0: one
// per CPU), retrying each as its retryPolicy says; `stop` (a signal) kills what runs and
// marks it cancelled. Returns 0 when every task succeeded or came from the cache.
int run_local(const std::filesystem::path& run_dir, const std::string& cohort, int parallel, const std::atomic<bool>& stop);

// The in-job wrapper: waits for nothing (Slurm or the local runner started it when its
// upstream tasks had succeeded), reads its upstream outputs, checks the cache at run time,
// resolves the placeholders, runs the command, checks and records its declared outputs
// and their digests. On Slurm a failed task with retries left requeues its own job.
// Returns the exit status for the job.
int exec_task(const std::filesystem::path& run_dir, const std::string& task, int attempt);

// RUN as a path to a run's directory or as a run's name under `root`; an input error
// naming it otherwise.
std::filesystem::path find_run(const std::filesystem::path& root, const std::string& run);

// The run's state, each task's from its state file and, for tasks not started yet, from
// squeue.
RunStatus read_status(const std::filesystem::path& run_dir);

// The status as `cohort pipeline status --json` prints it: {run, pipeline, mode, state, dir,
// created, tasks: [{task, state, after, job, attempt, fingerprint, reason, log, outputs}], notes}.
json::Value status_json(const RunStatus& status);

// Every run under `root`, newest first.
std::vector<RunStatus> list_runs(const std::filesystem::path& root);

// Cancels the run's jobs that have not ended (or signals its local runner) and marks it
// cancelled. Returns how many jobs were cancelled.
int cancel_run(const std::filesystem::path& run_dir);

// The DAG drawn for a terminal: one line a task, indented by its depth, with its state
// and what it waits for.
std::string draw(const RunStatus& status);

}  // namespace cohort::pipeline
