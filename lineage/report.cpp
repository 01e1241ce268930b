#include "lineage/report.hpp"

#include <sstream>
#include <variant>

#include "common/error.hpp"
#include "common/process.hpp"

namespace cohort::lineage {
namespace {

// A node's URL attribute, when `link` gives it one.
std::string url_of(const Linker& link, char kind, std::int64_t id) {
  if (!link) return "";
  const std::string url = link(kind, id);
  return url.empty() ? "" : ", URL=" + dot_quote(url) + ", target=\"_top\"";
}

}  // namespace

std::string dot_quote(const std::string& text) {
  std::string out = "\"";
  for (char ch : text) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (ch == '\n') {
      out += "\\n";
      continue;
    }
    out += ch;
  }
  return out + "\"";
}

json::Value properties_json(const Properties& properties) {
  json::Value out = json::Value::object();
  for (const auto& [k, v] : properties) std::visit([&, &k = k](const auto& x) { out.set(k, json::Value(x)); }, v);
  return out;
}

json::Value to_json(const Artifact& a) {
  return json::Value(json::Object{{"id", a.id},
                                  {"type", a.type},
                                  {"uri", a.uri},
                                  {"name", a.name},
                                  {"digest", a.digest},
                                  {"properties", properties_json(a.properties)},
                                  {"created", a.created}});
}

json::Value to_json(const Execution& e) {
  return json::Value(json::Object{{"id", e.id},
                                  {"type", e.type},
                                  {"name", e.name},
                                  {"state", e.state},
                                  {"properties", properties_json(e.properties)},
                                  {"created", e.created},
                                  {"updated", e.updated}});
}

json::Value to_json(const Context& c) {
  return json::Value(json::Object{{"id", c.id},
                                  {"type", c.type},
                                  {"name", c.name},
                                  {"properties", properties_json(c.properties)},
                                  {"created", c.created}});
}

json::Value ancestry_json(const Ancestry& a) {
  json::Value out = json::Value::object();
  out.set("artifact", to_json(a.artifact));
  if (a.cut) out.set("cut", true);
  json::Value producers = json::Value::array();
  for (const auto& p : a.produced_by) {
    json::Value inputs = json::Value::array();
    for (const auto& [path, input] : p.inputs) {
      json::Value i = ancestry_json(input);
      i.set("path", path);
      inputs.push(std::move(i));
    }
    producers.push(json::Value(json::Object{
        {"execution", to_json(p.execution)}, {"contexts", array_of(p.contexts)}, {"inputs", std::move(inputs)}}));
  }
  out.set("produced_by", std::move(producers));
  return out;
}

void Graph::add(const Ancestry& a) {
  artifacts.emplace(a.artifact.id, a.artifact);
  for (const auto& p : a.produced_by) {
    executions.emplace(p.execution.id, p.execution);
    events.emplace(p.execution.id, a.artifact.id, false, "");
    for (const auto& [path, input] : p.inputs) {
      events.emplace(p.execution.id, input.artifact.id, true, path);
      add(input);
    }
  }
}

void Graph::add_execution(const Store& store, const Execution& e) {
  executions.emplace(e.id, e);
  for (const auto& ev : store.events_of_execution(e.id)) {
    events.emplace(e.id, ev.artifact, ev.type == EventType::input, ev.path);
    if (ev.type == EventType::input)
      add(store.ancestry(ev.artifact));
    else
      artifacts.emplace(ev.artifact, *store.artifact(ev.artifact));
  }
}

std::string to_dot(const Graph& g, const Linker& link) {
  std::ostringstream out;
  out << "digraph lineage {\n  rankdir=LR;\n  label=" << dot_quote(g.title) << ";\n  labelloc=t;\n"
      << "  node [fontname=\"sans-serif\", fontsize=10];\n";
  for (const auto& [id, a] : g.artifacts) {
    out << "  a" << id << " [shape=note, label=" << dot_quote(a.type + " " + std::to_string(id) + "\n" + a.uri)
        << url_of(link, 'a', id) << "];\n";
  }
  for (const auto& [id, e] : g.executions) {
    std::string label = e.type + " " + std::to_string(id) + (e.name.empty() ? "" : "\n" + e.name) +
                        (e.state.empty() ? "" : "\n" + e.state);
    out << "  e" << id << " [shape=box, style=rounded, label=" << dot_quote(label) << url_of(link, 'e', id) << "];\n";
  }
  for (const auto& [execution, artifact, input, path] : g.events) {
    if (input)
      out << "  a" << artifact << " -> e" << execution;
    else
      out << "  e" << execution << " -> a" << artifact;
    if (!path.empty()) out << " [label=" << dot_quote(path) << "]";
    out << ";\n";
  }
  out << "}\n";
  return out.str();
}

std::string to_svg(const std::string& dot) {
  if (!find_program("dot")) {
    throw Error(
        "--format svg: Graphviz's dot is not installed (apt-get install graphviz), or draw it yourself "
        "from --format dot");
  }
  RunOptions o;
  o.input = dot;
  const ProcessResult r = run_process({"dot", "-Tsvg"}, o);
  if (!r.ok()) throw Error("dot -Tsvg failed: " + r.err);
  return r.out;
}

}  // namespace cohort::lineage
