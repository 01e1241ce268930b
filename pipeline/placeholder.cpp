#include "pipeline/placeholder.hpp"

#include "common/error.hpp"

namespace cohort::pipeline {
namespace {

struct Form {
  Placeholder::Kind kind;
  std::string_view head, tail;
};

// KFP writes the name between single quotes; uri and path name the same file here, where
// artifacts live on a shared file system rather than in object storage.
constexpr Form kForms[] = {
    {Placeholder::Kind::input_parameter, "$.inputs.parameters['", "']"},
    {Placeholder::Kind::input_artifact, "$.inputs.artifacts['", "'].path"},
    {Placeholder::Kind::input_artifact, "$.inputs.artifacts['", "'].uri"},
    {Placeholder::Kind::output_artifact, "$.outputs.artifacts['", "'].path"},
    {Placeholder::Kind::output_artifact, "$.outputs.artifacts['", "'].uri"},
    {Placeholder::Kind::output_parameter, "$.outputs.parameters['", "'].output_file"},
};

bool read_form(std::string_view inner, Placeholder& out) {
  for (const auto& f : kForms) {
    if (inner.size() > f.head.size() + f.tail.size() && inner.starts_with(f.head) && inner.ends_with(f.tail)) {
      std::string_view name = inner.substr(f.head.size(), inner.size() - f.head.size() - f.tail.size());
      if (name.find('\'') != std::string_view::npos) continue;
      out.kind = f.kind;
      out.name = std::string(name);
      return true;
    }
  }
  return false;
}

}  // namespace

std::vector<Placeholder> placeholders_in(const std::string& arg, const std::function<void(const std::string&)>& fail) {
  std::vector<Placeholder> out;
  for (std::size_t at = 0; (at = arg.find("{{", at)) != std::string::npos;) {
    const std::size_t end = arg.find("}}", at + 2);
    if (end == std::string::npos) break;  // braces without a close are the command's own text
    std::string_view inner = std::string_view(arg).substr(at + 2, end - at - 2);
    Placeholder p;
    p.text = arg.substr(at, end + 2 - at);
    if (inner == "$") {
      fail(p.text + ": the executor input of KFP's Python components is not supported yet (use a container "
                    "component, whose command takes its inputs as placeholders)");
    } else if (inner.starts_with("$.") && !read_form(inner, p)) {
      fail(p.text + ": not a placeholder cohort knows (expected {{$.inputs.parameters['k']}}, "
                    "{{$.inputs.artifacts['k'].path}}, {{$.outputs.artifacts['k'].path}} or "
                    "{{$.outputs.parameters['k'].output_file}})");
    } else if (inner.starts_with("$.")) {
      out.push_back(std::move(p));
    }
    at = end + 2;
  }
  return out;
}

std::string resolve(const std::string& arg, const Bindings& bindings) {
  const auto found = placeholders_in(arg, [](const std::string& why) { throw input_error(why); });
  if (found.empty()) return arg;
  std::string out;
  std::size_t from = 0;
  for (const auto& p : found) {
    const std::size_t at = arg.find(p.text, from);
    const std::map<std::string, std::string>* map = nullptr;
    switch (p.kind) {
      case Placeholder::Kind::input_parameter: map = &bindings.input_parameters; break;
      case Placeholder::Kind::input_artifact: map = &bindings.input_artifacts; break;
      case Placeholder::Kind::output_artifact: map = &bindings.output_artifacts; break;
      case Placeholder::Kind::output_parameter: map = &bindings.output_parameters; break;
    }
    const auto it = map->find(p.name);
    if (it == map->end()) throw Error(p.text + ": nothing is bound to '" + p.name + "'");
    out += arg.substr(from, at - from) + it->second;
    from = at + p.text.size();
  }
  return out + arg.substr(from);
}

std::string input_parameter_placeholder(const std::string& name) { return "{{$.inputs.parameters['" + name + "']}}"; }
std::string input_artifact_placeholder(const std::string& name) { return "{{$.inputs.artifacts['" + name + "'].path}}"; }
std::string output_artifact_placeholder(const std::string& name) { return "{{$.outputs.artifacts['" + name + "'].path}}"; }
std::string output_parameter_placeholder(const std::string& name) {
  return "{{$.outputs.parameters['" + name + "'].output_file}}";
}

}  // namespace cohort::pipeline
