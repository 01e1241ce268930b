// KFP v2's compiled IR (PipelineSpec as YAML), as kfp.compiler.Compiler writes it. What
// cohort does not run yet — conditions, loops, nested pipelines, importers, exit handlers —
// is refused by name rather than run wrongly.
#include <cctype>
#include <cmath>

#include "common/text.hpp"
#include "pipeline/spec_readers.hpp"

namespace cohort::pipeline {
namespace {

using yaml::Reader;

struct Doc {
  const Reader& r;
  YAML::Node components;
  YAML::Node executors;
  Pipeline& pipeline;
};

// KFP writes integer defaults as doubles ("2.0"); a command line wants "2".
std::string parameter_value(const YAML::Node& value, const YAML::Node& definition) {
  std::string text = value_text(value);
  if (definition && definition["parameterType"] && definition["parameterType"].as<std::string>() == "NUMBER_INTEGER") {
    char* end = nullptr;
    const double d = std::strtod(text.c_str(), &end);
    if (end && *end == '\0' && !text.empty() && std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) {
      text = std::to_string(static_cast<long long>(d));
    }
  }
  return text;
}

void read_definitions(const Reader& r, const YAML::Node& defs, const std::string& path) {
  r.only(defs, path, {"parameters", "artifacts"});
  for (const char* kind : {"parameters", "artifacts"}) {
    if (!defs[kind]) continue;
    const std::string p = Reader::join(path, kind);
    if (!defs[kind].IsMap()) r.fail(p, "must be a mapping of names to definitions");
    for (const auto& kv : defs[kind]) {
      r.only(kv.second, Reader::join(p, kv.first.as<std::string>()),
             {"parameterType", "defaultValue", "isOptional", "description", "artifactType", "isArtifactList"});
    }
  }
}

std::vector<std::string> keys(const YAML::Node& map) {
  std::vector<std::string> out;
  if (map && map.IsMap()) {
    for (const auto& kv : map) out.push_back(kv.first.as<std::string>());
  }
  return out;
}

// Kubernetes' quantities as KFP 2.x writes them: CPUs "4" or "500m", memory "16G" or "16Gi".
int cpus_of(const Reader& r, const std::string& text, const std::string& path) {
  const bool milli = !text.empty() && text.back() == 'm';
  const double v = r.number_text(milli ? text.substr(0, text.size() - 1) : text, path);
  return static_cast<int>(std::ceil(milli ? v / 1000 : v));
}

std::string memory_of(const Reader& r, const std::string& text, const std::string& path) {
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  std::string unit = text.substr(digits);
  if (unit.size() == 2 && unit[1] == 'i') unit.pop_back();
  if (digits == 0 || digits > 12 || (unit.size() > 1) || (unit.size() == 1 && std::string("KMGT").find(unit) == std::string::npos)) {
    r.fail(path, "'" + text + "' is not a memory size (e.g. 512M, 16G, 16Gi)");
  }
  return text.substr(0, digits) + (unit.empty() ? "" : unit);
}

Resources read_resources(const Reader& r, const YAML::Node& n, const std::string& path) {
  r.only(n, path, {"cpuLimit", "cpuRequest", "memoryLimit", "memoryRequest", "accelerator", "resourceCpuLimit",
                   "resourceCpuRequest", "resourceMemoryLimit", "resourceMemoryRequest"});
  Resources res;
  for (const char* k : {"cpuRequest", "cpuLimit"}) {
    if (n[k]) res.cpus = static_cast<int>(std::ceil(r.number(n[k], Reader::join(path, k))));
  }
  for (const char* k : {"resourceCpuRequest", "resourceCpuLimit"}) {
    if (n[k]) res.cpus = cpus_of(r, r.string(n[k], Reader::join(path, k)), Reader::join(path, k));
  }
  for (const char* k : {"memoryRequest", "memoryLimit"}) {  // KFP's unit is the gigabyte
    if (n[k]) res.mem = std::to_string(static_cast<long long>(std::ceil(r.number(n[k], Reader::join(path, k)) * 1024))) + "M";
  }
  for (const char* k : {"resourceMemoryRequest", "resourceMemoryLimit"}) {
    if (n[k]) res.mem = memory_of(r, r.string(n[k], Reader::join(path, k)), Reader::join(path, k));
  }
  if (n["accelerator"]) {
    const std::string p = Reader::join(path, "accelerator");
    r.only(n["accelerator"], p, {"type", "count", "resourceType", "resourceCount"});
    for (const char* k : {"count", "resourceCount"}) {
      if (n["accelerator"][k]) res.gpus = static_cast<int>(r.integer(n["accelerator"][k], Reader::join(p, k), 0, 1024));
    }
  }
  return res;
}

// The executor's container: command, image, environment, resources.
void read_container(const Doc& d, Task& t, const std::string& label, const std::string& path) {
  const Reader& r = d.r;
  const std::string epath = "deploymentSpec.executors." + label;
  const YAML::Node exec = d.executors[label];
  if (!exec) r.fail(path + ".componentRef", "its component's executor '" + label + "' is not in deploymentSpec.executors");
  r.only(exec, epath, {"container", "importer", "resolver", "customJob"});
  if (!exec["container"]) {
    r.fail(epath, "only container executors run on cohort; importers, resolvers and custom jobs are not supported yet");
  }
  const YAML::Node c = exec["container"];
  const std::string cpath = epath + ".container";
  r.only(c, cpath, {"image", "command", "args", "env", "resources"});
  t.command = r.command_and_args(c, cpath);
  if (t.command.empty()) r.fail(cpath, "gives neither command nor args: nothing to run");
  if (c["image"]) t.image = r.string(c["image"], cpath + ".image");
  if (c["env"]) {
    if (!c["env"].IsSequence()) r.fail(cpath + ".env", "must be a list of {name, value}");
    for (std::size_t i = 0; i < c["env"].size(); ++i) {
      const std::string p = Reader::at(cpath + ".env", i);
      r.only(c["env"][i], p, {"name", "value"});
      t.env.emplace_back(r.string(c["env"][i]["name"], p + ".name"),
                         c["env"][i]["value"] ? r.string(c["env"][i]["value"], p + ".value") : "");
    }
  }
  if (c["resources"]) t.resources = read_resources(r, c["resources"], cpath + ".resources");
}

InputSource parameter_source(const Reader& r, const YAML::Node& n, const YAML::Node& definition, const std::string& path) {
  r.only(n, path, {"componentInputParameter", "runtimeValue", "taskOutputParameter", "taskFinalStatus",
                   "parameterExpressionSelector"});
  InputSource s;
  if (n["componentInputParameter"]) {
    s.kind = InputSource::Kind::pipeline_parameter;
    s.value = r.string(n["componentInputParameter"], path + ".componentInputParameter");
  } else if (n["runtimeValue"]) {
    r.only(n["runtimeValue"], path + ".runtimeValue", {"constant"});
    s.value = parameter_value(n["runtimeValue"]["constant"], definition);
  } else if (n["taskOutputParameter"]) {
    const std::string p = path + ".taskOutputParameter";
    r.only(n["taskOutputParameter"], p, {"producerTask", "outputParameterKey"});
    s.kind = InputSource::Kind::task_parameter;
    s.task = r.string(n["taskOutputParameter"]["producerTask"], p + ".producerTask");
    s.output = r.string(n["taskOutputParameter"]["outputParameterKey"], p + ".outputParameterKey");
  } else {
    r.fail(path, "task final status and parameter expressions are not supported yet");
  }
  return s;
}

InputSource artifact_source(const Reader& r, const YAML::Node& n, const std::string& path) {
  r.only(n, path, {"taskOutputArtifact", "componentInputArtifact"});
  if (!n["taskOutputArtifact"]) r.fail(path, "pipeline input artifacts (componentInputArtifact) are not supported yet");
  const std::string p = path + ".taskOutputArtifact";
  r.only(n["taskOutputArtifact"], p, {"producerTask", "outputArtifactKey"});
  InputSource s;
  s.kind = InputSource::Kind::task_artifact;
  s.task = r.string(n["taskOutputArtifact"]["producerTask"], p + ".producerTask");
  s.output = r.string(n["taskOutputArtifact"]["outputArtifactKey"], p + ".outputArtifactKey");
  return s;
}

// The task's bound inputs, then the component's unbound ones that have defaults.
void read_inputs(const Reader& r, Task& t, const YAML::Node& inputs, const YAML::Node& component,
                 const std::string& path, const std::string& component_name) {
  const YAML::Node defs = component["inputDefinitions"];
  if (inputs) r.only(inputs, path + ".inputs", {"parameters", "artifacts"});
  for (const bool artifact : {false, true}) {
    const char* kind = artifact ? "artifacts" : "parameters";
    const YAML::Node declared = defs ? defs[kind] : YAML::Node();
    const YAML::Node given = inputs ? inputs[kind] : YAML::Node();
    for (const auto& name : keys(given)) {
      const std::string p = path + ".inputs." + kind + "." + name;
      if (!declared || !declared[name]) {
        r.fail(p, "component '" + component_name + "' has no input " + (artifact ? "artifact" : "parameter") + " '" +
                      name + "' (it has: " + (keys(declared).empty() ? "none" : join(keys(declared), ", ")) + ")");
      }
      t.inputs.push_back({name, artifact,
                          artifact ? artifact_source(r, given[name], p) : parameter_source(r, given[name], declared[name], p)});
    }
    for (const auto& name : keys(declared)) {
      if (given && given[name]) continue;
      const YAML::Node def = declared[name];
      if (def["defaultValue"]) {
        t.inputs.push_back({name, artifact, {InputSource::Kind::constant, parameter_value(def["defaultValue"], def), "", ""}});
      } else if (!(def["isOptional"] && def["isOptional"].as<bool>())) {
        r.fail(path + ".inputs." + kind, "component '" + component_name + "' needs input '" + name + "', which the task does not give");
      }
    }
  }
}

Task read_task(const Doc& d, const std::string& name, const YAML::Node& n) {
  const Reader& r = d.r;
  const std::string path = "root.dag.tasks." + name;
  r.only(n, path, {"componentRef", "dependentTasks", "inputs", "taskInfo", "cachingOptions", "retryPolicy",
                   "triggerPolicy", "parameterIterator", "artifactIterator", "iteratorPolicy"});
  if (n["triggerPolicy"]) r.fail(path + ".triggerPolicy", "conditions (dsl.If, dsl.Condition) are not supported yet");
  for (const char* loop : {"parameterIterator", "artifactIterator", "iteratorPolicy"}) {
    if (n[loop]) r.fail(path + "." + loop, "loops (dsl.ParallelFor) are not supported yet");
  }
  Task t;
  t.name = name;
  t.where = path;
  if (!n["componentRef"]) r.fail(path, "has no componentRef");
  r.only(n["componentRef"], path + ".componentRef", {"name"});
  const std::string cname = r.string(n["componentRef"]["name"], path + ".componentRef.name");
  const YAML::Node component = d.components ? d.components[cname] : YAML::Node();
  if (!component) {
    r.fail(path + ".componentRef.name", "no component '" + cname + "' (components: " + join(keys(d.components), ", ") + ")");
  }
  const std::string cpath = "components." + cname;
  r.only(component, cpath, {"executorLabel", "inputDefinitions", "outputDefinitions", "dag"});
  if (component["dag"]) {
    r.fail(path + ".componentRef", "component '" + cname + "' is a pipeline of its own: nested DAGs (pipelines used as "
                                   "components, exit handlers) are not supported yet");
  }
  if (component["inputDefinitions"]) read_definitions(r, component["inputDefinitions"], cpath + ".inputDefinitions");
  if (component["outputDefinitions"]) read_definitions(r, component["outputDefinitions"], cpath + ".outputDefinitions");
  if (!component["executorLabel"]) r.fail(cpath, "has no executorLabel");
  read_container(d, t, r.string(component["executorLabel"], cpath + ".executorLabel"), path);
  read_inputs(r, t, n["inputs"], component, path, cname);
  if (const YAML::Node outs = component["outputDefinitions"]) {
    t.output_parameters = keys(outs["parameters"]);
    t.output_artifacts = keys(outs["artifacts"]);
    for (const auto& a : t.output_artifacts) {
      const YAML::Node title = outs["artifacts"][a]["artifactType"] ? outs["artifacts"][a]["artifactType"]["schemaTitle"] : YAML::Node();
      if (!title || !title.IsScalar()) continue;
      const std::string s = title.as<std::string>();  // "system.Dataset", "google.VertexModel"
      t.artifact_types[a] = s.substr(s.rfind('.') == std::string::npos ? 0 : s.rfind('.') + 1);
    }
  }
  if (n["dependentTasks"]) t.after = r.strings(n["dependentTasks"], path + ".dependentTasks");
  if (n["taskInfo"]) r.only(n["taskInfo"], path + ".taskInfo", {"name"});
  if (const YAML::Node c = n["cachingOptions"]) {
    r.only(c, path + ".cachingOptions", {"enableCache", "cacheKey"});
    // Protocol buffers leave a false out: the compiler writes `{}` for caching turned off.
    t.cache = c["enableCache"] && c["enableCache"].as<bool>(false);
  }
  if (const YAML::Node rp = n["retryPolicy"]) {
    r.only(rp, path + ".retryPolicy", {"maxRetryCount", "backoffDuration", "backoffFactor", "backoffMaxDuration"});
    if (rp["maxRetryCount"]) t.max_retries = static_cast<int>(r.integer(rp["maxRetryCount"], path + ".retryPolicy.maxRetryCount", 0, 100));
    if (rp["backoffDuration"] || rp["backoffFactor"]) {
      d.pipeline.notes.push_back(name + ": retryPolicy's backoff is Slurm's own requeue delay here");
    }
  }
  return t;
}

void read_root(const Doc& d, const YAML::Node& root) {
  const Reader& r = d.r;
  r.only(root, "root", {"dag", "inputDefinitions", "outputDefinitions"});
  if (root["outputDefinitions"]) d.pipeline.notes.push_back("the pipeline's own outputs are not collected; its tasks' are");
  if (const YAML::Node defs = root["inputDefinitions"]) {
    read_definitions(r, defs, "root.inputDefinitions");
    if (defs["artifacts"]) r.fail("root.inputDefinitions.artifacts", "pipeline input artifacts are not supported yet");
    for (const auto& name : keys(defs["parameters"])) {
      const YAML::Node def = defs["parameters"][name];
      Parameter p{name, std::nullopt};
      if (def["defaultValue"]) p.default_value = parameter_value(def["defaultValue"], def);
      else if (def["isOptional"] && def["isOptional"].as<bool>()) p.default_value = "";
      d.pipeline.parameters.push_back(std::move(p));
    }
  }
  if (!root["dag"]) r.fail("root", "has no dag");
  r.only(root["dag"], "root.dag", {"tasks", "outputs"});
  const YAML::Node tasks = root["dag"]["tasks"];
  if (!tasks || !tasks.IsMap()) r.fail("root.dag.tasks", "must be a mapping of task names to tasks");
  for (const auto& kv : tasks) {
    d.pipeline.tasks.push_back(read_task(d, kv.first.as<std::string>(), kv.second));
  }
}

}  // namespace

Pipeline read_kfp(const Reader& r, const YAML::Node& doc) {
  r.only(doc, "", {"components", "deploymentSpec", "pipelineInfo", "root", "schemaVersion", "sdkVersion",
                   "defaultPipelineRoot", "platforms"});
  if (doc["platforms"]) r.fail("platforms", "platform-specific settings (kfp-kubernetes) are not supported yet");
  Pipeline p;
  p.format = "kfp";
  if (!doc["pipelineInfo"]) r.fail("pipelineInfo", "is missing: the pipeline's name goes there");
  r.only(doc["pipelineInfo"], "pipelineInfo", {"name", "description", "displayName"});
  p.name = r.string(doc["pipelineInfo"]["name"], "pipelineInfo.name");
  r.check_object_name(p.name, "pipelineInfo.name", "a pipeline's");
  if (!doc["deploymentSpec"]) r.fail("deploymentSpec", "is missing: the executors that run the tasks go there");
  r.only(doc["deploymentSpec"], "deploymentSpec", {"executors"});
  if (!doc["root"]) r.fail("root", "is missing: the pipeline's DAG goes there");
  const Doc d{r, doc["components"], doc["deploymentSpec"]["executors"], p};
  read_root(d, doc["root"]);
  return p;
}

}  // namespace cohort::pipeline
