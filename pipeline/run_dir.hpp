// pipeline/run_dir.hpp — a run's directory and the cache: their files, what is in them,
// and the fingerprint that keys the cache. Private to pipeline/.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "common/json.hpp"
#include "pipeline/placeholder.hpp"
#include "pipeline/run.hpp"
#include "pipeline/spec.hpp"

namespace cohort::pipeline {

namespace fs = std::filesystem;

// run.json: what the run was asked to do, written once before any task starts.
struct RunRecord {
  std::string run;
  std::string source;
  std::string mode;     // "slurm" or "local"
  fs::path root;
  double created = 0;
  std::string container;  // the container plugin tasks' images run through ("pyxis"), or empty
  Pipeline pipeline;
  std::map<std::string, std::string> parameters;
};

void write_record(const fs::path& dir, const RunRecord& record);
RunRecord read_record(const fs::path& dir);

fs::path task_dir(const fs::path& run_dir, const std::string& task);
fs::path log_path(const fs::path& run_dir, const std::string& task);

// A task's state file (tasks/TASK/state.json, else its entry in cached.json); nothing
// before its first word.
std::optional<TaskStatus> read_task_state(const fs::path& run_dir, const std::string& task);
// Every one of `tasks` that has a state, read at once.
std::map<std::string, TaskStatus> read_task_states(const fs::path& run_dir, const std::vector<std::string>& tasks);
void write_task_state(const fs::path& run_dir, const TaskStatus& status);
// cached.json: the tasks served from the cache when the run started, in one durable write
// rather than one a task (each costs two fsyncs, which is most of a cached rerun's time).
void write_served(const fs::path& run_dir, const std::map<std::string, TaskStatus>& served);

// jobs.json: task → Slurm job id.
void write_jobs(const fs::path& run_dir, const std::map<std::string, std::string>& jobs);
std::map<std::string, std::string> read_jobs(const fs::path& run_dir);

// The task's inputs as its command will see them, from the run's parameters and its upstream
// tasks' outputs, and the fingerprint KFP's rule gives it: SHA-256 over its command line
// (placeholders unresolved), image, environment, resolved input parameters, input
// artifacts' digests and its output names.
struct ResolvedInputs {
  Bindings bindings;  // inputs only
  std::map<std::string, std::string> artifact_digests;  // input artifact → its SHA-256
  std::string fingerprint;
};
// Nothing when an upstream task has no outputs yet. Upstream states in `known` are taken
// from there rather than from the run's directory.
std::optional<ResolvedInputs> resolve_inputs(const fs::path& run_dir, const RunRecord& record, const Task& task,
                                             const std::map<std::string, TaskStatus>& known = {});

// The outputs a cached run of `fingerprint` left, when it left one and its artifacts are
// all still there.
struct CacheHit {
  Outputs outputs;
  std::string from;  // "RUN/TASK"
};
std::optional<CacheHit> cache_lookup(const fs::path& root, const std::string& fingerprint);
void cache_store(const fs::path& root, const std::string& fingerprint, const Outputs& outputs, const std::string& from);

json::Value outputs_json(const Outputs& outputs);
Outputs outputs_from(const json::Value& v);

double now_seconds();

}  // namespace cohort::pipeline
