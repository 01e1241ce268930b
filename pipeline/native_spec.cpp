// cohort's own pipeline YAML, for people without the KFP SDK:
//
//   name: train
//   params: {lr: "0.1", data: /scratch/data.csv}
//   steps:
//     prepare:
//       run: sh -c 'cp {{params.data}} {{outputs.dataset}}; wc -l <{{params.data}} >{{results.rows}}'
//       outputs: [dataset]
//       results: [rows]
//     train:
//       launch: [--max-restarts, "2", --, python3, train.py, --data, "{{steps.prepare.outputs.dataset}}"]
//       slurm: {nodes: 2, gpus: 4, time: "1:00:00"}
//
// Its placeholders are turned into KFP's, each reference becoming an input of the task, so
// that one checker and one runner serve both spellings.
#include "common/text.hpp"
#include "pipeline/placeholder.hpp"
#include "pipeline/spec_readers.hpp"

namespace cohort::pipeline {
namespace {

using yaml::Reader;

struct Step {
  const Reader& r;
  Task& task;
  const std::string& path;
};

void add_input(Task& t, const std::string& name, bool artifact, InputSource source) {
  if (!t.input(name, artifact)) t.inputs.push_back({name, artifact, std::move(source)});
}

// `{{params.P}}`, `{{steps.S.outputs.O}}` or `{{steps.S.results.R}}` as an input of the
// task, named as written; its KFP placeholder, or nothing when `inner` is none of these.
std::optional<std::string> reference(Task& t, const std::string& inner) {
  const auto parts = split(inner, '.');
  if (parts.size() == 2 && parts[0] == "params" && !parts[1].empty()) {
    add_input(t, inner, false, {InputSource::Kind::pipeline_parameter, std::string(parts[1]), "", ""});
    return input_parameter_placeholder(inner);
  }
  if (parts.size() == 4 && parts[0] == "steps" && (parts[2] == "outputs" || parts[2] == "results")) {
    const bool artifact = parts[2] == "outputs";
    add_input(t, inner, artifact,
              {artifact ? InputSource::Kind::task_artifact : InputSource::Kind::task_parameter, "",
               std::string(parts[1]), std::string(parts[3])});
    return artifact ? input_artifact_placeholder(inner) : input_parameter_placeholder(inner);
  }
  return std::nullopt;
}

// `text` with each of cohort's placeholders in KFP's spelling.
std::string translate(const Step& s, const std::string& text, const std::string& field) {
  std::string out;
  std::size_t from = 0;
  for (std::size_t at; (at = text.find("{{", from)) != std::string::npos;) {
    const std::size_t end = text.find("}}", at + 2);
    if (end == std::string::npos) break;
    const std::string inner = text.substr(at + 2, end - at - 2);
    std::optional<std::string> kfp = reference(s.task, inner);
    const auto parts = split(inner, '.');
    if (!kfp && parts.size() == 2 && parts[0] == "outputs") kfp = output_artifact_placeholder(std::string(parts[1]));
    if (!kfp && parts.size() == 2 && parts[0] == "results") kfp = output_parameter_placeholder(std::string(parts[1]));
    if (!kfp && parts.size() == 2 && parts[0] == "inputs") {
      const std::string name(parts[1]);
      const Input* in = s.task.input(name, true);
      if (!in) in = s.task.input(name, false);
      if (!in) s.r.fail(field, "{{" + inner + "}}: the step has no input '" + name + "' (give it under inputs:)");
      kfp = in->artifact ? input_artifact_placeholder(name) : input_parameter_placeholder(name);
    }
    if (!kfp && !inner.starts_with("$")) {
      s.r.fail(field, "{{" + inner + "}} names nothing: expected {{params.P}}, {{inputs.I}}, {{outputs.O}}, "
                      "{{results.R}}, {{steps.S.outputs.O}} or {{steps.S.results.R}}");
    }
    out += text.substr(from, at - from) + kfp.value_or("{{" + inner + "}}");
    from = end + 2;
  }
  return out + text.substr(from);
}

// `inputs: {NAME: VALUE}`: each value one reference, or a constant.
void read_inputs(const Step& s, const YAML::Node& n) {
  const std::string path = s.path + ".inputs";
  if (!n.IsMap()) s.r.fail(path, "must be a mapping of input names to values or references");
  for (const auto& kv : n) {
    const std::string name = kv.first.as<std::string>();
    const std::string text = value_text(kv.second);
    Task scratch;
    if (text.starts_with("{{") && text.ends_with("}}") && reference(scratch, text.substr(2, text.size() - 4))) {
      Input in = scratch.inputs.front();
      in.name = name;
      s.task.inputs.push_back(std::move(in));
    } else if (text.find("{{") != std::string::npos) {
      s.r.fail(Reader::join(path, name), "must be one reference ({{params.P}}, {{steps.S.outputs.O}}, "
                                         "{{steps.S.results.R}}) or a constant, not '" + text + "'");
    } else {
      s.task.inputs.push_back({name, false, {InputSource::Kind::constant, text, "", ""}});
    }
  }
}

// The command: run (a list, or a line for sh -c), or one of cohort's own commands.
std::vector<std::string> command_of(const Step& s, const YAML::Node& n) {
  int kinds = 0;
  for (const char* k : {"run", "launch", "sweep", "serve"}) kinds += n[k] ? 1 : 0;
  if (kinds != 1) s.r.fail(s.path, "needs exactly one of run, launch, sweep or serve");
  auto args = [&](const char* key) {
    return n[key].IsScalar() ? std::vector<std::string>{n[key].as<std::string>()}
                             : s.r.strings(n[key], s.path + "." + key);
  };
  if (n["run"]) {
    if (n["run"].IsScalar()) return {"sh", "-c", n["run"].as<std::string>()};
    return s.r.strings(n["run"], s.path + ".run");
  }
  std::vector<std::string> cmd;
  if (n["launch"]) cmd = {"cohort", "launch"};
  if (n["serve"]) cmd = {"cohort", "serve", "start"};
  const auto rest = args(n["launch"] ? "launch" : n["serve"] ? "serve" : "sweep");
  if (n["sweep"]) {
    // A sweep's trials run in the step's allocation; its experiment directory is the
    // step's output, for the steps after it to read.
    if (rest.size() != 1) s.r.fail(s.path + ".sweep", "must name one experiment file");
    s.task.output_artifacts.push_back("sweep");
    s.task.artifact_types["sweep"] = "Experiment";
    return {"cohort", "sweep", "run", rest[0], "--dir", "{{outputs.sweep}}"};
  }
  cmd.insert(cmd.end(), rest.begin(), rest.end());
  return cmd;
}

Resources read_slurm(const Reader& r, const YAML::Node& n, const std::string& path) {
  r.only(n, path, {"nodes", "ntasks", "cpus", "gpus", "mem", "time", "partition"});
  Resources res;
  if (n["nodes"]) res.nodes = static_cast<int>(r.integer(n["nodes"], path + ".nodes", 1, 100000));
  if (n["ntasks"]) res.ntasks = static_cast<int>(r.integer(n["ntasks"], path + ".ntasks", 1, 10000000));
  if (n["cpus"]) res.cpus = static_cast<int>(r.integer(n["cpus"], path + ".cpus", 1, 100000));
  if (n["gpus"]) res.gpus = static_cast<int>(r.integer(n["gpus"], path + ".gpus", 0, 100000));
  if (n["mem"]) res.mem = r.string(n["mem"], path + ".mem");
  if (n["time"]) res.time = r.string(n["time"], path + ".time");
  if (n["partition"]) res.partition = r.string(n["partition"], path + ".partition");
  for (const std::string& text : {res.mem, res.time, res.partition}) {
    for (char c : text) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != ':' && c != '-' && c != '_') {
        r.fail(path, "'" + text + "' is not a Slurm value (letters, digits, ':', '-', '_')");
      }
    }
  }
  return res;
}

Task read_step(const Reader& r, const std::string& name, const YAML::Node& n) {
  Task t;
  t.name = name;
  t.where = "steps." + name;
  const Step s{r, t, t.where};
  r.only(n, t.where, {"run", "launch", "sweep", "serve", "needs", "inputs", "outputs", "results", "slurm", "cache",
                      "retries", "env", "image"});
  if (n["outputs"] && n["outputs"].IsMap()) {  // {NAME: TYPE}: the artifact's type in the lineage store
    for (const auto& kv : n["outputs"]) {
      const std::string name = kv.first.as<std::string>();
      t.output_artifacts.push_back(name);
      t.artifact_types[name] = r.string(kv.second, t.where + ".outputs." + name);
    }
  } else if (n["outputs"]) {
    t.output_artifacts = r.strings(n["outputs"], t.where + ".outputs");
  }
  if (n["results"]) t.output_parameters = r.strings(n["results"], t.where + ".results");
  if (n["inputs"]) read_inputs(s, n["inputs"]);
  const auto raw = command_of(s, n);
  for (std::size_t i = 0; i < raw.size(); ++i) t.command.push_back(translate(s, raw[i], Reader::at(t.where + ".run", i)));
  if (n["needs"]) t.after = r.strings(n["needs"], t.where + ".needs");
  if (n["slurm"]) t.resources = read_slurm(r, n["slurm"], t.where + ".slurm");
  if (n["cache"]) t.cache = n["cache"].as<bool>(true);
  if (n["retries"]) t.max_retries = static_cast<int>(r.integer(n["retries"], t.where + ".retries", 0, 100));
  if (n["image"]) t.image = r.string(n["image"], t.where + ".image");
  if (n["env"]) {
    if (!n["env"].IsMap()) r.fail(t.where + ".env", "must be a mapping of names to values");
    for (const auto& kv : n["env"]) {
      const std::string name = kv.first.as<std::string>();
      t.env.emplace_back(name, translate(s, value_text(kv.second), Reader::join(t.where + ".env", name)));
    }
  }
  return t;
}

}  // namespace

Pipeline read_native(const Reader& r, const YAML::Node& doc) {
  r.only(doc, "", {"name", "description", "params", "steps"});
  Pipeline p;
  p.format = "cohort";
  if (!doc["name"]) r.fail("name", "is missing: name the pipeline");
  p.name = r.string(doc["name"], "name");
  r.check_object_name(p.name, "name", "a pipeline's");
  if (const YAML::Node params = doc["params"]) {
    if (!params.IsMap()) r.fail("params", "must be a mapping of names to default values (null: none)");
    for (const auto& kv : params) {
      Parameter q{kv.first.as<std::string>(), std::nullopt};
      if (!kv.second.IsNull()) q.default_value = value_text(kv.second);
      p.parameters.push_back(std::move(q));
    }
  }
  if (!doc["steps"] || !doc["steps"].IsMap()) r.fail("steps", "must be a mapping of step names to steps");
  for (const auto& kv : doc["steps"]) p.tasks.push_back(read_step(r, kv.first.as<std::string>(), kv.second));
  return p;
}

}  // namespace cohort::pipeline
