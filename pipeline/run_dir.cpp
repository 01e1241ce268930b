#include "pipeline/run_dir.hpp"

#include <chrono>

#include "common/environment.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "pipeline/digest.hpp"

namespace cohort::pipeline {
namespace {

json::Value strings_json(const std::vector<std::string>& items) {
  json::Value a = json::Value::array();
  for (const auto& s : items) a.push(s);
  return a;
}

std::vector<std::string> strings_from(const json::Value& v) {
  std::vector<std::string> out;
  for (const auto& s : v.as_array()) out.push_back(s.as_string());
  return out;
}

const char* kind_name(InputSource::Kind k) {
  switch (k) {
    case InputSource::Kind::constant: return "constant";
    case InputSource::Kind::pipeline_parameter: return "parameter";
    case InputSource::Kind::task_parameter: return "taskParameter";
    case InputSource::Kind::task_artifact: return "taskArtifact";
  }
  return "constant";
}

InputSource::Kind kind_from(const std::string& s) {
  if (s == "parameter") return InputSource::Kind::pipeline_parameter;
  if (s == "taskParameter") return InputSource::Kind::task_parameter;
  if (s == "taskArtifact") return InputSource::Kind::task_artifact;
  return InputSource::Kind::constant;
}

json::Value resources_json(const Resources& r) {
  json::Value o = json::Value::object();
  o.set("nodes", r.nodes);
  o.set("ntasks", r.ntasks);
  o.set("cpus", r.cpus);
  o.set("gpus", r.gpus);
  o.set("mem", r.mem);
  o.set("time", r.time);
  o.set("partition", r.partition);
  return o;
}

Resources resources_from(const json::Value& o) {
  return {static_cast<int>(o.at("nodes").as_int()), static_cast<int>(o.at("ntasks").as_int()),
          static_cast<int>(o.at("cpus").as_int()),  static_cast<int>(o.at("gpus").as_int()),
          o.at("mem").as_string(),                  o.at("time").as_string(),
          o.at("partition").as_string()};
}

json::Value task_json(const Task& t) {
  json::Value o = json::Value::object();
  o.set("name", t.name);
  o.set("command", strings_json(t.command));
  o.set("image", t.image);
  json::Value env = json::Value::object();
  for (const auto& [k, v] : t.env) env.set(k, v);
  o.set("env", std::move(env));
  o.set("after", strings_json(t.after));
  json::Value inputs = json::Value::array();
  for (const auto& in : t.inputs) {
    json::Value i = json::Value::object();
    i.set("name", in.name);
    i.set("artifact", in.artifact);
    i.set("kind", kind_name(in.source.kind));
    i.set("value", in.source.value);
    i.set("task", in.source.task);
    i.set("output", in.source.output);
    inputs.push(std::move(i));
  }
  o.set("inputs", std::move(inputs));
  o.set("outputParameters", strings_json(t.output_parameters));
  o.set("outputArtifacts", strings_json(t.output_artifacts));
  json::Value types = json::Value::object();
  for (const auto& [k, v] : t.artifact_types) types.set(k, v);
  o.set("artifactTypes", std::move(types));
  o.set("cache", t.cache);
  o.set("maxRetries", t.max_retries);
  o.set("resources", resources_json(t.resources));
  return o;
}

Task task_from(const json::Value& o) {
  Task t;
  t.name = o.at("name").as_string();
  t.command = strings_from(o.at("command"));
  t.image = o.at("image").as_string();
  for (const auto& [k, v] : o.at("env").as_object()) t.env.emplace_back(k, v.as_string());
  t.after = strings_from(o.at("after"));
  for (const auto& i : o.at("inputs").as_array()) {
    t.inputs.push_back({i.at("name").as_string(), i.at("artifact").as_bool(),
                        {kind_from(i.at("kind").as_string()), i.at("value").as_string(), i.at("task").as_string(),
                         i.at("output").as_string()}});
  }
  t.output_parameters = strings_from(o.at("outputParameters"));
  t.output_artifacts = strings_from(o.at("outputArtifacts"));
  for (const auto& [k, v] : o.at("artifactTypes").as_object()) t.artifact_types[k] = v.as_string();
  t.cache = o.at("cache").as_bool();
  t.max_retries = static_cast<int>(o.at("maxRetries").as_int());
  t.resources = resources_from(o.at("resources"));
  return t;
}

json::Value read_json(const fs::path& path) { return json::parse(read_text(path), path.string()); }

}  // namespace

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void write_record(const fs::path& dir, const RunRecord& rec) {
  json::Value o = json::Value::object();
  o.set("run", rec.run);
  o.set("pipeline", rec.pipeline.name);
  o.set("format", rec.pipeline.format);
  o.set("source", rec.source);
  o.set("mode", rec.mode);
  o.set("root", rec.root.string());
  o.set("created", rec.created);
  o.set("container", rec.container);
  json::Value params = json::Value::object();
  for (const auto& [k, v] : rec.parameters) params.set(k, v);
  o.set("parameters", std::move(params));
  json::Value tasks = json::Value::array();
  for (const auto& t : rec.pipeline.tasks) tasks.push(task_json(t));
  o.set("tasks", std::move(tasks));
  o.set("notes", strings_json(rec.pipeline.notes));
  write_file_atomically(dir / "run.json", json::write(o, 2) + "\n");
}

RunRecord read_record(const fs::path& dir) {
  const json::Value o = read_json(dir / "run.json");
  RunRecord rec;
  rec.run = o.at("run").as_string();
  rec.pipeline.name = o.at("pipeline").as_string();
  rec.pipeline.format = o.at("format").as_string();
  rec.source = o.at("source").as_string();
  rec.mode = o.at("mode").as_string();
  rec.root = o.at("root").as_string();
  rec.created = o.at("created").as_double();
  rec.container = o.at("container").as_string();
  for (const auto& [k, v] : o.at("parameters").as_object()) rec.parameters[k] = v.as_string();
  for (const auto& t : o.at("tasks").as_array()) rec.pipeline.tasks.push_back(task_from(t));
  rec.pipeline.notes = strings_from(o.at("notes"));
  return rec;
}

fs::path task_dir(const fs::path& run_dir, const std::string& task) { return run_dir / "tasks" / task; }
fs::path log_path(const fs::path& run_dir, const std::string& task) { return task_dir(run_dir, task) / "log"; }

json::Value outputs_json(const Outputs& outputs) {
  json::Value params = json::Value::object();
  for (const auto& [k, v] : outputs.parameters) params.set(k, v);
  json::Value arts = json::Value::object();
  for (const auto& [k, v] : outputs.artifacts) {
    json::Value a = json::Value::object();
    a.set("path", v.first);
    a.set("sha256", v.second);
    arts.set(k, std::move(a));
  }
  json::Value o = json::Value::object();
  o.set("parameters", std::move(params));
  o.set("artifacts", std::move(arts));
  return o;
}

Outputs outputs_from(const json::Value& v) {
  Outputs out;
  for (const auto& [k, p] : v.at("parameters").as_object()) out.parameters[k] = p.as_string();
  for (const auto& [k, a] : v.at("artifacts").as_object()) {
    out.artifacts[k] = {a.at("path").as_string(), a.at("sha256").as_string()};
  }
  return out;
}

namespace {

json::Value state_json(const TaskStatus& s) {
  json::Value o = json::Value::object();
  o.set("state", s.state);
  o.set("job", s.job);
  o.set("attempt", s.attempt);
  o.set("fingerprint", s.fingerprint);
  o.set("reason", s.reason);
  o.set("log", s.log);
  o.set("started", s.started);
  o.set("ended", s.ended);
  o.set("host", host_name());
  o.set("outputs", outputs_json(s.outputs));
  return o;
}

TaskStatus state_from(const std::string& task, const json::Value& o) {
  TaskStatus s;
  s.name = task;
  s.state = o.at("state").as_string();
  s.job = o.at("job").as_string();
  s.attempt = static_cast<int>(o.at("attempt").as_int());
  s.fingerprint = o.at("fingerprint").as_string();
  s.reason = o.at("reason").as_string();
  s.log = o.at("log").as_string();
  s.started = o.at("started").as_double();
  s.ended = o.at("ended").as_double();
  s.outputs = outputs_from(o.at("outputs"));
  return s;
}

}  // namespace

std::optional<TaskStatus> read_task_state(const fs::path& run_dir, const std::string& task) {
  const fs::path path = task_dir(run_dir, task) / "state.json";
  std::error_code ec;
  if (fs::exists(path, ec)) return state_from(task, read_json(path));
  if (!fs::exists(run_dir / "cached.json", ec)) return std::nullopt;
  const json::Value served = read_json(run_dir / "cached.json");
  if (const json::Value* o = served.find(task)) return state_from(task, *o);
  return std::nullopt;
}

std::map<std::string, TaskStatus> read_task_states(const fs::path& run_dir, const std::vector<std::string>& tasks) {
  std::map<std::string, TaskStatus> out;
  std::error_code ec;
  if (fs::exists(run_dir / "cached.json", ec)) {
    const json::Value served = read_json(run_dir / "cached.json");
    for (const auto& [task, o] : served.as_object()) out[task] = state_from(task, o);
  }
  for (const auto& task : tasks) {
    const fs::path path = task_dir(run_dir, task) / "state.json";
    if (fs::exists(path, ec)) out[task] = state_from(task, read_json(path));
  }
  return out;
}

void write_task_state(const fs::path& run_dir, const TaskStatus& s) {
  make_directories(task_dir(run_dir, s.name).string(), 0755);
  write_file_atomically(task_dir(run_dir, s.name) / "state.json", json::write(state_json(s), 2) + "\n");
}

void write_served(const fs::path& run_dir, const std::map<std::string, TaskStatus>& served) {
  json::Value o = json::Value::object();
  for (const auto& [task, s] : served) o.set(task, state_json(s));
  write_file_atomically(run_dir / "cached.json", json::write(o, 2) + "\n");
}

void write_jobs(const fs::path& run_dir, const std::map<std::string, std::string>& jobs) {
  json::Value o = json::Value::object();
  for (const auto& [t, j] : jobs) o.set(t, j);
  write_file_atomically(run_dir / "jobs.json", json::write(o, 2) + "\n");
}

std::map<std::string, std::string> read_jobs(const fs::path& run_dir) {
  std::map<std::string, std::string> jobs;
  std::error_code ec;
  if (!fs::exists(run_dir / "jobs.json", ec)) return jobs;
  const json::Value o = read_json(run_dir / "jobs.json");
  for (const auto& [t, j] : o.as_object()) jobs[t] = j.as_string();
  return jobs;
}

std::optional<ResolvedInputs> resolve_inputs(const fs::path& run_dir, const RunRecord& rec, const Task& task,
                                             const std::map<std::string, TaskStatus>& known) {
  ResolvedInputs out;
  json::Value params = json::Value::object();
  json::Value arts = json::Value::object();
  std::map<std::string, TaskStatus> upstream = known;
  for (const auto& in : task.inputs) {
    const InputSource& s = in.source;
    std::string value;
    if (s.kind == InputSource::Kind::constant) value = s.value;
    if (s.kind == InputSource::Kind::pipeline_parameter) value = rec.parameters.at(s.value);
    if (s.kind == InputSource::Kind::task_parameter || s.kind == InputSource::Kind::task_artifact) {
      if (!upstream.count(s.task)) {
        auto st = read_task_state(run_dir, s.task);
        if (!st || (st->state != "succeeded" && st->state != "cached")) return std::nullopt;
        upstream[s.task] = *st;
      }
      const Outputs& o = upstream[s.task].outputs;
      if (s.kind == InputSource::Kind::task_parameter) {
        const auto it = o.parameters.find(s.output);
        if (it == o.parameters.end()) throw Error("task " + s.task + " recorded no output parameter " + s.output);
        value = it->second;
      } else {
        const auto it = o.artifacts.find(s.output);
        if (it == o.artifacts.end()) throw Error("task " + s.task + " recorded no output artifact " + s.output);
        out.bindings.input_artifacts[in.name] = it->second.first;
        out.artifact_digests[in.name] = it->second.second;
        arts.set(in.name, it->second.second);
        continue;
      }
    }
    if (in.artifact) throw Error("input artifact " + in.name + " of task " + task.name + " has no producer");
    out.bindings.input_parameters[in.name] = value;
    params.set(in.name, value);
  }
  json::Value key = json::Value::object();
  json::Value cmd = json::Value::array();
  for (const auto& c : task.command) cmd.push(c);
  key.set("command", std::move(cmd));
  key.set("image", task.image);
  json::Value env = json::Value::object();
  for (const auto& [k, v] : task.env) env.set(k, v);
  key.set("env", std::move(env));
  key.set("inputParameters", std::move(params));
  key.set("inputArtifacts", std::move(arts));
  json::Value op = json::Value::array(), oa = json::Value::array();
  for (const auto& n : task.output_parameters) op.push(n);
  for (const auto& n : task.output_artifacts) oa.push(n);
  key.set("outputParameters", std::move(op));
  key.set("outputArtifacts", std::move(oa));
  out.fingerprint = sha256(json::write(key));
  return out;
}

std::optional<CacheHit> cache_lookup(const fs::path& root, const std::string& fingerprint) {
  const fs::path path = root / "cache" / (fingerprint + ".json");
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  json::Value o;
  try {
    o = read_json(path);
  } catch (const Error&) {
    return std::nullopt;  // a damaged entry is a miss: the task runs again and rewrites it
  }
  CacheHit hit{outputs_from(o.at("outputs")), o.at("from").as_string()};
  for (const auto& [name, a] : hit.outputs.artifacts) {
    if (!fs::exists(a.first, ec)) return std::nullopt;  // its run was removed
  }
  return hit;
}

void cache_store(const fs::path& root, const std::string& fingerprint, const Outputs& outputs, const std::string& from) {
  make_directories((root / "cache").string(), 0755);
  json::Value o = json::Value::object();
  o.set("fingerprint", fingerprint);
  o.set("from", from);
  o.set("created", now_seconds());
  o.set("outputs", outputs_json(outputs));
  write_file_atomically(root / "cache" / (fingerprint + ".json"), json::write(o, 2) + "\n");
}

}  // namespace cohort::pipeline
