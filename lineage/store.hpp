// lineage/store.hpp — the lineage store: ML Metadata's model in one SQLite file.
//
// What was made (Artifacts: a dataset, a model, a checkpoint, metrics), what made it
// (Executions: a pipeline task, a launched job, a trial) and what groups them (Contexts: a
// pipeline run, an experiment, a job), tied by Events (an execution took an artifact as
// INPUT or made it as OUTPUT), Attributions (artifact ∈ context) and Associations
// (execution ∈ context). Each has a type, a name and typed properties.
//
//   auto store = lineage::Store::open_default();       // COHORT_LINEAGE, or the user's file
//   std::int64_t data = store.put_artifact({.type = "Dataset", .uri = "/data/train.csv"});
//   std::int64_t run = store.put_execution({.type = "Launch", .name = "job-812", .state = "RUNNING"});
//   store.put_event(run, data, lineage::EventType::input, "train");
//   std::int64_t model = store.put_artifact({.type = "Model", .uri = "/scratch/m.pt", .digest = "sha256:…"});
//   store.put_event(run, model, lineage::EventType::output, "model");
//   store.update_execution(run, "COMPLETE", {{"restarts", 1}});
//
// Every put is idempotent on the object's identity, so a writer that retries after a
// crash or a timeout finds what it wrote before instead of writing it twice:
//   artifact  (type, uri, digest)
//   execution (type, name) when it has a name; an unnamed one is new every time
//   context   (type, name)
//   event     (execution, artifact, type, path); attribution and association as pairs
// A put that finds the object merges the properties given into its own and keeps the rest.
//
// Many processes on one machine may write at once (the tasks of an array job, the ranks of
// sweeps): the file is in WAL mode and each writer waits for the lock (a busy timeout)
// rather than failing. SQLite's locks do not hold across the machines of a parallel file
// system: code that records from the nodes of a job calls lineage/record.hpp
// (record_execution), which spools there, and readers open the store with open_merged
// (docs/lineage.md). A Store is used by one thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace cohort::lineage {

// MLMD's property types: whole numbers, reals and text.
using Property = std::variant<std::int64_t, double, std::string>;
using Properties = std::map<std::string, Property>;

// The property as text: 3, 0.25, or the string itself.
std::string to_text(const Property& property);

// Every member has a default, so that designated initializers may leave any out.
struct Artifact {
  std::int64_t id = 0;      // 0 until stored
  std::string type = {};    // Dataset, Model, Checkpoint, Metrics, …
  std::string uri = {};     // where it is: an absolute path, or any URI
  std::string name = {};    // optional, for people
  std::string digest = {};  // optional, "sha256:…" or "crc32c:…": the same uri with new content is another artifact
  Properties properties = {};
  double created = 0;  // seconds since the epoch, set by the store
};

struct Execution {
  std::int64_t id = 0;
  std::string type = {};   // PipelineTask, Launch, Trial, …
  std::string name = {};   // optional; with it the execution is found again by (type, name)
  std::string state = {};  // RUNNING, COMPLETE, FAILED, CACHED, CANCELED (MLMD's), or empty
  Properties properties = {};
  double created = 0;
  double updated = 0;
};

struct Context {
  std::int64_t id = 0;
  std::string type = {};  // PipelineRun, Experiment, Job
  std::string name = {};
  Properties properties = {};
  double created = 0;
};

enum class EventType { input, output };
const char* to_string(EventType type);  // "INPUT", "OUTPUT"

struct Event {
  std::int64_t execution = 0;
  std::int64_t artifact = 0;
  EventType type = EventType::input;
  std::string path = {};  // the input's or output's name at the execution: "model", "train"
};

// One step up an artifact's history: an execution that output it, the contexts that
// execution is in, and what it took as input, each with its own history.
struct Ancestry {
  Artifact artifact;
  struct Input;  // the event's path, the input's history (defined below: it holds an Ancestry)
  struct Producer {
    Execution execution;
    std::vector<Context> contexts;
    std::vector<Input> inputs;
  };
  std::vector<Producer> produced_by;
  bool cut = false;  // the walk stopped here: the artifact was shown earlier, or too deep
};

struct Ancestry::Input {
  std::string path;
  Ancestry history;
};

// Whether `dir` is on a file system shared by several machines (NFS, SMB, Lustre, GPFS,
// BeeGFS, CephFS, 9p, FUSE), where SQLite's WAL cannot work and its locks cannot be trusted.
bool on_network_file_system(const std::filesystem::path& dir);

class Store {
 public:
  // Opens the store at `path`, creating it (and its missing parent directories) when absent.
  // Throws cohort::Error naming the path and the fix: a file that is not SQLite or is
  // another program's database, a damaged one, a directory that cannot be written.
  static Store open(const std::filesystem::path& path);
  // The file COHORT_LINEAGE names, else $XDG_DATA_HOME/cohort/lineage.db, else
  // ~/.local/share/cohort/lineage.db. "off" is an input error here: check enabled() first.
  static Store open_default();
  static std::filesystem::path default_path();
  // False when COHORT_LINEAGE is "off": nothing should be recorded.
  static bool enabled();

  Store(Store&&) noexcept;
  Store& operator=(Store&&) noexcept;
  ~Store();

  const std::filesystem::path& path() const;

  // Each returns the object's id, new or found (see above).
  std::int64_t put_artifact(const Artifact& artifact);
  std::int64_t put_execution(const Execution& execution);
  std::int64_t put_context(const Context& context);
  // A new state (unless empty) and properties merged in; throws when there is no such id.
  void update_execution(std::int64_t id, const std::string& state, const Properties& properties = {});
  void put_event(std::int64_t execution, std::int64_t artifact, EventType type, const std::string& path = {});
  void attribute(std::int64_t context, std::int64_t artifact);
  void associate(std::int64_t context, std::int64_t execution);

  // Runs `work` as one transaction: everything it writes lands together or not at all, and
  // a writer holds the lock once for all of it (much faster than one lock per put). Inside
  // another, it is a savepoint: when `work` throws, only its own writes are undone.
  void transaction(const std::function<void()>& work);

  // ---- queries ----
  std::optional<Artifact> artifact(std::int64_t id) const;
  // Every artifact at `uri`, newest first (one per digest).
  std::vector<Artifact> artifacts_at(const std::string& uri) const;
  std::optional<Execution> execution(std::int64_t id) const;
  std::optional<Execution> execution(const std::string& type, const std::string& name) const;
  std::optional<Context> context(std::int64_t id) const;
  std::optional<Context> context(const std::string& type, const std::string& name) const;
  // Oldest first; an empty type lists every one.
  std::vector<Artifact> artifacts(const std::string& type = {}) const;
  std::vector<Execution> executions(const std::string& type = {}) const;
  std::vector<Context> contexts(const std::string& type = {}) const;

  std::vector<Event> events_of_execution(std::int64_t execution) const;
  std::vector<Event> events_of_artifact(std::int64_t artifact) const;
  std::vector<Execution> producers(std::int64_t artifact) const;  // executions that output it
  std::vector<Execution> consumers(std::int64_t artifact) const;  // executions that input it
  std::vector<Context> contexts_of_execution(std::int64_t execution) const;
  std::vector<Context> contexts_of_artifact(std::int64_t artifact) const;
  std::vector<Execution> executions_in(std::int64_t context) const;
  std::vector<Artifact> artifacts_in(std::int64_t context) const;

  // The artifact's history up the chain: who produced it, from what, and so on, at most
  // `depth` producers deep. Each artifact is walked once; later meetings are marked cut.
  Ancestry ancestry(std::int64_t artifact, int depth = 32) const;

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cohort::lineage
