// lineage/report.hpp — the store's objects for programs and for people: as JSON (what
// `cohort lineage show|list --json` prints and the dashboard's API answers) and as a graph
// drawn by Graphviz (what `cohort lineage graph` writes and the dashboard shows).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <tuple>

#include "common/json.hpp"
#include "lineage/store.hpp"

namespace cohort::lineage {

json::Value properties_json(const Properties& properties);
json::Value to_json(const Artifact& artifact);
json::Value to_json(const Execution& execution);
json::Value to_json(const Context& context);
// {artifact, cut?, produced_by: [{execution, contexts, inputs: [{path, …its ancestry}]}]}
json::Value ancestry_json(const Ancestry& ancestry);

template <typename T>
json::Value array_of(const std::vector<T>& items) {
  json::Value out = json::Value::array();
  for (const auto& item : items) out.push(to_json(item));
  return out;
}

// What a drawing holds: objects by id, and the events between them.
struct Graph {
  std::map<std::int64_t, Artifact> artifacts;
  std::map<std::int64_t, Execution> executions;
  std::set<std::tuple<std::int64_t, std::int64_t, bool, std::string>> events;  // execution, artifact, input?, path
  std::string title;

  void add(const Ancestry& ancestry);
  // The execution, its inputs with their history, and its outputs.
  void add_execution(const Store& store, const Execution& execution);
};

// `text` as a Graphviz quoted string.
std::string dot_quote(const std::string& text);

// Where a drawn object links to ('a' artifact, 'e' execution, and its id); "" for no link.
using Linker = std::function<std::string(char kind, std::int64_t id)>;

// The graph in Graphviz's language: artifacts as notes, executions as boxes, arrows from
// inputs and to outputs; each object a link where `link` gives one.
std::string to_dot(const Graph& graph, const Linker& link = {});
// Drawn by Graphviz's `dot -Tsvg`; throws cohort::Error when dot is missing or fails.
std::string to_svg(const std::string& dot);

}  // namespace cohort::lineage
