#include "dashboard/data.hpp"

#include <algorithm>
#include <system_error>

#include "common/error.hpp"
#include "common/text.hpp"
#include "dashboard/traffic.hpp"
#include "lineage/report.hpp"
#include "tuner/report.hpp"
#include "tuner/runner.hpp"

namespace cohort::dashboard {
namespace {

namespace fs = std::filesystem;

const lineage::Context& context_of(const lineage::Store& store, std::int64_t id, const std::string& type,
                                   lineage::Context& out) {
  auto c = store.context(id);
  if (!c || c->type != type) {
    throw HttpError{404, "the lineage store " + store.path().string() + " holds no " + type + " " + std::to_string(id)};
  }
  out = std::move(*c);
  return out;
}

}  // namespace

std::string text_property(const lineage::Properties& properties, const std::string& key) {
  auto it = properties.find(key);
  return it == properties.end() ? std::string() : lineage::to_text(it->second);
}

std::int64_t parse_id(std::string_view text, std::string_view what) {
  auto id = parse_integer(text, 1, std::numeric_limits<std::int64_t>::max());
  if (!id || text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos) {
    throw HttpError{404, "no " + std::string(what) + " has the id '" + std::string(text) + "': ids are numbers"};
  }
  return *id;
}

std::vector<lineage::Context> sweep_contexts(const lineage::Store& store) { return store.contexts("Experiment"); }

SweepView load_sweep(const lineage::Store& store, std::int64_t id) {
  SweepView v;
  context_of(store, id, "Experiment", v.context);
  v.dir = v.context.name;
  try {
    v.experiment = tuner::open_experiment_dir(v.dir);
    v.state = tuner::Journal(v.dir).read();
  } catch (const Error& e) {
    throw HttpError{404, "sweep " + std::to_string(id) + " (" + v.dir.string() + ") cannot be read: " + e.what()};
  }
  return v;
}

std::vector<lineage::Context> pipeline_contexts(const lineage::Store& store) { return store.contexts("PipelineRun"); }

PipelineView load_pipeline(const lineage::Store& store, std::int64_t id) {
  PipelineView v;
  context_of(store, id, "PipelineRun", v.context);
  const std::string dir = text_property(v.context.properties, "dir");
  try {
    if (dir.empty()) throw Error("the store does not say where its directory is");
    v.status = pipeline::read_status(dir);
  } catch (const Error& e) {
    throw HttpError{404, "pipeline run " + std::to_string(id) + " (" + dir + ") cannot be read: " + e.what()};
  }
  return v;
}

std::vector<Endpoint> endpoints(const lineage::Store& store) {
  std::vector<Endpoint> out;
  for (const auto& e : store.executions("Serve")) {
    Endpoint p{.execution = e.id,
               .name = e.name,
               .state = e.state,
               .url = text_property(e.properties, "url"),
               .host = text_property(e.properties, "host"),
               .started = e.created,
               .updated = e.updated};
    for (const auto& ev : store.events_of_execution(e.id)) {
      if (ev.type != lineage::EventType::input) continue;
      if (auto a = store.artifact(ev.artifact)) {
        const std::string model = text_property(a->properties, "model"), version = text_property(a->properties, "version");
        p.models.push_back(model.empty() ? a->uri : model + "/" + version);
      }
    }
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<Service> services(const fs::path& root) {
  std::vector<Service> out;
  std::error_code ec;
  if (root.empty()) return out;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (!fs::exists(serve::registry_path(it->path()), ec)) continue;
    Service s{.dir = it->path()};
    try {
      s.registry = serve::read_registry(it->path());
    } catch (const Error& e) {
      s.error = e.what();
    }
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const Service& a, const Service& b) { return a.dir < b.dir; });
  return out;
}

json::Value sweeps_json(const lineage::Store& store) {
  json::Value list = json::Value::array();
  for (const auto& c : sweep_contexts(store)) {
    json::Value o = json::Value::object();
    o.set("id", c.id);
    o.set("dir", c.name);
    try {
      const SweepView v = load_sweep(store, c.id);
      const tuner::Trial* best = v.state.best(v.experiment.objective);
      o.set("experiment", v.experiment.name);
      o.set("state", tuner::to_string(v.state.state));
      o.set("trials", static_cast<std::int64_t>(v.state.trials.size()));
      o.set("succeeded", v.state.count(tuner::TrialState::succeeded));
      o.set("objective", v.experiment.objective.metric);
      o.set("best", best ? tuner::best_json(*best) : json::Value());
    } catch (const HttpError& e) {
      o.set("error", e.message);
    }
    list.push(std::move(o));
  }
  return json::Value(json::Object{{"sweeps", std::move(list)}});
}

json::Value sweep_json(const SweepView& v) {
  json::Value o = tuner::status_json(v.experiment, v.state);
  o.set("id", v.context.id);
  o.set("dir", v.dir.string());
  return o;
}

json::Value pipelines_json(const lineage::Store& store) {
  json::Value list = json::Value::array();
  for (const auto& c : pipeline_contexts(store)) {
    json::Value o = json::Value::object();
    o.set("id", c.id);
    o.set("run", c.name);
    o.set("pipeline", text_property(c.properties, "pipeline"));
    o.set("dir", text_property(c.properties, "dir"));
    try {
      const PipelineView v = load_pipeline(store, c.id);
      o.set("state", v.status.state);
      o.set("created", v.status.created);
      json::Value states = json::Value::object();
      for (const auto& t : v.status.tasks) states.set(t.name, t.state);
      o.set("tasks", std::move(states));
    } catch (const HttpError& e) {
      o.set("error", e.message);
    }
    list.push(std::move(o));
  }
  return json::Value(json::Object{{"pipelines", std::move(list)}});
}

json::Value pipeline_json(const PipelineView& v) {
  json::Value o = pipeline::status_json(v.status);
  o.set("id", v.context.id);
  return o;
}

json::Value models_json(const lineage::Store& store) {
  return json::Value(json::Object{{"artifacts", lineage::array_of(store.artifacts())}});
}

json::Value model_json(const lineage::Store& store, std::int64_t artifact) {
  if (!store.artifact(artifact)) {
    throw HttpError{404, "the lineage store " + store.path().string() + " holds no artifact " + std::to_string(artifact)};
  }
  json::Value o = lineage::ancestry_json(store.ancestry(artifact));
  o.set("consumers", lineage::array_of(store.consumers(artifact)));
  return o;
}

json::Value launches_json(const lineage::Store& store) {
  json::Value list = json::Value::array();
  for (const auto& r : launch_rows(store)) {
    json::Value o = lineage::to_json(r.launch);
    o.set("heartbeat_age", r.heartbeat_age ? json::Value(*r.heartbeat_age) : json::Value());
    o.set("checkpoint", r.checkpoint ? lineage::to_json(*r.checkpoint) : json::Value());
    list.push(std::move(o));
  }
  return list;
}

namespace {

json::Value service_json(const Service& s) {
  json::Value o(json::Object{{"dir", s.dir.string()}});
  if (!s.registry) {
    o.set("error", s.error);
    return o;
  }
  const serve::Registry& r = *s.registry;
  json::Value traffic = json::Value::object(), storage = json::Value::object(), replicas = json::Value::array();
  for (const auto& [version, percent] : r.traffic) traffic.set(version, percent);
  for (const auto& [version, path] : r.storage) storage.set(version, path);
  for (const auto& x : r.replicas) {
    replicas.push(json::Object{{"id", x.id}, {"node", x.node}, {"host", x.host}, {"port", x.port},
                               {"version", x.version}, {"state", x.state}, {"restarts", x.restarts}});
  }
  o.set("name", r.name);
  o.set("state", r.state);
  o.set("job", r.job);
  o.set("url", r.url);
  o.set("message", r.message);
  o.set("traffic", std::move(traffic));
  o.set("versions", std::move(storage));
  o.set("replicas", std::move(replicas));
  return o;
}

}  // namespace

json::Value endpoints_json(const lineage::Store& store, const fs::path& services_root, TrafficCache& traffic) {
  json::Value list = json::Value::array();
  for (const auto& p : endpoints(store)) {
    json::Value models = json::Value::array();
    for (const auto& m : p.models) models.push(m);
    list.push(json::Value(json::Object{{"execution", p.execution},
                                       {"name", p.name},
                                       {"state", p.state},
                                       {"url", p.url},
                                       {"host", p.host},
                                       {"models", std::move(models)},
                                       {"started", p.started},
                                       {"updated", p.updated}}));
  }
  json::Value submitted = json::Value::array();
  for (const auto& s : services(services_root)) {
    json::Value o = service_json(s);
    if (s.registry) o.set("load", load_json(traffic.load(s, TrafficCache::Clock::now())));
    submitted.push(std::move(o));
  }
  return json::Value(json::Object{{"endpoints", std::move(list)}, {"services", std::move(submitted)}});
}

}  // namespace cohort::dashboard
