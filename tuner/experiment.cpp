#include "tuner/experiment.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <set>

#include "common/error.hpp"
#include "common/process.hpp"
#include "common/text.hpp"
#include "common/yaml_reader.hpp"
#include "launcher/job_spec.hpp"
#include "tuner/metrics.hpp"
#include "tuner/sampler.hpp"
#include "tuner/stopper.hpp"

namespace cohort::tuner {
namespace {

using Reader = yaml::Reader;

std::vector<Setting> read_settings(const Reader& r, const YAML::Node& n, const std::string& path) {
  if (!n.IsSequence()) r.fail(path, "must be a list of {name, value}");
  std::vector<Setting> out;
  for (size_t i = 0; i < n.size(); ++i) {
    std::string p = Reader::at(path, i);
    r.only(n[i], p, {"name", "value"});
    if (!n[i]["name"]) r.fail(p, "needs a name");
    Setting s{r.string(n[i]["name"], p + ".name"), n[i]["value"] ? r.string(n[i]["value"], p + ".value") : ""};
    for (const auto& seen : out) {
      if (seen.name == s.name) r.fail(p + ".name", "'" + s.name + "' is given twice");
    }
    out.push_back(std::move(s));
  }
  return out;
}

constexpr long long kMostValues = 1'000'000'000;

// Names end up in environment variables, journal records and messages: long enough for any
// real name, short enough that none of them balloons.
constexpr size_t kLongestName = 256;
constexpr size_t kLongestTime = 32;

void check_name_length(const Reader& r, const std::string& name, const std::string& path) {
  if (name.size() > kLongestName) {
    r.fail(path, std::to_string(name.size()) + " characters; a name has at most " + std::to_string(kLongestName));
  }
}

// A letter or '_', then letters, digits, '_', '.' or '-'.
bool is_parameter_name(std::string_view name) {
  auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (name.empty() || !letter(name[0])) return false;
  return std::all_of(name.begin() + 1, name.end(),
                     [&](char c) { return letter(c) || (c >= '0' && c <= '9') || c == '.' || c == '-'; });
}

// Slurm's time limits: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS; sbatch
// itself judges the values.
bool is_slurm_time(std::string_view text) {
  auto digits = [&](size_t& at) {
    const size_t start = at;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9') ++at;
    return at > start;
  };
  size_t at = 0;
  if (!digits(at)) return false;
  if (at < text.size() && text[at] == '-') {
    ++at;
    if (!digits(at)) return false;
  }
  for (int colons = 0; at < text.size() && colons < 2; ++colons) {
    if (text[at] != ':') return false;
    ++at;
    if (!digits(at)) return false;
  }
  return at == text.size();
}

// The feasibleSpace of a double or int parameter (`type` as written): min, max, step and
// distribution.
void read_range(const Reader& r, const YAML::Node& fs, const std::string& fpath, const std::string& type, Parameter& p) {
  if (fs["list"]) r.fail(fpath + ".list", "a " + type + " parameter takes min and max, not a list");
  if (!fs["min"] || !fs["max"]) r.fail(fpath, "a " + type + " parameter needs min and max");
  if (p.type == ParameterType::int_) {
    // Samplers compute on doubles: past 2^53 neighbouring integers become one value.
    constexpr long long kExact = 1LL << 53;
    p.min = static_cast<double>(r.integer(fs["min"], fpath + ".min", -kExact, kExact));
    p.max = static_cast<double>(r.integer(fs["max"], fpath + ".max", -kExact, kExact));
    if (fs["step"]) p.step = static_cast<double>(r.integer(fs["step"], fpath + ".step", -kExact, kExact));
  } else {
    p.min = r.number(fs["min"], fpath + ".min");
    p.max = r.number(fs["max"], fpath + ".max");
    if (fs["step"]) p.step = r.number(fs["step"], fpath + ".step");
  }
  auto text = [&](const char* key) { return fs[key].as<std::string>(); };
  if (p.min > p.max) r.fail(fpath, "min (" + text("min") + ") is greater than max (" + text("max") + ")");
  if (p.step && *p.step <= 0) r.fail(fpath + ".step", "must be positive (got " + text("step") + ")");
  if (!std::isfinite(p.max - p.min)) {
    r.fail(fpath, "min (" + text("min") + ") to max (" + text("max") + ") is wider than a double holds: narrow the range");
  }
  // Grid search enumerates the values and samplers round to them: keep their count a
  // number that arithmetic on it can hold.
  if (p.type == ParameterType::int_ || p.step) {
    const double values = std::floor((p.max - p.min) / p.step.value_or(1.0)) + 1;
    if (!(values <= kMostValues)) {
      r.fail(p.step ? fpath + ".step" : fpath, "min..max" + std::string(p.step ? " in these steps" : "") +
                                                   " holds more than " + std::to_string(kMostValues) +
                                                   " values: narrow the range or take a larger step");
    }
  }
  if (fs["distribution"]) {
    std::string d = r.string(fs["distribution"], fpath + ".distribution");
    if (d == "uniform") p.distribution = Distribution::uniform;
    else if (d == "logUniform") p.distribution = Distribution::log_uniform;
    else if (d == "normal") p.distribution = Distribution::normal;
    else if (d == "logNormal") p.distribution = Distribution::log_normal;
    else r.fail(fpath + ".distribution", "'" + d + "' (expected uniform, logUniform, normal or logNormal)");
  }
  if (p.log_scale() && p.min <= 0) {
    r.fail(fpath + ".min", "a " + text("distribution") + " distribution needs min > 0 (got " + text("min") + ")");
  }
  if (p.distribution == Distribution::log_uniform && p.step) {
    r.fail(fpath + ".step", "a logUniform distribution takes no step");
  }
}

// The feasibleSpace of a discrete or categorical parameter (`type` as written): its list.
void read_list(const Reader& r, const YAML::Node& fs, const std::string& fpath, const std::string& type, Parameter& p) {
  for (const char* key : {"min", "max", "step", "distribution"}) {
    if (fs[key]) r.fail(fpath + "." + key, "a " + type + " parameter takes a list, not " + key);
  }
  if (!fs["list"]) r.fail(fpath, "a " + type + " parameter needs a list of values");
  p.list = r.strings(fs["list"], fpath + ".list");
  if (p.list.empty()) r.fail(fpath + ".list", "is empty: give at least one value");
  std::set<std::string> seen;
  for (size_t i = 0; i < p.list.size(); ++i) {
    if (!seen.insert(p.list[i]).second) r.fail(Reader::at(fpath + ".list", i), "'" + p.list[i] + "' is listed twice");
    if (p.type == ParameterType::discrete) r.number_text(p.list[i], Reader::at(fpath + ".list", i));
  }
}

Parameter read_parameter(const Reader& r, const YAML::Node& n, const std::string& path) {
  r.only(n, path, {"name", "parameterType", "feasibleSpace"});
  Parameter p;
  if (!n["name"]) r.fail(path, "needs a name");
  p.name = r.string(n["name"], path + ".name");
  check_name_length(r, p.name, path + ".name");
  if (!is_parameter_name(p.name)) {
    r.fail(path + ".name", "'" + p.name + "' must start with a letter and hold letters, digits, '_', '.' or '-'");
  }
  if (!n["parameterType"]) r.fail(path, "needs a parameterType (double, int, discrete or categorical)");
  std::string type = r.string(n["parameterType"], path + ".parameterType");
  if (type == "double") p.type = ParameterType::double_;
  else if (type == "int") p.type = ParameterType::int_;
  else if (type == "discrete") p.type = ParameterType::discrete;
  else if (type == "categorical") p.type = ParameterType::categorical;
  else r.fail(path + ".parameterType", "'" + type + "' (expected double, int, discrete or categorical)");

  const std::string fpath = path + ".feasibleSpace";
  const YAML::Node fs = n["feasibleSpace"];
  if (!fs) r.fail(path, "needs a feasibleSpace");
  r.only(fs, fpath, {"min", "max", "step", "list", "distribution"});
  if (p.type == ParameterType::double_ || p.type == ParameterType::int_) read_range(r, fs, fpath, type, p);
  else read_list(r, fs, fpath, type, p);
  return p;
}

// A container's resource limits as a trial's resources: CPUs (rounded up) per task and GPUs.
// Memory is left to the partition's default, as an array task's request has no per-trial
// memory field.
void read_container_limits(const Reader& r, const YAML::Node& container, const std::string& path, TrialResources& res) {
  const YAML::Node resources = container["resources"];
  if (!resources) return;
  r.only(resources, path + ".resources", {"limits", "requests"});
  const YAML::Node limits = resources["limits"] ? resources["limits"] : resources["requests"];
  if (!limits) return;
  const std::string lpath = path + ".resources." + (resources["limits"] ? "limits" : "requests");
  if (!limits.IsMap()) r.fail(lpath, "must be a mapping of resource names to quantities (cpu: 4, nvidia.com/gpu: 1)");
  for (const auto& kv : limits) {
    const auto key = kv.first.as<std::string>();
    if (key == "cpu") res.cpus_per_task = r.cpus(kv.second, lpath + ".cpu", 1, 4096);
    else if (key.find("gpu") != std::string::npos) res.gpus = static_cast<int>(r.integer(kv.second, lpath + "." + key, 0, 64));
    else if (key == "memory") r.memory(kv.second, lpath + ".memory");
    else r.fail(lpath + "." + key, "unknown resource (cohort understands cpu, memory and */gpu)");
  }
}

// The container Katib runs the trial in: the one named `primary`, else the first.
std::pair<YAML::Node, std::string> trial_container(const Reader& r, const YAML::Node& containers, const std::string& path,
                                                   const std::string& primary) {
  const YAML::Node first = r.first_container(containers, path);
  if (primary.empty()) return {first, path + "[0]"};
  for (size_t i = 0; i < containers.size(); ++i) {
    const YAML::Node c = containers[i];
    if (c.IsMap() && c["name"] && c["name"].IsScalar() && c["name"].as<std::string>() == primary) return {c, Reader::at(path, i)};
  }
  r.fail(path, "no container is named '" + primary + "', the trialTemplate's primaryContainerName");
}

// A Kubeflow job as the trial, as Katib runs one through the Training Operator: `cohort
// launch` runs the spec (its `${trialParameters...}` filled in like a command's) in the
// trial's array task, every role packed into its one plain allocation (an array task
// cannot be a heterogeneous job), a task per replica of the roles' shared shape.
void read_job_trial(const Reader& r, const YAML::Node& n, const std::string& path, Experiment& exp) {
  YAML::Emitter out;
  out << n;
  launcher::JobSpec job;
  try {
    job = launcher::parse_job_spec(out.c_str(), path);
  } catch (const Error& e) {
    throw input_error(r.source() + ": " + e.what());
  }
  const bool mpi = job.kind == launcher::JobKind::mpi;
  if (!mpi && !launcher::packable(job)) {
    r.fail(path, "its roles ask for different CPUs, GPUs or memory (or a role for nodes of its own); a trial runs in "
                 "one array task, which cannot be a heterogeneous job: give every role the same resources");
  }
  const launcher::Role& shape = mpi ? *job.find("worker") : job.roles.front();
  exp.resources.nodes = mpi ? shape.resources.nodes : 0;
  exp.resources.ntasks = mpi ? shape.replicas : job.world_size();
  exp.resources.cpus_per_task = shape.resources.cpus;
  exp.resources.gpus = shape.resources.gpus * exp.resources.ntasks;
  exp.command = {cohort_executable(), "launch", "--spec-yaml", out.c_str()};
  exp.metrics_from_rank_0 = !mpi;
}

// Kubernetes Job: spec.template.spec.containers[0].command + args, and its limits; or a
// Kubeflow job (above).
void read_trial_spec(const Reader& r, const YAML::Node& n, const std::string& path, Experiment& exp,
                     const std::string& primary) {
  if (!n.IsMap()) r.fail(path, "must be a Kubernetes Job");
  const std::string kind = n["kind"] ? r.string(n["kind"], path + ".kind") : "Job";
  if (kind == "PyTorchJob" || kind == "TFJob" || kind == "MPIJob") return read_job_trial(r, n, path, exp);
  if (kind != "Job") {
    r.fail(path + ".kind", "'" + kind + "' (cohort reads a Kubernetes Job, a PyTorchJob, a TFJob or an MPIJob, or a command)");
  }
  const std::string cpath = path + ".spec.template.spec.containers";
  const auto [c, where] = trial_container(r, n["spec"]["template"]["spec"]["containers"], cpath, primary);
  exp.command = r.command_and_args(c, where);
  if (exp.command.empty()) r.fail(where, "has no command or args");
  read_container_limits(r, c, where, exp.resources);
}

TrialResources read_resources(const Reader& r, const YAML::Node& n, const std::string& path) {
  r.only(n, path, {"nodes", "ntasks", "cpusPerTask", "gpus", "time"});
  TrialResources res;
  if (n["nodes"]) res.nodes = r.count(n["nodes"], path + ".nodes", 1);
  if (n["ntasks"]) res.ntasks = r.count(n["ntasks"], path + ".ntasks", 1);
  if (n["cpusPerTask"]) res.cpus_per_task = r.count(n["cpusPerTask"], path + ".cpusPerTask", 1);
  if (n["gpus"]) res.gpus = r.count(n["gpus"], path + ".gpus", 0);
  if (n["time"]) {
    res.time = r.string(n["time"], path + ".time");
    if (res.time.size() > kLongestTime) {
      r.fail(path + ".time", std::to_string(res.time.size()) + " characters; a Slurm time has at most " +
                                 std::to_string(kLongestTime) + " (D-HH:MM:SS)");
    }
    if (!is_slurm_time(res.time)) {
      r.fail(path + ".time", "'" + res.time + "' is not a Slurm time (minutes, MM:SS, HH:MM:SS or D-HH:MM:SS)");
    }
  }
  return res;
}

// Calls found(at, length, name) for each `${trialParameters.NAME}` in `arg`, left to right.
template <class Found>
void for_each_reference(const std::string& arg, Found&& found) {
  constexpr std::string_view kOpen = "${trialParameters.";
  size_t at = arg.find(kOpen);
  while (at != std::string::npos) {
    const size_t close = arg.find('}', at + kOpen.size());
    if (close == std::string::npos) return;
    found(at, close + 1 - at, arg.substr(at + kOpen.size(), close - at - kOpen.size()));
    at = arg.find(kOpen, close + 1);
  }
}

}  // namespace

std::optional<long long> Parameter::cardinality() const {
  switch (type) {
    case ParameterType::discrete:
    case ParameterType::categorical:
      return static_cast<long long>(list.size());
    case ParameterType::int_:
      return static_cast<long long>(std::floor((max - min) / step.value_or(1.0))) + 1;
    case ParameterType::double_:
      if (!step) return std::nullopt;
      return static_cast<long long>(std::floor((max - min) / *step + 1e-9)) + 1;
  }
  return std::nullopt;
}

MetricStrategy Objective::strategy(const std::string& name) const {
  for (const auto& [m, s] : strategies) {
    if (m == name) return s;
  }
  if (name == metric) return type == Goal::minimize ? MetricStrategy::min : MetricStrategy::max;
  return MetricStrategy::latest;
}

const Parameter* Experiment::find(const std::string& parameter) const {
  for (const auto& p : parameters) {
    if (p.name == parameter) return &p;
  }
  return nullptr;
}

std::optional<std::string> Experiment::setting(const std::string& key) const {
  for (const auto& s : algorithm_settings) {
    if (s.name == key) return s.value;
  }
  return std::nullopt;
}

std::optional<std::string> Experiment::early_stopping_setting(const std::string& key) const {
  for (const auto& s : early_stopping_settings) {
    if (s.name == key) return s.value;
  }
  return std::nullopt;
}

std::vector<std::string> Experiment::command_for(const Assignment& assignment) const {
  auto value_of = [&](const std::string& trial_parameter) -> std::string {
    for (const auto& [name, reference] : trial_parameters) {
      if (name != trial_parameter) continue;
      for (const auto& [p, v] : assignment) {
        if (p == reference) return v;
      }
    }
    throw Error("trial parameter '" + trial_parameter + "' has no value");
  };
  std::vector<std::string> out;
  for (const auto& arg : command) {
    std::string result;
    size_t last = 0;
    for_each_reference(arg, [&](size_t at, size_t length, const std::string& name) {
      result.append(arg, last, at - last);
      result += value_of(name);
      last = at + length;
    });
    out.push_back(result + arg.substr(last));
  }
  return out;
}

std::vector<std::string> Experiment::environment_for(const Assignment& assignment) const {
  std::vector<std::string> env;
  for (const auto& [name, value] : assignment) {
    std::string var = "COHORT_PARAM_";
    for (unsigned char c : name) var += std::isalnum(c) ? static_cast<char>(std::toupper(c)) : '_';
    env.push_back(var + "=" + value);
  }
  return env;
}

const char* to_string(ParameterType type) {
  switch (type) {
    case ParameterType::double_: return "double";
    case ParameterType::int_: return "int";
    case ParameterType::discrete: return "discrete";
    case ParameterType::categorical: return "categorical";
  }
  return "?";
}

const char* to_string(Goal goal) { return goal == Goal::minimize ? "minimize" : "maximize"; }

namespace {

const std::set<std::string> kSpecFields{"objective",     "algorithm",           "earlyStopping",       "parameters",
                                        "parallelTrialCount", "maxTrialCount", "maxFailedTrialCount", "resumePolicy",
                                        "trialTemplate", "metricsCollectorSpec", "nasConfig"};

// Where the spec's fields are: under `spec:` of a whole Katib document, or at the top level.
struct Body {
  YAML::Node fields;
  std::string prefix;  // "spec." or empty, before every path under it
};

// The document's frame around its spec, and the experiment's name: metadata.name, else the
// file's stem.
Body read_document(const Reader& r, const YAML::Node& doc, Experiment& exp) {
  if (!doc.IsMap()) r.fail("", "must be a mapping: a Katib Experiment, or its spec's fields");
  const bool whole = static_cast<bool>(doc["spec"]);
  if (whole) {
    r.only(doc, "", {"apiVersion", "kind", "metadata", "spec"});
    if (doc["kind"] && r.string(doc["kind"], "kind") != "Experiment") {
      r.fail("kind", "'" + doc["kind"].as<std::string>() + "' (expected Experiment)");
    }
    r.only(doc["spec"], "spec", kSpecFields);
  } else {
    auto fields = kSpecFields;
    fields.insert({"apiVersion", "kind", "metadata"});
    r.only(doc, "", fields);
  }
  if (doc["metadata"]) exp.name = r.metadata_name(doc["metadata"], "metadata");
  if (exp.name.empty()) exp.name = std::filesystem::path(r.source()).stem().string();
  r.check_object_name(exp.name, "metadata.name", "an experiment's");
  // Built once, never assigned: assigning a YAML::Node writes into the node it refers to,
  // which here is the document itself.
  return whole ? Body{doc["spec"], "spec."} : Body{doc, ""};
}

// source.filter.metricsFormat: regular expressions, each with a name group and a value group.
std::vector<std::string> read_filters(const Reader& r, const YAML::Node& filter, const std::string& path) {
  r.only(filter, path, {"metricsFormat"});
  if (!filter["metricsFormat"]) return {};
  std::vector<std::string> filters = r.strings(filter["metricsFormat"], path + ".metricsFormat");
  for (size_t i = 0; i < filters.size(); ++i) {
    if (auto why = check_metric_filter(filters[i])) r.fail(Reader::at(path + ".metricsFormat", i), "'" + filters[i] + "' " + *why);
  }
  return filters;
}

// source.fileSystemPath: the File collector's file and its format.
void read_file_source(const Reader& r, const YAML::Node& fsp, const std::string& path, MetricsSource& out) {
  r.only(fsp, path, {"path", "kind", "format"});
  if (!fsp["path"]) r.fail(path, "needs path: the file the trial writes its metrics to");
  out.file = r.string(fsp["path"], path + ".path");
  if (out.file.empty()) r.fail(path + ".path", "must not be empty");
  if (fsp["kind"] && r.string(fsp["kind"], path + ".kind") != "File") {
    r.fail(path + ".kind", "'" + fsp["kind"].as<std::string>() + "' (a File collector reads one file: give File)");
  }
  const std::string format = fsp["format"] ? r.string(fsp["format"], path + ".format") : "TEXT";
  if (format == "JSON") out.format = MetricsFormat::json;
  else if (format != "TEXT") r.fail(path + ".format", "'" + format + "' (expected TEXT or JSON)");
}

// Katib's StdOut collector (the default) and File collector; the others need Kubernetes.
MetricsSource read_metrics_collector(const Reader& r, const YAML::Node& mc, const std::string& path) {
  r.only(mc, path, {"collector", "source"});
  std::string kind = "StdOut";
  if (mc["collector"]) {
    r.only(mc["collector"], path + ".collector", {"kind"});
    if (mc["collector"]["kind"]) kind = r.string(mc["collector"]["kind"], path + ".collector.kind");
  }
  if (kind != "StdOut" && kind != "File") {
    r.fail(path + ".collector.kind", "'" + kind + "' (cohort reads metrics from the trial's stdout and stderr (StdOut) or "
                                                  "from a file it writes (File))");
  }
  MetricsSource out;
  const YAML::Node source = mc["source"];
  const std::string spath = path + ".source";
  if (source) r.only(source, spath, {"filter", "fileSystemPath"});
  if (source && source["filter"]) out.filters = read_filters(r, source["filter"], spath + ".filter");
  if (kind == "File") {
    if (!source || !source["fileSystemPath"]) r.fail(spath, "a File collector needs fileSystemPath: {path, format}");
    read_file_source(r, source["fileSystemPath"], spath + ".fileSystemPath", out);
    if (out.format == MetricsFormat::json && !out.filters.empty()) {
      r.fail(spath + ".filter", "a JSON file's metrics are its members' names: metricsFormat is for TEXT");
    }
  } else if (source && source["fileSystemPath"]) {
    r.fail(spath + ".fileSystemPath", "is for a File collector: give collector.kind File, or leave it out");
  }
  return out;
}

using Strategies = std::vector<std::pair<std::string, MetricStrategy>>;

Strategies read_metric_strategies(const Reader& r, const YAML::Node& ms, const std::string& path) {
  if (!ms.IsSequence()) r.fail(path, "must be a list of {name, value}");
  Strategies out;
  for (size_t i = 0; i < ms.size(); ++i) {
    std::string p = Reader::at(path, i);
    r.only(ms[i], p, {"name", "value"});
    if (!ms[i]["name"] || !ms[i]["value"]) r.fail(p, "needs name and value");
    std::string name = r.string(ms[i]["name"], p + ".name");
    std::string v = r.string(ms[i]["value"], p + ".value");
    MetricStrategy s = MetricStrategy::latest;
    if (v == "min") s = MetricStrategy::min;
    else if (v == "max") s = MetricStrategy::max;
    else if (v != "latest") r.fail(p + ".value", "'" + v + "' (expected min, max or latest)");
    out.emplace_back(name, s);
  }
  return out;
}

Objective read_objective(const Reader& r, const YAML::Node& obj, const std::string& path) {
  if (!obj) r.fail(path, "missing: give type and objectiveMetricName");
  r.only(obj, path, {"type", "goal", "objectiveMetricName", "additionalMetricNames", "metricStrategies"});
  Objective objective;
  if (!obj["type"]) r.fail(path, "needs type (minimize or maximize)");
  std::string type = r.string(obj["type"], path + ".type");
  if (type == "minimize") objective.type = Goal::minimize;
  else if (type == "maximize") objective.type = Goal::maximize;
  else r.fail(path + ".type", "'" + type + "' (expected minimize or maximize)");
  if (!obj["objectiveMetricName"]) r.fail(path, "needs objectiveMetricName");
  objective.metric = r.string(obj["objectiveMetricName"], path + ".objectiveMetricName");
  if (objective.metric.empty()) r.fail(path + ".objectiveMetricName", "must not be empty");
  if (obj["goal"]) objective.goal = r.number(obj["goal"], path + ".goal");
  if (obj["additionalMetricNames"]) {
    objective.additional = r.strings(obj["additionalMetricNames"], path + ".additionalMetricNames");
    for (size_t i = 0; i < objective.additional.size(); ++i) {
      if (objective.additional[i] == objective.metric) {
        r.fail(Reader::at(path + ".additionalMetricNames", i), "'" + objective.metric + "' is the objective metric already");
      }
    }
  }
  if (obj["metricStrategies"]) {
    objective.strategies = read_metric_strategies(r, obj["metricStrategies"], path + ".metricStrategies");
  }
  return objective;
}

// What an {algorithmName, algorithmSettings} block names, the algorithms or the stoppers, and
// where the experiment keeps the name and the settings.
template <class Info>
struct Named {
  const char* what;  // "an algorithm", in messages
  const Info* (*find)(std::string_view name);
  std::string (*names)();
  std::string Experiment::*name;
  std::vector<Setting> Experiment::*settings;
};
const Named<AlgorithmInfo> kAlgorithm{"an algorithm", &find_algorithm, &algorithm_names, &Experiment::algorithm,
                                      &Experiment::algorithm_settings};
const Named<StopperInfo> kStopper{"an early-stopping algorithm", &find_stopper, &stopper_names,
                                  &Experiment::early_stopping, &Experiment::early_stopping_settings};

// An {algorithmName, algorithmSettings} block, as spec.algorithm and spec.earlyStopping give
// one: its name (lower case) must be one of `named`; what it names checks the settings later.
template <class Info>
const Info& read_named(const Reader& r, const YAML::Node& n, const std::string& path, const Named<Info>& named, Experiment& exp) {
  r.only(n, path, {"algorithmName", "algorithmSettings"});
  if (!n["algorithmName"]) r.fail(path, "needs algorithmName (" + named.names() + ")");
  std::string& name = exp.*named.name;
  name = lower(r.string(n["algorithmName"], path + ".algorithmName"));
  const Info* info = named.find(name);
  if (!info) r.fail(path + ".algorithmName", "'" + name + "' is not " + named.what + " (expected one of: " + named.names() + ")");
  if (n["algorithmSettings"]) exp.*named.settings = read_settings(r, n["algorithmSettings"], path + ".algorithmSettings");
  return *info;
}

// Katib's algorithms that cohort does not have, each with what to use instead.
void check_supported(const Reader& r, const YAML::Node& algorithm, const std::string& path) {
  static const std::vector<std::pair<std::string, std::string>> kMissing{
      {"cmaes", "Katib's CMA-ES (from goptuna) is not supported here; bayesianoptimization or multivariate-tpe "
                "search a continuous space too"},
      {"pbt", "population-based training is not supported here: it hands checkpoints between running trials"},
      {"enas", "neural architecture search is not supported here; search parameters instead"},
      {"darts", "neural architecture search is not supported here; search parameters instead"},
  };
  if (!algorithm.IsMap() || !algorithm["algorithmName"] || !algorithm["algorithmName"].IsScalar()) return;
  const std::string name = lower(algorithm["algorithmName"].as<std::string>());
  for (const auto& [missing, why] : kMissing) {
    if (name == missing) r.fail(path + ".algorithmName", "'" + name + "': " + why + " (cohort has: " + algorithm_names() + ")");
  }
}

std::vector<Parameter> read_parameters(const Reader& r, const YAML::Node& params, const std::string& path) {
  if (!params || !params.IsSequence() || params.size() == 0) r.fail(path, "missing or empty: list the parameters to search");
  std::vector<Parameter> out;
  for (size_t i = 0; i < params.size(); ++i) {
    Parameter p = read_parameter(r, params[i], Reader::at(path, i));
    for (const auto& seen : out) {
      if (seen.name == p.name) r.fail(Reader::at(path, i) + ".name", "'" + p.name + "' is given twice");
    }
    out.push_back(std::move(p));
  }
  return out;
}

// parallelTrialCount, maxTrialCount, maxFailedTrialCount and resumePolicy.
void read_counts(const Reader& r, const Body& body, Experiment& exp) {
  const YAML::Node& b = body.fields;
  const std::string& prefix = body.prefix;
  if (b["parallelTrialCount"]) exp.parallel_trial_count = r.count(b["parallelTrialCount"], prefix + "parallelTrialCount", 1);
  if (b["maxTrialCount"]) exp.max_trial_count = r.count(b["maxTrialCount"], prefix + "maxTrialCount", 1);
  if (b["maxFailedTrialCount"]) {
    exp.max_failed_trial_count = r.count(b["maxFailedTrialCount"], prefix + "maxFailedTrialCount", 0);
  }
  if (b["resumePolicy"]) {
    exp.resume_policy = r.string(b["resumePolicy"], prefix + "resumePolicy");
    if (exp.resume_policy != "Never" && exp.resume_policy != "LongRunning" && exp.resume_policy != "FromVolume") {
      r.fail(prefix + "resumePolicy", "'" + exp.resume_policy + "' (expected Never, LongRunning or FromVolume)");
    }
  }
}

// Each algorithm checks its own settings and the space it can search; without
// maxTrialCount, the number of points it can propose is the budget.
void check_algorithm(const Reader& r, const AlgorithmInfo& algorithm, const Body& body, Experiment& exp) {
  const std::string path = body.prefix + "algorithm";
  algorithm.validate(exp, [&](const std::string& field, const std::string& why) {
    r.fail(field.empty() ? path : path + "." + field, why);
  });
  if (!exp.max_trial_count) {
    auto capacity = algorithm.capacity(exp);
    if (!capacity) r.fail(body.prefix + "maxTrialCount", "missing: how many trials should the sweep run?");
    exp.max_trial_count = static_cast<int>(std::min<long long>(*capacity, 1000000));
  }
}

// The stopper's name and settings, which the stopper checks itself.
void read_early_stopping(const Reader& r, const YAML::Node& es, const std::string& path, Experiment& exp) {
  const StopperInfo& stopper = read_named(r, es, path, kStopper, exp);
  stopper.validate(exp, [&](const std::string& field, const std::string& why) { r.fail(path + "." + field, why); });
}

// trialParameters: the names the command refers to, each standing for one of the
// experiment's parameters.
void read_trial_parameters(const Reader& r, const YAML::Node& tps, const std::string& path, Experiment& exp) {
  if (!tps.IsSequence()) r.fail(path, "must be a list of {name, reference}");
  for (size_t i = 0; i < tps.size(); ++i) {
    std::string p = Reader::at(path, i);
    r.only(tps[i], p, {"name", "reference", "description"});
    if (!tps[i]["name"] || !tps[i]["reference"]) r.fail(p, "needs name and reference");
    std::string name = r.string(tps[i]["name"], p + ".name");
    check_name_length(r, name, p + ".name");
    std::string reference = r.string(tps[i]["reference"], p + ".reference");
    check_name_length(r, reference, p + ".reference");
    if (!exp.find(reference)) {
      r.fail(p + ".reference", "'" + reference + "' is not one of the experiment's parameters");
    }
    for (const auto& [seen, _] : exp.trial_parameters) {
      if (seen == name) r.fail(p + ".name", "'" + name + "' is given twice");
    }
    exp.trial_parameters.emplace_back(name, reference);
  }
}

// Every `${trialParameters.NAME}` in the command (written at `where`) names an entry of
// trialParameters (at `path`).
void check_references(const Reader& r, const Experiment& exp, const std::string& where, const std::string& path) {
  for (const auto& arg : exp.command) {
    for_each_reference(arg, [&](size_t, size_t, const std::string& name) {
      bool known = std::any_of(exp.trial_parameters.begin(), exp.trial_parameters.end(),
                               [&](const auto& tp) { return tp.first == name; });
      if (known) return;
      if (name.size() > kLongestName) {
        r.fail(where, "a ${trialParameters...} reference of " + std::to_string(name.size()) +
                          " characters; a name has at most " + std::to_string(kLongestName));
      }
      r.fail(where, "'${trialParameters." + name + "}' names no entry of " + path);
    });
  }
}

void read_trial_template(const Reader& r, const YAML::Node& tt, const std::string& path, Experiment& exp) {
  if (!tt) r.fail(path, "missing: give command (or a Kubernetes Job trialSpec)");
  r.only(tt, path, {"trialParameters", "command", "trialSpec", "resources", "primaryContainerName",
                    "successCondition", "failureCondition", "retain", "primaryPodLabels", "configMap"});
  if (tt["configMap"]) r.fail(path + ".configMap", "ConfigMaps are Kubernetes objects; put the command in the spec");
  if (tt["command"] && tt["trialSpec"]) r.fail(path, "give command or trialSpec, not both");
  if (tt["command"]) exp.command = r.strings(tt["command"], path + ".command");
  else if (tt["trialSpec"]) {
    const std::string primary = tt["primaryContainerName"] ? r.string(tt["primaryContainerName"], path + ".primaryContainerName") : "";
    read_trial_spec(r, tt["trialSpec"], path + ".trialSpec", exp, primary);
  }
  else r.fail(path, "needs command (or a Kubernetes Job trialSpec)");
  if (exp.command.empty()) r.fail(path + ".command", "is empty");
  if (tt["resources"]) exp.resources = read_resources(r, tt["resources"], path + ".resources");
  if (tt["trialParameters"]) read_trial_parameters(r, tt["trialParameters"], path + ".trialParameters", exp);
  check_references(r, exp, tt["command"] ? path + ".command" : path + ".trialSpec", path + ".trialParameters");
}

// The sections in the order their checks depend on each other: the algorithm's settings are
// judged against the parameters and the counts.
Experiment read_experiment(const Reader& r, const YAML::Node& doc) {
  Experiment exp;
  const Body body = read_document(r, doc, exp);
  const YAML::Node& b = body.fields;
  if (b["nasConfig"]) r.fail(body.prefix + "nasConfig", "neural architecture search is not supported; use parameters");
  if (b["metricsCollectorSpec"]) exp.metrics = read_metrics_collector(r, b["metricsCollectorSpec"], body.prefix + "metricsCollectorSpec");
  exp.objective = read_objective(r, b["objective"], body.prefix + "objective");
  const std::string apath = body.prefix + "algorithm";
  if (!b["algorithm"]) r.fail(apath, "missing: give algorithmName (" + algorithm_names() + ")");
  check_supported(r, b["algorithm"], apath);
  const AlgorithmInfo& algorithm = read_named(r, b["algorithm"], apath, kAlgorithm, exp);
  exp.parameters = read_parameters(r, b["parameters"], body.prefix + "parameters");
  read_counts(r, body, exp);
  check_algorithm(r, algorithm, body, exp);
  if (b["earlyStopping"]) read_early_stopping(r, b["earlyStopping"], body.prefix + "earlyStopping", exp);
  read_trial_template(r, b["trialTemplate"], body.prefix + "trialTemplate", exp);
  return exp;
}

}  // namespace

Experiment parse_experiment(const std::string& text, const std::string& source) {
  return yaml::read_document(text, source, read_experiment);
}

Experiment load_experiment(const std::string& path) {
  return parse_experiment(yaml::read_spec_file(path, "the experiment"), path);
}

}  // namespace cohort::tuner
