#include "lineage/record.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <type_traits>

#include "common/environment.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/json.hpp"
#include "common/process.hpp"
#include "common/text.hpp"
#include "lineage/store.hpp"

namespace cohort::lineage {

namespace fs = std::filesystem;

namespace {

// Each record is first a JSON object carrying everything it needs, the environment it was
// made in included: applied to the store at once, or, where the store is spooled, kept as
// a file and applied by whoever merges the spool.

std::string text_of(const json::Value& record, std::string_view key) {
  const json::Value* v = record.find(key);
  return v && v->is_string() ? v->as_string() : std::string();
}

std::int64_t int_of(const json::Value& record, std::string_view key) {
  const json::Value* v = record.find(key);
  return v && v->is_number() ? v->as_int() : 0;
}

// An experiment's directory as its context and trials are named: absolute, without "." or "..".
std::string normal(const std::string& dir) { return fs::absolute(dir).lexically_normal().string(); }

long long unix_nanoseconds() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// This process's Slurm job as people name it: "812_3" for an array's task, whose own
// SLURM_JOB_ID is another number; empty outside Slurm.
std::string slurm_job() {
  const std::string array = env_or("SLURM_ARRAY_JOB_ID");
  if (!array.empty()) return array + "_" + env_or("SLURM_ARRAY_TASK_ID");
  return env_or("SLURM_JOB_ID");
}

// What the environment says this process runs under, into `record`: the execution
// COHORT_LINEAGE_EXECUTION names ("TYPE/NAME"), the sweep trial, the Slurm job.
void add_surroundings(json::Value& record) {
  const std::string outer = env_or(kExecutionVariable);
  const auto slash = outer.find('/');
  if (slash != std::string::npos && slash > 0 && slash + 1 < outer.size()) record.set("within", outer);
  const std::string dir = env_or("COHORT_SWEEP_DIR");
  const auto id = parse_integer(env_or("COHORT_TRIAL_ID"), 0, 1 << 30);
  if (!dir.empty() && id) {
    record.set("experiment_dir", normal(dir));
    record.set("trial", *id);
  }
  if (const std::string job = slurm_job(); !job.empty()) record.set("job", job);
}

std::int64_t job_context(Store& store, const std::string& job) {
  return store.put_context({.type = "Job", .name = "job-" + job, .properties = {{"job_id", job}}});
}

std::int64_t experiment_context(Store& store, const std::string& dir) {
  return store.put_context({.type = "Experiment", .name = normal(dir)});
}

std::string trial_of(const json::Value& r) {
  return r.find("experiment_dir") ? trial_name(text_of(r, "experiment_dir"), static_cast<int>(int_of(r, "trial"))) : "";
}

void apply_launch_start(Store& store, const json::Value& r) {
  const std::string name = text_of(r, "name");
  // A spool merged out of order may hold the end first: it keeps its state.
  const auto known = store.execution("Launch", name);
  Execution e{.type = "Launch", .name = name, .state = known && !known->state.empty() ? "" : "RUNNING"};
  for (const char* key : {"command", "host", "cwd", "within", "run_dir", "output_dir"}) {
    if (const std::string v = text_of(r, key); !v.empty()) e.properties[key] = v;
  }
  if (const std::string job = text_of(r, "job"); !job.empty()) e.properties["job_id"] = job;
  if (const auto ranks = int_of(r, "ranks"); ranks > 0) e.properties["ranks"] = ranks;
  const std::string trial = trial_of(r);
  if (!trial.empty()) e.properties["trial"] = trial;
  const std::int64_t id = store.put_execution(e);
  if (const std::string job = text_of(r, "job"); !job.empty()) store.associate(job_context(store, job), id);
  if (!trial.empty()) store.associate(experiment_context(store, text_of(r, "experiment_dir")), id);
}

void apply_launch_end(Store& store, const json::Value& r) {
  const std::string outcome = text_of(r, "outcome");
  const char* state = outcome == "succeeded" ? "COMPLETE" : outcome == "requeued" ? "CANCELED" : "FAILED";
  store.put_execution(
      {.type = "Launch",
       .name = text_of(r, "name"),
       .state = state,
       .properties = {
           {"exit_status", int_of(r, "exit_status")}, {"restarts", int_of(r, "restarts")}, {"outcome", outcome}}});
}

void apply_trial_end(Store& store, const json::Value& r) {
  const std::string dir = text_of(r, "dir"), katib = text_of(r, "state");
  Execution e{.type = "Trial", .name = trial_name(dir, static_cast<int>(int_of(r, "number")))};
  e.state = katib == "Succeeded" || katib == "EarlyStopped" ? "COMPLETE" : katib == "Killed" ? "CANCELED" : "FAILED";
  e.properties = {{"trial", int_of(r, "number")}, {"trial_state", katib}};
  for (const auto& [k, v] : r.at("parameters").as_object()) e.properties["param." + k] = v.as_string();
  if (const std::string m = text_of(r, "objective_metric"); !m.empty()) e.properties["objective_metric"] = m;
  if (const json::Value* o = r.find("objective")) e.properties["objective"] = o->as_double();
  for (const auto& [k, v] : r.at("metrics").as_object()) e.properties["metric." + k] = v.as_double();
  const std::string job = text_of(r, "trial_job");
  if (!job.empty()) e.properties["job_id"] = job;
  const std::int64_t id = store.put_execution(e);
  store.associate(
      store.put_context(
          {.type = "Experiment", .name = normal(dir), .properties = {{"experiment", text_of(r, "experiment")}}}),
      id);
  if (!job.empty()) store.associate(job_context(store, job), id);
}

void apply_checkpoint(Store& store, const json::Value& r) {
  const std::int64_t step = int_of(r, "step");
  const std::int64_t id = store.put_artifact({.type = "Checkpoint",
                                              .uri = text_of(r, "path"),
                                              .name = "step " + std::to_string(step),
                                              .digest = text_of(r, "digest"),
                                              .properties = {{"step", step}}});
  if (const std::string within = text_of(r, "within"); !within.empty()) {
    const auto slash = within.find('/');
    store.put_event(store.put_execution({.type = within.substr(0, slash), .name = within.substr(slash + 1)}), id,
                    EventType::output, "checkpoint");
  }
  if (const std::string trial = trial_of(r); !trial.empty()) {
    store.put_event(store.put_execution({.type = "Trial", .name = trial}), id, EventType::output, "checkpoint");
    store.attribute(experiment_context(store, text_of(r, "experiment_dir")), id);
  }
  if (const std::string job = text_of(r, "job"); !job.empty()) store.attribute(job_context(store, job), id);
}

void apply_execution(Store& store, const json::Value& r);

void apply(Store& store, const json::Value& r) {
  static const std::pair<const char*, void (*)(Store&, const json::Value&)> kKinds[] = {
      {"launch_start", &apply_launch_start},
      {"launch_end", &apply_launch_end},
      {"trial_end", &apply_trial_end},
      {"checkpoint", &apply_checkpoint},
      {"execution", &apply_execution}};
  const std::string kind = text_of(r, "kind");
  for (const auto& [name, run] : kKinds) {
    if (kind == name) return run(store, r);
  }
  throw Error("a record of unknown kind '" + kind + "' (written by a newer cohort?)");
}

// Whether records for the store at `path` go to its spool: COHORT_LINEAGE_SPOOL=1 or 0
// decides; otherwise a store on a network file system is spooled.
bool spooled(const fs::path& path) {
  const std::string given = env_or("COHORT_LINEAGE_SPOOL");
  if (given == "1") return true;
  if (given == "0") return false;
  return on_network_file_system(path.parent_path());
}

// Records `record` as `what`. Whatever goes wrong is one line on stderr, once per process:
// the work being recorded has happened and must not fail now.
void warn_once(const std::string& what, const std::string& why) noexcept {
  static bool warned = false;
  if (warned) return;
  warned = true;
  std::cerr << "cohort: lineage: " << what << " was not recorded: " << why << " (COHORT_LINEAGE=off records nothing)\n";
}

bool deliver(const std::string& what, json::Value record) noexcept {
  try {
    if (!Store::enabled()) return false;
    const fs::path path = fs::absolute(Store::default_path());
    if (spooled(path)) {
      const fs::path dir = spool_directory(path);
      make_directories(dir.string(), 0700);
      char stamp[32];
      std::snprintf(stamp, sizeof stamp, "%020lld", unix_nanoseconds());
      write_file_atomically(dir / (std::string(stamp) + "-" + unguessable_name(8) + ".json"), json::write(record));
      return true;
    }
    Store store = Store::open(path);
    store.transaction([&] { apply(store, record); });
    return true;
  } catch (const std::exception& e) {
    warn_once(what, e.what());
  } catch (...) {
  }
  return false;
}

// Properties in JSON keep their type: {"i": 3}, {"d": 0.5}, {"s": "text"}.
json::Value properties_json(const Properties& properties) {
  json::Value out = json::Value::object();
  for (const auto& [k, v] : properties) {
    std::visit(
        [&, &k = k](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          const char* tag = std::is_same_v<T, std::int64_t> ? "i" : std::is_same_v<T, double> ? "d" : "s";
          out.set(k, json::Value(json::Object{{tag, json::Value(x)}}));
        },
        v);
  }
  return out;
}

Properties properties_of(const json::Value* v) {
  Properties out;
  if (!v) return out;
  for (const auto& [k, tagged] : v->as_object()) {
    if (const json::Value* i = tagged.find("i")) out[k] = i->as_int();
    else if (const json::Value* d = tagged.find("d")) out[k] = d->as_double();
    else out[k] = tagged.at("s").as_string();
  }
  return out;
}

json::Value artifacts_json(const std::vector<std::pair<std::string, Artifact>>& artifacts) {
  json::Value out = json::Value::array();
  for (const auto& [path, a] : artifacts) {
    out.push(json::Value(json::Object{{"path", path},
                                      {"type", a.type},
                                      {"uri", a.uri},
                                      {"name", a.name},
                                      {"digest", a.digest},
                                      {"properties", properties_json(a.properties)}}));
  }
  return out;
}

void apply_execution(Store& store, const json::Value& r) {
  const json::Value& e = r.at("execution");
  const std::int64_t id =
      store.put_execution({.type = text_of(e, "type"), .name = text_of(e, "name"), .state = text_of(e, "state"),
                           .properties = properties_of(e.find("properties"))});
  std::vector<std::int64_t> contexts, outputs;
  for (const auto& c : r.at("contexts").as_array()) {
    contexts.push_back(store.put_context(
        {.type = text_of(c, "type"), .name = text_of(c, "name"), .properties = properties_of(c.find("properties"))}));
    store.associate(contexts.back(), id);
  }
  for (const char* side : {"inputs", "outputs"}) {
    for (const auto& a : r.at(side).as_array()) {
      const std::int64_t artifact =
          store.put_artifact({.type = text_of(a, "type"), .uri = text_of(a, "uri"), .name = text_of(a, "name"),
                              .digest = text_of(a, "digest"), .properties = properties_of(a.find("properties"))});
      const bool input = side == std::string("inputs");
      store.put_event(id, artifact, input ? EventType::input : EventType::output, text_of(a, "path"));
      if (!input) outputs.push_back(artifact);
    }
  }
  for (auto c : contexts) {
    for (auto a : outputs) store.attribute(c, a);
  }
}

}  // namespace

std::string trial_name(const std::string& dir, int trial) { return normal(dir) + "#" + std::to_string(trial); }

fs::path spool_directory(const fs::path& store) { return store.string() + ".spool"; }

std::string record_launch_start(const LaunchStart& launch) noexcept {
  std::string name;
  json::Value r = json::Value::object();
  try {
    const std::string job = launch.job.empty() ? std::string() : slurm_job();
    name = (job.empty() ? "local" : "job-" + job) + "/" + host_name() + ":" + std::to_string(::getpid()) +
           "@" + std::to_string(unix_nanoseconds() / 1000000000);
    r.set("kind", "launch_start");
    r.set("name", name);
    r.set("command", join(launch.command, " ", shell_quote));
    r.set("host", host_name());
    r.set("cwd", fs::current_path().string());
    r.set("ranks", launch.ranks);
    r.set("run_dir", launch.run_dir);
    r.set("output_dir", launch.output_dir);
    add_surroundings(r);
    if (launch.job.empty()) r.set("job", "");  // local mode: whatever allocation it is in is not its job
  } catch (...) {
    return {};
  }
  if (!deliver("the launch", std::move(r))) return {};
  ::setenv(kExecutionVariable, ("Launch/" + name).c_str(), 1);
  return name;
}

void record_launch_end(const LaunchEnd& end) noexcept {
  if (end.name.empty()) return;
  try {
    deliver("the launch's end", json::Value(json::Object{{"kind", "launch_end"},
                                                         {"name", end.name},
                                                         {"exit_status", end.exit_status},
                                                         {"restarts", end.restarts},
                                                         {"outcome", end.outcome}}));
  } catch (...) {
  }
}

void record_trial_end(const TrialEnd& trial) noexcept {
  try {
    json::Value parameters = json::Value::object(), metrics = json::Value::object();
    for (const auto& [k, v] : trial.parameters) parameters.set(k, v);
    // JSON holds no NaN or infinity: such a metric is left out rather than the trial.
    for (const auto& [k, v] : trial.metrics) {
      if (std::isfinite(v)) metrics.set(k, v);
    }
    json::Value r(json::Object{{"kind", "trial_end"},
                               {"dir", normal(trial.experiment_dir)},
                               {"experiment", trial.experiment},
                               {"number", trial.trial},
                               {"parameters", std::move(parameters)},
                               {"state", trial.state},
                               {"objective_metric", trial.objective_metric},
                               {"metrics", std::move(metrics)},
                               {"trial_job", trial.job}});
    if (trial.objective && std::isfinite(*trial.objective)) r.set("objective", *trial.objective);
    deliver("the trial", std::move(r));
  } catch (...) {
  }
}

void record_checkpoint(const CheckpointCommit& checkpoint) noexcept {
  try {
    json::Value r(json::Object{
        {"kind", "checkpoint"}, {"path", checkpoint.path}, {"step", checkpoint.step}, {"digest", checkpoint.digest}});
    add_surroundings(r);
    deliver("the checkpoint", std::move(r));
  } catch (...) {
  }
}

bool record_execution(const ExecutionRecord& record) noexcept {
  const std::string what = "the execution " + record.execution.type + " " + record.execution.name;
  try {
    json::Value contexts = json::Value::array();
    for (const auto& c : record.contexts) {
      contexts.push(json::Value(
          json::Object{{"type", c.type}, {"name", c.name}, {"properties", properties_json(c.properties)}}));
    }
    const Execution& e = record.execution;
    return deliver(what, json::Value(json::Object{
                             {"kind", "execution"},
                             {"execution", json::Value(json::Object{{"type", e.type},
                                                                    {"name", e.name},
                                                                    {"state", e.state},
                                                                    {"properties", properties_json(e.properties)}})},
                             {"inputs", artifacts_json(record.inputs)},
                             {"outputs", artifacts_json(record.outputs)},
                             {"contexts", std::move(contexts)}}));
  } catch (const std::exception& e) {
    warn_once(what, e.what());
  } catch (...) {
  }
  return false;
}

Merged merge_spool(Store& store) {
  const fs::path dir = spool_directory(store.path());
  std::error_code ec;
  Merged merged;
  if (!fs::is_directory(dir, ec)) return merged;
  std::vector<fs::path> files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() == ".json" && it->path().filename().string()[0] != '.') files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());  // by the time each was written
  // One transaction for the lot (one sync, not one a record); a record that cannot be read
  // or applied is set aside, its own writes undone, and the others go on.
  std::vector<fs::path> applied;
  const auto set_aside = [&](const fs::path& file) {
    if (!fs::exists(file, ec)) return;  // another merger took it first
    fs::rename(file, file.string() + ".damaged", ec);
    ++merged.damaged;
  };
  store.transaction([&] {
    for (const auto& file : files) {
      try {
        const json::Value record = json::parse(read_text(file), file.string());
        if (!record.is_object()) throw Error(file.string() + ": not a record");
        store.transaction([&] { apply(store, record); });
        applied.push_back(file);
      } catch (const std::exception&) {
        set_aside(file);
      }
    }
  });
  // Applying again is harmless (every record names what it writes), so a crash before these
  // removals, or a second merger at once, costs nothing.
  for (const auto& file : applied) fs::remove(file, ec);
  merged.records = static_cast<int>(applied.size());
  return merged;
}

Store open_merged(const fs::path& path) {
  Store store = Store::open(path);
  merge_spool(store);
  return store;
}

}  // namespace cohort::lineage
