#include "lineage/lineage_command.hpp"

#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/json.hpp"
#include "common/options.hpp"
#include "common/process.hpp"
#include "common/text.hpp"
#include "lineage/record.hpp"
#include "lineage/report.hpp"
#include "lineage/store.hpp"

namespace cohort::lineage {

namespace {

namespace fs = std::filesystem;
namespace po = options::po;

// What a command line names: an artifact, an execution or a context, by id.
struct Ref {
  enum Kind { artifact, execution, context } kind;
  std::int64_t id;
};

const char* const kRefHelp =
    "REF is artifact/ID (or just ID), execution/ID, context/ID, or the path or URI of an artifact\n"
    "(its newest version when it was recorded with several digests).";

// The store, with whatever waits in its spool merged in first.
Store open_store(const std::string& given) {
  if (given.empty() && !Store::enabled()) {
    throw input_error("COHORT_LINEAGE is off: give --store FILE, or set COHORT_LINEAGE to the store's file");
  }
  Store store = Store::open(given.empty() ? Store::default_path() : fs::path(given));
  if (const Merged m = merge_spool(store); m.damaged > 0) {
    std::cerr << "cohort: lineage: " << m.damaged << " file(s) in " << spool_directory(store.path()).string()
              << " hold no record; they are left there as *.damaged\n";
  }
  return store;
}

// An artifact's uri as writers record a path: absolute, normal, no trailing slash.
std::string as_uri(const std::string& text) {
  if (text.find("://") != std::string::npos) return text;
  std::string path = fs::absolute(text).lexically_normal().string();
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

Ref resolve(const Store& store, const std::string& text) {
  // A bare number is an artifact's id, as MLMD's own tools take it.
  static const std::tuple<const char*, const char*, Ref::Kind> kForms[] = {{"artifact/", "artifact", Ref::artifact},
                                                                           {"execution/", "execution", Ref::execution},
                                                                           {"context/", "context", Ref::context},
                                                                           {"", "artifact", Ref::artifact}};
  for (const auto& [prefix, word, kind] : kForms) {
    const std::string p = prefix;
    if (text.rfind(p, 0) != 0) continue;
    const auto id = parse_integer(std::string_view(text).substr(p.size()), 1, INT64_MAX / 2);
    if (!id) {
      if (p.empty()) break;  // not a number: a path or a URI
      throw input_error(text + ": expected " + p + "ID with ID a whole number");
    }
    const bool found = kind == Ref::artifact    ? store.artifact(*id).has_value()
                       : kind == Ref::execution ? store.execution(*id).has_value()
                                                : store.context(*id).has_value();
    if (!found) throw input_error(text + ": no such " + word + " in " + store.path().string());
    return {kind, *id};
  }
  const std::string uri = as_uri(text);
  auto found = store.artifacts_at(uri);
  if (found.empty()) {
    throw input_error(text + ": no artifact at " + uri + " in " + store.path().string() +
                      " (see 'cohort lineage list' for what is recorded)");
  }
  return {Ref::artifact, found.front().id};
}

// ---- as text ----

std::string properties_text(const Properties& properties) {
  std::string out;
  for (const auto& [k, v] : properties) out += (out.empty() ? "" : "  ") + k + "=" + to_text(v);
  return out;
}

std::string line_of(const Artifact& a) {
  std::string out = "artifact " + std::to_string(a.id) + "  " + a.type + "  " + a.uri;
  if (!a.digest.empty()) out += "  [" + a.digest + "]";
  return out;
}

std::string line_of(const Execution& e) {
  return "execution " + std::to_string(e.id) + "  " + e.type + (e.name.empty() ? "" : "  " + e.name) +
         (e.state.empty() ? "" : "  " + e.state);
}

std::string line_of(const Context& c) { return "context " + std::to_string(c.id) + "  " + c.type + "  " + c.name; }

void print_properties(std::ostream& out, const Properties& properties, int indent) {
  if (!properties.empty()) out << std::string(indent, ' ') << properties_text(properties) << "\n";
}

void print_ancestry(std::ostream& out, const Ancestry& a, int indent) {
  const std::string pad(indent, ' ');
  if (a.cut) {
    out << line_of(a.artifact) << "  (shown above)\n";
    return;
  }
  out << line_of(a.artifact) << "\n";
  print_properties(out, a.artifact.properties, indent + 2);
  for (const auto& p : a.produced_by) {
    out << pad << "  made by " << line_of(p.execution);
    for (const auto& c : p.contexts) out << "  (in " << c.type << " " << c.name << ")";
    out << "\n";
    print_properties(out, p.execution.properties, indent + 4);
    for (const auto& [path, input] : p.inputs) {
      out << pad << "    from" << (path.empty() ? "" : " \"" + path + "\"") << ": ";
      print_ancestry(out, input, indent + 4);
    }
  }
  if (a.produced_by.empty()) out << pad << "  (no recorded producer)\n";
}

void show_execution(std::ostream& out, const Store& store, const Execution& e) {
  out << line_of(e) << "\n";
  print_properties(out, e.properties, 2);
  for (const auto& c : store.contexts_of_execution(e.id)) out << "  in " << line_of(c) << "\n";
  for (const auto& ev : store.events_of_execution(e.id)) {
    out << "  " << (ev.type == EventType::input ? "input" : "output") << (ev.path.empty() ? "" : " \"" + ev.path + "\"")
        << ": ";
    if (ev.type == EventType::input) {
      print_ancestry(out, store.ancestry(ev.artifact), 2);
    } else {
      out << line_of(*store.artifact(ev.artifact)) << "\n";
    }
  }
}

json::Value execution_json(const Store& store, const Execution& e) {
  json::Value inputs = json::Value::array(), outputs = json::Value::array();
  for (const auto& ev : store.events_of_execution(e.id)) {
    json::Value a = ev.type == EventType::input
                        ? ancestry_json(store.ancestry(ev.artifact))
                        : json::Value(json::Object{{"artifact", to_json(*store.artifact(ev.artifact))}});
    a.set("path", ev.path);
    (ev.type == EventType::input ? inputs : outputs).push(std::move(a));
  }
  return json::Value(json::Object{{"execution", to_json(e)},
                                  {"contexts", array_of(store.contexts_of_execution(e.id))},
                                  {"inputs", std::move(inputs)},
                                  {"outputs", std::move(outputs)}});
}

void show_context(std::ostream& out, const Store& store, const Context& c) {
  out << line_of(c) << "\n";
  print_properties(out, c.properties, 2);
  for (const auto& e : store.executions_in(c.id)) out << "  " << line_of(e) << "\n";
  for (const auto& a : store.artifacts_in(c.id)) out << "  " << line_of(a) << "\n";
}

// ---- verbs ----

struct Common {
  std::string store;
  bool json = false;
};

void add_common(options::Parser& parser, Common& c, bool json) {
  parser.add()("store", po::value(&c.store)->value_name("FILE"),
               "the lineage store (default: COHORT_LINEAGE, else ~/.local/share/cohort/lineage.db)");
  if (json) parser.add()("json", po::bool_switch(&c.json), "JSON for programs, with the same fields");
}

int cmd_show(const std::vector<std::string>& args) {
  Common c;
  options::Parser parser(
      {"lineage show",
       {"REF [--json] [--store FILE]"},
       std::string("What produced an artifact, from which inputs, up the chain: each execution\n"
                   "with its properties (parameters, job, restarts) and the contexts it ran in.\n"
                   "An execution shows its inputs' history and its outputs; a context what it holds.\n") +
           kRefHelp,
       {"cohort lineage show /scratch/run1/ckpt/step-00000100", "cohort lineage show execution/12 --json"}});
  add_common(parser, c, true);
  parser.operands(1);
  auto parsed = parser.parse(args);
  if (!parsed) return 0;
  if (parsed->operands.empty()) throw parser.usage_error("give what to show: an artifact's path, or REF");
  Store store = open_store(c.store);
  const Ref ref = resolve(store, parsed->operands[0]);
  if (ref.kind == Ref::artifact) {
    const Ancestry a = store.ancestry(ref.id);
    if (c.json)
      std::cout << json::write(ancestry_json(a), 2) << "\n";
    else
      print_ancestry(std::cout, a, 0);
  } else if (ref.kind == Ref::execution) {
    const Execution e = *store.execution(ref.id);
    if (c.json)
      std::cout << json::write(execution_json(store, e), 2) << "\n";
    else
      show_execution(std::cout, store, e);
  } else {
    const Context ctx = *store.context(ref.id);
    if (c.json) {
      std::cout << json::write(json::Value(json::Object{{"context", to_json(ctx)},
                                                        {"executions", array_of(store.executions_in(ref.id))},
                                                        {"artifacts", array_of(store.artifacts_in(ref.id))}}),
                               2)
                << "\n";
    } else {
      show_context(std::cout, store, ctx);
    }
  }
  return 0;
}

int cmd_list(const std::vector<std::string>& args) {
  Common c;
  std::string type;
  options::Parser parser({"lineage list",
                          {"[--type T] [--json] [--store FILE]"},
                          "The artifacts, executions and contexts recorded, oldest first; with --type only those of\n"
                          "that type (Model, Checkpoint, Dataset, Launch, Trial, PipelineTask, Experiment, Job, …).",
                          {"cohort lineage list --type Checkpoint", "cohort lineage list --type Trial --json"}});
  parser.add()("type", po::value(&type)->value_name("T"), "only objects of type T");
  add_common(parser, c, true);
  auto parsed = parser.parse(args);
  if (!parsed) return 0;
  Store store = open_store(c.store);
  const auto artifacts = store.artifacts(type);
  const auto executions = store.executions(type);
  const auto contexts = store.contexts(type);
  if (c.json) {
    std::cout << json::write(json::Value(json::Object{{"artifacts", array_of(artifacts)},
                                                      {"executions", array_of(executions)},
                                                      {"contexts", array_of(contexts)}}),
                             2)
              << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"REF", "TYPE", "NAME/URI", "STATE", "PROPERTIES"}};
  for (const auto& a : artifacts) {
    rows.push_back({"artifact/" + std::to_string(a.id), a.type, a.uri, "", properties_text(a.properties)});
  }
  for (const auto& e : executions) {
    rows.push_back({"execution/" + std::to_string(e.id), e.type, e.name, e.state, properties_text(e.properties)});
  }
  for (const auto& x : contexts) {
    rows.push_back({"context/" + std::to_string(x.id), x.type, x.name, "", properties_text(x.properties)});
  }
  if (rows.size() == 1) {
    std::cerr << "cohort: lineage: list: nothing" << (type.empty() ? "" : " of type " + type) << " in "
              << store.path().string() << "\n";
    return 0;
  }
  print_table(std::cout, rows);
  return 0;
}

// ---- graph ----

Graph graph_of(const Store& store, const Ref& ref) {
  Graph g;
  if (ref.kind == Ref::artifact) {
    g.add(store.ancestry(ref.id));
    g.title = "history of " + line_of(*store.artifact(ref.id));
  } else if (ref.kind == Ref::execution) {
    g.add_execution(store, *store.execution(ref.id));
    g.title = line_of(*store.execution(ref.id));
  } else {
    for (const auto& e : store.executions_in(ref.id)) g.add_execution(store, e);
    for (const auto& a : store.artifacts_in(ref.id)) g.artifacts.emplace(a.id, a);
    g.title = line_of(*store.context(ref.id));
  }
  return g;
}

int cmd_graph(const std::vector<std::string>& args) {
  Common c;
  std::string format = "dot", out_path;
  options::Parser parser({"lineage graph",
                          {"REF [--format dot|svg] [--out FILE] [--store FILE]"},
                          std::string("Draws an artifact's history, an execution with its inputs' history and its\n"
                                      "outputs, or everything in a context (a pipeline run, an experiment, a job):\n"
                                      "artifacts as notes, executions as boxes, arrows from inputs and to outputs.\n"
                                      "svg is drawn by Graphviz's dot.\n") +
                              kRefHelp,
                          {"cohort lineage graph /scratch/model.pt --format svg --out model.svg",
                           "cohort lineage graph context/3 | dot -Tpng > run.png"}});
  parser.add()("format", po::value(&format)->value_name("dot|svg"), "Graphviz's language, or an SVG drawn by dot")(
      "out,o", po::value(&out_path)->value_name("FILE"), "write there (atomically) instead of to stdout");
  add_common(parser, c, false);
  parser.operands(1);
  auto parsed = parser.parse(args);
  if (!parsed) return 0;
  if (format != "dot" && format != "svg") throw parser.usage_error("--format " + format + ": expected dot or svg");
  if (parsed->operands.empty()) throw parser.usage_error("give what to draw: an artifact's path, or REF");
  Store store = open_store(c.store);
  std::string text = to_dot(graph_of(store, resolve(store, parsed->operands[0])));
  if (format == "svg") text = to_svg(text);
  if (out_path.empty())
    std::cout << text;
  else
    write_file_atomically(out_path, text);
  return 0;
}

constexpr options::Subcommand kVerbs[] = {
    {"show", "REF [--json]", "what produced it, from which inputs, up the chain", &cmd_show},
    {"list", "[--type T] [--json]", "the artifacts, executions and contexts recorded", &cmd_list},
    {"graph", "REF [--format dot|svg]", "draw a history, an execution or a whole run", &cmd_graph},
};

}  // namespace

int lineage_command(const std::vector<std::string>& args) {
  options::Help help{"lineage",
                     {"<verb> [args]"},
                     {},
                     {"cohort lineage show /scratch/run1/ckpt/step-00000100", "cohort lineage list --type Trial"}};
  help.description =
      "ML Metadata for cohort: which data, which job and which parameters produced a model.\n"
      "cohort launch, cohort sweep, checkpoints and pipelines record into one SQLite file per\n"
      "user (COHORT_LINEAGE names another; COHORT_LINEAGE=off records nothing).";
  return options::dispatch({std::move(help), "verb", kVerbs}, args);
}

}  // namespace cohort::lineage
