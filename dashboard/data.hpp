// dashboard/data.hpp — what the pages show, read from where cohort keeps it: the lineage
// store names the sweeps (Experiment contexts, named by their directory), pipeline runs
// (PipelineRun contexts, their directory in the "dir" property), launches (Launch
// executions), artifacts and servers (Serve executions); the sweep journals and run
// directories they point to say the rest. Private to dashboard/.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.hpp"
#include "launcher/run_report.hpp"
#include "lineage/store.hpp"
#include "pipeline/run.hpp"
#include "serve/registry.hpp"
#include "tuner/experiment.hpp"
#include "tuner/journal.hpp"

namespace cohort::dashboard {

// A request that cannot be answered with data: answered `status` with `message`.
struct HttpError {
  int status;
  std::string message;
};

// A property as text, "" when it is not there.
std::string text_property(const lineage::Properties& properties, const std::string& key);

// An id in a URL: digits only, else 404 (no such page).
std::int64_t parse_id(std::string_view text, std::string_view what);

struct SweepView {
  lineage::Context context;
  std::filesystem::path dir;
  tuner::Experiment experiment;
  tuner::JournalState state;
};
std::vector<lineage::Context> sweep_contexts(const lineage::Store& store);
// 404 when the store has no such sweep or its directory is gone.
SweepView load_sweep(const lineage::Store& store, std::int64_t id);

struct PipelineView {
  lineage::Context context;
  pipeline::RunStatus status;
};
std::vector<lineage::Context> pipeline_contexts(const lineage::Store& store);
PipelineView load_pipeline(const lineage::Store& store, std::int64_t id);

// The end of a log file, bounded however large the file grows: at most kTailBytes and
// kTailLines, whole lines only, as valid UTF-8 (what is not shows as U+FFFD).
struct LogTail {
  int rank = 0;
  std::string path;
  std::string text = {};
  bool cut = false;        // the file holds more than `text`
  std::string error = {};  // why it could not be read; then `text` is empty
};
inline constexpr std::size_t kTailBytes = 64 * 1024;
inline constexpr std::size_t kTailLines = 200;
LogTail read_tail(const std::filesystem::path& path);

// A launch (a Launch execution) and what its run directory says: the directory's path is
// a property the launch recorded as it started; the directory may be gone (cohort launch
// removes the one it made itself when it ends) or half-written, and `run_error` says so.
struct JobView {
  lineage::Execution launch;
  std::string run_dir = {}, output_dir = {};
  std::optional<launcher::RunReport> run = {};
  std::string run_error = {};
  std::optional<lineage::Artifact> checkpoint = {};  // the last one it committed
  std::vector<LogTail> logs = {};                    // per rank, from --output-dir
  // The stacks of ranks that hung, newest attempt first: (attempt, its tail).
  std::vector<std::pair<int, LogTail>> stacks = {};
  // Without --output-dir, the ranks' lines went to the batch job's output file: its tail, or
  // why it cannot be shown.
  std::optional<LogTail> batch_log = {};
  std::string batch_error = {};
};
// 404 when the store has no such launch; a run directory that cannot be read is not an error.
JobView load_job(const lineage::Store& store, std::int64_t id);

// What the jobs list shows of a launch besides its record, at a cost bounded however large
// its gang: the newest rank's heartbeat age, read only while the launch runs (an ended
// launch's ranks beat no more), and the last checkpoint it committed.
struct LaunchRow {
  lineage::Execution launch;
  std::optional<double> heartbeat_age = {};
  std::optional<lineage::Artifact> checkpoint = {};
};
std::vector<LaunchRow> launch_rows(const lineage::Store& store);
json::Value job_json(const JobView& job);

// A server that answers, or answered, inference requests: the Serve executions
// `cohort serve start` records in the store.
struct Endpoint {
  std::int64_t execution = 0;
  std::string name = {}, state = {}, url = {}, host = {};
  std::vector<std::string> models = {};  // "NAME/VERSION" as served
  double started = 0, updated = 0;
};
std::vector<Endpoint> endpoints(const lineage::Store& store);

// A service `cohort serve submit` runs as a Slurm job: its folder under the services root
// and the registry its job keeps there (replicas, versions, traffic split, state). A
// registry that cannot be read is listed with the reason.
struct Service {
  std::filesystem::path dir;
  std::optional<serve::Registry> registry = {};
  std::string error = {};
};
// Every folder of `root` that holds a registry.json, by name; none when `root` is empty or
// not there.
std::vector<Service> services(const std::filesystem::path& root);

// ---- as JSON: what /api/ answers ----
json::Value sweeps_json(const lineage::Store& store);
json::Value sweep_json(const SweepView& sweep);
json::Value pipelines_json(const lineage::Store& store);
json::Value pipeline_json(const PipelineView& run);
json::Value models_json(const lineage::Store& store);
json::Value model_json(const lineage::Store& store, std::int64_t artifact);
json::Value launches_json(const lineage::Store& store);
class TrafficCache;
// Each service with its load now (its request rate and p50/p99, as `cohort serve status`
// reads them), from `traffic`.
json::Value endpoints_json(const lineage::Store& store, const std::filesystem::path& services_root, TrafficCache& traffic);

}  // namespace cohort::dashboard
