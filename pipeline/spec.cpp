#include "pipeline/spec.hpp"

#include <algorithm>
#include <set>

#include "common/error.hpp"
#include "common/json.hpp"
#include "common/text.hpp"
#include "pipeline/placeholder.hpp"
#include "pipeline/spec_readers.hpp"

namespace cohort::pipeline {
namespace {

json::Value to_json(const YAML::Node& n) {
  if (n.IsSequence()) {
    json::Value a = json::Value::array();
    for (const auto& item : n) a.push(to_json(item));
    return a;
  }
  if (n.IsMap()) {
    json::Value o = json::Value::object();
    for (const auto& kv : n) o.set(kv.first.as<std::string>(), to_json(kv.second));
    return o;
  }
  if (n.IsNull()) return {};
  return n.as<std::string>();
}

std::string names_of(const std::vector<std::string>& names) { return names.empty() ? "none" : join(names, ", "); }

// The producer and output of each input from another task exist, with the right kind.
void check_inputs(const yaml::Reader& r, const Pipeline& p, const Task& t) {
  for (const auto& in : t.inputs) {
    const std::string field = t.where + ".inputs." + (in.artifact ? "artifacts." : "parameters.") + in.name;
    if (in.source.kind == InputSource::Kind::pipeline_parameter) {
      const bool known = std::any_of(p.parameters.begin(), p.parameters.end(),
                                     [&](const Parameter& q) { return q.name == in.source.value; });
      if (!known) {
        std::vector<std::string> names;
        for (const auto& q : p.parameters) names.push_back(q.name);
        r.fail(field, "the pipeline has no parameter '" + in.source.value + "' (it has: " + names_of(names) + ")");
      }
    }
    if (in.source.kind != InputSource::Kind::task_parameter && in.source.kind != InputSource::Kind::task_artifact) continue;
    const Task* producer = p.task(in.source.task);
    if (!producer) {
      std::vector<std::string> names;
      for (const auto& q : p.tasks) names.push_back(q.name);
      r.fail(field, "no task '" + in.source.task + "' (tasks: " + names_of(names) + ")");
    }
    const bool artifact = in.source.kind == InputSource::Kind::task_artifact;
    const auto& outputs = artifact ? producer->output_artifacts : producer->output_parameters;
    if (std::find(outputs.begin(), outputs.end(), in.source.output) == outputs.end()) {
      r.fail(field, "task '" + producer->name + "' has no output " + (artifact ? "artifact" : "parameter") + " '" +
                        in.source.output + "' (it has: " + names_of(outputs) + ")");
    }
  }
}

// Each placeholder in `text` (an argument or an environment value of `t`) names an input
// bound to the task or an output it declares.
void check_placeholders(const yaml::Reader& r, const Task& t, const std::string& field, const std::string& text) {
  for (const auto& ph : placeholders_in(text, [&](const std::string& why) { r.fail(field, why); })) {
    using K = Placeholder::Kind;
    bool known = false;
    std::string what;
    if (ph.kind == K::input_parameter || ph.kind == K::input_artifact) {
      known = t.input(ph.name, ph.kind == K::input_artifact) != nullptr;
      what = ph.kind == K::input_artifact ? "input artifact" : "input parameter";
    } else {
      const auto& outs = ph.kind == K::output_artifact ? t.output_artifacts : t.output_parameters;
      known = std::find(outs.begin(), outs.end(), ph.name) != outs.end();
      what = ph.kind == K::output_artifact ? "output artifact" : "output parameter";
    }
    if (!known) r.fail(field, ph.text + " names no " + what + " of task '" + t.name + "'");
  }
}

void check_placeholders(const yaml::Reader& r, const Task& t) {
  for (std::size_t i = 0; i < t.command.size(); ++i) {
    check_placeholders(r, t, yaml::Reader::at(t.where + ".command", i), t.command[i]);
  }
  for (const auto& [name, value] : t.env) check_placeholders(r, t, yaml::Reader::join(t.where + ".env", name), value);
}

// Kahn's algorithm in file order; what is left at the end lies on a cycle.
void order(const yaml::Reader& r, Pipeline& p) {
  std::vector<Task> ordered;
  std::set<std::string> placed;
  while (ordered.size() < p.tasks.size()) {
    bool moved = false;
    for (auto& t : p.tasks) {
      if (placed.count(t.name)) continue;
      if (std::all_of(t.after.begin(), t.after.end(), [&](const std::string& a) { return placed.count(a) > 0; })) {
        placed.insert(t.name);
        ordered.push_back(t);
        moved = true;
      }
    }
    if (!moved) {
      std::vector<std::string> stuck;
      for (const auto& t : p.tasks) {
        if (!placed.count(t.name)) stuck.push_back(t.name);
      }
      const Task& first = *p.task(stuck.front());
      r.fail(first.where, "the tasks " + join(stuck, ", ") + " wait for each other in a cycle; a pipeline is a DAG");
    }
  }
  p.tasks = std::move(ordered);
}

}  // namespace

const Input* Task::input(const std::string& name, bool artifact) const {
  for (const auto& in : inputs) {
    if (in.name == name && in.artifact == artifact) return &in;
  }
  return nullptr;
}

std::string Task::artifact_type(const std::string& output) const {
  const auto it = artifact_types.find(output);
  return it == artifact_types.end() ? "Artifact" : it->second;
}

const Task* Pipeline::task(const std::string& name) const {
  for (const auto& t : tasks) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::vector<std::string> Pipeline::downstream(const std::string& name) const {
  std::set<std::string> reached{name};
  std::vector<std::string> out;
  for (const auto& t : tasks) {  // upstream first: one pass reaches everything
    if (std::any_of(t.after.begin(), t.after.end(), [&](const std::string& a) { return reached.count(a) > 0; })) {
      reached.insert(t.name);
      out.push_back(t.name);
    }
  }
  return out;
}

std::string value_text(const YAML::Node& node) {
  if (node.IsScalar()) return node.as<std::string>();
  return json::write(to_json(node));
}

void check_and_order(const yaml::Reader& r, Pipeline& p) {
  if (p.tasks.empty()) r.fail("", "the pipeline has no tasks");
  std::set<std::string> names;
  for (auto& t : p.tasks) {
    if (!is_object_name(t.name)) {
      r.fail(t.where, "'" + t.name + "' cannot name a task: use up to 63 letters, digits, '.', '_' and '-'");
    }
    if (!names.insert(t.name).second) r.fail(t.where, "a second task named '" + t.name + "'");
    // Outputs are files in the task's directory: a name must not lead out of it.
    for (const auto* outs : {&t.output_artifacts, &t.output_parameters}) {
      for (const auto& o : *outs) {
        if (!is_object_name(o) || o == "." || o == "..") {
          r.fail(t.where, "'" + o + "' cannot name an output: use up to 63 letters, digits, '.', '_' and '-'");
        }
      }
    }
    check_inputs(r, p, t);
    check_placeholders(r, t);
    for (const auto& in : t.inputs) {
      if (in.source.kind == InputSource::Kind::task_parameter || in.source.kind == InputSource::Kind::task_artifact) {
        t.after.push_back(in.source.task);
      }
    }
    for (const auto& a : t.after) {
      if (!p.task(a)) r.fail(t.where + ".dependentTasks", "no task '" + a + "' to wait for");
      if (a == t.name) r.fail(t.where + ".dependentTasks", "task '" + t.name + "' waits for itself");
    }
    std::sort(t.after.begin(), t.after.end());
    t.after.erase(std::unique(t.after.begin(), t.after.end()), t.after.end());
  }
  order(r, p);
}

Pipeline parse_pipeline(const std::string& text, const std::string& source) {
  return yaml::read_document(text, source, [](const yaml::Reader& r, const YAML::Node& doc) {
    if (!doc.IsMap()) r.fail("", "must be a mapping: KFP's compiled pipeline, or cohort's (name, params, steps)");
    Pipeline p = doc["deploymentSpec"] || doc["root"] ? read_kfp(r, doc) : read_native(r, doc);
    check_and_order(r, p);
    return p;
  });
}

Pipeline load_pipeline(const std::filesystem::path& path) {
  return parse_pipeline(yaml::read_spec_file(path.string(), "the pipeline"), path.string());
}

std::map<std::string, std::string> parameter_values(const Pipeline& pipeline, const std::vector<std::string>& given) {
  std::map<std::string, std::string> values;
  for (const auto& p : pipeline.parameters) {
    if (p.default_value) values[p.name] = *p.default_value;
  }
  for (const auto& g : given) {
    const auto eq = g.find('=');
    if (eq == std::string::npos || eq == 0) throw input_error("--param " + g + ": expected NAME=VALUE");
    const std::string name = g.substr(0, eq);
    if (!std::any_of(pipeline.parameters.begin(), pipeline.parameters.end(),
                     [&](const Parameter& p) { return p.name == name; })) {
      std::vector<std::string> names;
      for (const auto& p : pipeline.parameters) names.push_back(p.name);
      throw input_error("--param " + g + ": pipeline " + pipeline.name + " has no parameter '" + name +
                        "' (it has: " + names_of(names) + ")");
    }
    values[name] = g.substr(eq + 1);
  }
  for (const auto& p : pipeline.parameters) {
    if (!values.count(p.name)) {
      throw input_error("pipeline " + pipeline.name + ": parameter '" + p.name + "' has no default: give --param " +
                        p.name + "=VALUE");
    }
  }
  return values;
}

}  // namespace cohort::pipeline
