#include "serve/isvc.hpp"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "common/error.hpp"
#include "common/process.hpp"
#include "common/yaml_reader.hpp"
#include "serve/repository.hpp"

namespace cohort::serve {
namespace {

namespace fs = std::filesystem;
using Reader = yaml::Reader;

// Kubernetes' and Knative's own fields: a Slurm job has no pod, image or service account to
// give them to. Each is accepted with a note so that a KServe spec runs as written.
const std::map<std::string, std::string>& kubernetes_only() {
  static const std::map<std::string, std::string> fields{
      {"serviceAccountName", "Slurm runs the job as you"},
      {"image", "the model runs in cohort's own TorchScript runtime"},
      {"args", "they are the container image's; cohort serve start takes none from the spec"},
      {"command", "the model runs in cohort's own TorchScript runtime"},
      {"env", "the job inherits the environment sbatch is run in"},
      {"runtime", "the model runs in cohort's own TorchScript runtime"},
      {"imagePullSecrets", "there is no image to pull"},
      {"nodeSelector", "give slurm.partition instead"},
      {"tolerations", "give slurm.partition instead"},
      {"affinity", "Slurm places the replica steps"},
      {"logger", "each replica's output goes to the service folder"},
      {"batcher", "batching is the model's config.yaml's dynamic_batching"},
      {"timeout", "a request's time is the client's to bound"},
      {"name", "the service's name is metadata.name"},
      {"ports", "the router and replicas take free ports and record them"},
      {"livenessProbe", "the router checks /v2/health/ready itself"},
      {"readinessProbe", "the router checks /v2/health/ready itself"},
      {"volumeMounts", "storageUri is read from the shared file system"},
      {"volumes", "storageUri is read from the shared file system"},
      {"labels", "Slurm jobs carry no labels"},
      {"annotations", "Slurm jobs carry no annotations"},
      {"scaleMetricType", "the target is per replica"},
      {"deploymentStrategy", "a rollout is 'cohort serve update'"},
  };
  return fields;
}

// Checks the keys of `map` against `known`; a Kubernetes-only key is noted, any other
// unknown key is an error naming it.
void only_known(const Reader& r, const YAML::Node& map, const std::string& path, std::set<std::string> known,
                InferenceService& isvc) {
  if (!map.IsMap()) r.fail(path, "must be a mapping");
  std::set<std::string> noted;
  for (const auto& kv : map) {
    const auto key = kv.first.as<std::string>();
    if (known.count(key)) continue;
    if (auto it = kubernetes_only().find(key); it != kubernetes_only().end()) {
      isvc.notes.push_back(Reader::join(path, key) + ": ignored on Slurm (" + it->second + ")");
      noted.insert(key);
    }
  }
  known.insert(noted.begin(), noted.end());
  r.only(map, path, known);
}

// One quantity from limits, else from requests: Slurm allocates one amount, and a limit is
// what the replica may use.
std::optional<std::pair<YAML::Node, std::string>> quantity(const YAML::Node& resources, const std::string& key) {
  for (const char* kind : {"limits", "requests"}) {
    if (resources[kind] && resources[kind][key]) return std::pair{resources[kind][key], std::string(kind) + "." + key};
  }
  return std::nullopt;
}

void read_resources(const Reader& r, const YAML::Node& n, const std::string& path, InferenceService& isvc) {
  r.only(n, path, {"limits", "requests"});
  for (const char* kind : {"limits", "requests"}) {
    if (!n[kind]) continue;
    const std::string kpath = path + "." + kind;
    if (!n[kind].IsMap()) r.fail(kpath, "must be a mapping of resource names to quantities (cpu: 2, nvidia.com/gpu: 1)");
    for (const auto& kv : n[kind]) {
      const auto key = kv.first.as<std::string>();
      if (key != "cpu" && key != "memory" && key != "nvidia.com/gpu") {
        r.fail(kpath + "." + key, "unknown resource (cohort understands cpu, memory and nvidia.com/gpu)");
      }
    }
  }
  if (auto q = quantity(n, "cpu")) isvc.cpus = r.cpus(q->first, path + "." + q->second, 1, 4096);
  if (auto q = quantity(n, "memory")) isvc.memory = r.memory(q->first, path + "." + q->second);
  if (auto q = quantity(n, "nvidia.com/gpu")) isvc.gpus = static_cast<int>(r.integer(q->first, path + "." + q->second, 0, 64));
}

// storageUri: a path on the shared file system, plain or file://.
fs::path storage_path(const Reader& r, const YAML::Node& n, const std::string& path) {
  const std::string uri = r.string(n, path);
  constexpr std::string_view kFile = "file://";
  if (uri.starts_with(kFile)) return uri.substr(kFile.size());
  if (const auto scheme = uri.find("://"); scheme != std::string::npos) {
    r.fail(path, "'" + uri + "': cohort reads models from the cluster's file system, not " + uri.substr(0, scheme) +
                     "://; copy the model there and give its path (file:///path or /path)");
  }
  if (uri.empty()) r.fail(path, "is empty: give the path of a model repository or a model file");
  return uri;
}

// spec.predictor.model (or .pytorch): the model's format, where it is, and its resources.
void read_model(const Reader& r, const YAML::Node& n, const std::string& path, bool is_pytorch, InferenceService& isvc) {
  only_known(r, n, path, {"modelFormat", "storageUri", "runtimeVersion", "protocolVersion", "resources"}, isvc);
  if (n["modelFormat"]) {
    const std::string fpath = path + ".modelFormat";
    r.only(n["modelFormat"], fpath, {"name", "version"});
    const std::string format = n["modelFormat"]["name"] ? r.string(n["modelFormat"]["name"], fpath + ".name") : "";
    if (format != "pytorch") {
      r.fail(fpath + ".name", "'" + format + "': cohort serves TorchScript models, modelFormat.name: pytorch");
    }
  } else if (!is_pytorch) {
    r.fail(path + ".modelFormat", "missing: give modelFormat: {name: pytorch}");
  }
  if (!n["storageUri"]) r.fail(path + ".storageUri", "missing: give the path of a model repository or a model file");
  isvc.storage = storage_path(r, n["storageUri"], path + ".storageUri");
  if (n["runtimeVersion"]) isvc.runtime_version = r.string(n["runtimeVersion"], path + ".runtimeVersion");
  if (n["protocolVersion"]) {
    const std::string v = r.string(n["protocolVersion"], path + ".protocolVersion");
    if (v != "v2") r.fail(path + ".protocolVersion", "'" + v + "': cohort serves the Open Inference Protocol, v2");
  }
  if (n["resources"]) read_resources(r, n["resources"], path + ".resources", isvc);
}

void read_scaling(const Reader& r, const YAML::Node& p, const std::string& path, InferenceService& isvc) {
  if (p["minReplicas"]) isvc.min_replicas = static_cast<int>(r.integer(p["minReplicas"], path + ".minReplicas", 1, 256));
  isvc.max_replicas = isvc.min_replicas;
  if (p["maxReplicas"]) {
    isvc.max_replicas = static_cast<int>(r.integer(p["maxReplicas"], path + ".maxReplicas", 1, 256));
    if (isvc.min_replicas > isvc.max_replicas) {
      r.fail(path + ".maxReplicas", std::to_string(isvc.max_replicas) + " is below minReplicas (" +
                                        std::to_string(isvc.min_replicas) + "): give maxReplicas >= minReplicas");
    }
  }
  if (p["scaleMetric"]) {
    const std::string m = r.string(p["scaleMetric"], path + ".scaleMetric");
    if (m == "concurrency") isvc.scale_metric = ScaleMetric::concurrency;
    else if (m == "rps") isvc.scale_metric = ScaleMetric::rps;
    else r.fail(path + ".scaleMetric", "'" + m + "': cohort scales on concurrency or rps");
  }
  if (p["scaleTarget"]) isvc.scale_target = static_cast<int>(r.integer(p["scaleTarget"], path + ".scaleTarget", 1, 1000000));
  if (p["containerConcurrency"]) {
    isvc.container_concurrency = static_cast<int>(r.integer(p["containerConcurrency"], path + ".containerConcurrency", 0, 1000000));
  }
  if (p["canaryTrafficPercent"]) {
    isvc.canary_traffic_percent = static_cast<int>(r.integer(p["canaryTrafficPercent"], path + ".canaryTrafficPercent", 0, 100));
  }
}

void read_predictor(const Reader& r, const YAML::Node& p, InferenceService& isvc) {
  const std::string path = "spec.predictor";
  only_known(r, p, path,
             {"model", "pytorch", "minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "containerConcurrency",
              "canaryTrafficPercent"},
             isvc);
  if (p["model"] && p["pytorch"]) r.fail(path, "gives both model and pytorch: give one (model is KServe's newer form)");
  if (p["model"]) read_model(r, p["model"], path + ".model", false, isvc);
  else if (p["pytorch"]) read_model(r, p["pytorch"], path + ".pytorch", true, isvc);
  else r.fail(path + ".model", "missing: give model: {modelFormat: {name: pytorch}, storageUri: PATH}");
  read_scaling(r, p, path, isvc);
}

// A Go duration as Knative's annotations write them: "60s", "1m30s", "500ms", "1h".
std::chrono::milliseconds go_duration(const Reader& r, const YAML::Node& n, const std::string& path) {
  const std::string text = r.string(n, path);
  const std::string expected = "'" + text + "': expected a duration such as 60s, 1m30s or 500ms";
  double total_ms = 0;
  std::size_t at = 0;
  if (text.empty()) r.fail(path, expected);
  while (at < text.size()) {
    std::size_t used = 0;
    double value = 0;
    try {
      value = std::stod(text.substr(at), &used);
    } catch (const std::exception&) {
      r.fail(path, expected);
    }
    at += used;
    const auto unit_end = text.find_first_of("0123456789.", at);
    const std::string unit = text.substr(at, unit_end == std::string::npos ? std::string::npos : unit_end - at);
    static const std::map<std::string, double> ms{{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    const auto it = ms.find(unit);
    if (it == ms.end() || !std::isfinite(value) || value < 0) r.fail(path, expected);
    total_ms += value * it->second;
    at += unit.size();
  }
  return std::chrono::milliseconds(static_cast<long long>(total_ms));
}

// Knative's autoscaling annotations that mean the same here; the rest of its autoscaling
// annotations are noted, as they would be ignored.
void read_annotations(const Reader& r, const YAML::Node& n, InferenceService& isvc) {
  const std::string path = "metadata.annotations";
  if (!n.IsMap()) r.fail(path, "must be a mapping of names to strings");
  constexpr std::string_view kKnative = "autoscaling.knative.dev/";
  double panic_percent = 10;
  for (const auto& kv : n) {
    const auto key = kv.first.as<std::string>();
    const std::string kpath = path + "." + key;
    if (key == "autoscaling.knative.dev/window") {
      isvc.scale_down_window = go_duration(r, kv.second, kpath);
      if (isvc.scale_down_window < std::chrono::seconds(1) || isvc.scale_down_window > std::chrono::hours(1)) {
        r.fail(kpath, "must be 1s..1h (Knative's default is 60s)");
      }
    } else if (key == "autoscaling.knative.dev/panic-window-percentage") {
      panic_percent = r.number(kv.second, kpath);
      if (panic_percent < 1 || panic_percent > 100) r.fail(kpath, "must be 1..100 (Knative's default is 10.0)");
    } else if (key.starts_with(kKnative)) {
      isvc.notes.push_back(kpath + ": ignored on Slurm (cohort reads window and panic-window-percentage; "
                                   "the spec's minReplicas, maxReplicas, scaleMetric and scaleTarget say the rest)");
    }
  }
  isvc.scale_up_window = std::chrono::milliseconds(
      static_cast<long long>(static_cast<double>(isvc.scale_down_window.count()) * panic_percent / 100));
}

// slurm.allocate: minReplicas, maxReplicas or a count between them; read after the predictor.
int allocated_replicas(const Reader& r, const YAML::Node& n, const InferenceService& isvc) {
  const std::string path = "slurm.allocate";
  const std::string bounds = " (minReplicas " + std::to_string(isvc.min_replicas) + ", maxReplicas " +
                             std::to_string(isvc.max_replicas) + ")";
  if (!n.IsScalar()) r.fail(path, "must be minReplicas, maxReplicas or a count between them" + bounds);
  const auto word = n.as<std::string>();
  if (word == "minReplicas") return isvc.min_replicas;
  if (word == "maxReplicas") return isvc.max_replicas;
  if (word.empty() || word.find_first_not_of("0123456789") != std::string::npos) {
    r.fail(path, "'" + word + "' is not minReplicas, maxReplicas or a count between them" + bounds);
  }
  const auto count = r.integer(n, path, isvc.min_replicas, isvc.max_replicas);
  return static_cast<int>(count);
}

void read_slurm(const Reader& r, const YAML::Node& n, InferenceService& isvc) {
  r.only(n, "slurm", {"partition", "account", "time", "qos", "allocate"});
  if (n["allocate"]) isvc.slurm.allocate = allocated_replicas(r, n["allocate"], isvc);
  if (n["partition"]) isvc.slurm.partition = r.string(n["partition"], "slurm.partition");
  if (n["account"]) isvc.slurm.account = r.string(n["account"], "slurm.account");
  if (n["time"]) isvc.slurm.time = r.string(n["time"], "slurm.time");
  if (n["qos"]) isvc.slurm.qos = r.string(n["qos"], "slurm.qos");
}

InferenceService read_document(const Reader& r, const YAML::Node& doc) {
  InferenceService isvc;
  r.only(doc, "", {"apiVersion", "kind", "metadata", "spec", "slurm"});
  if (doc["apiVersion"]) {
    const std::string v = r.string(doc["apiVersion"], "apiVersion");
    if (!v.starts_with("serving.kserve.io/") && !v.starts_with("serving.kubeflow.org/")) {
      r.fail("apiVersion", "'" + v + "': cohort reads KServe's InferenceService (serving.kserve.io/v1beta1)");
    }
  }
  if (!doc["kind"] || r.string(doc["kind"], "kind") != "InferenceService") {
    r.fail("kind", "must be InferenceService");
  }
  if (!doc["metadata"]) r.fail("metadata.name", "missing: the service's name");
  isvc.name = r.metadata_name(doc["metadata"], "metadata");
  if (isvc.name.empty()) r.fail("metadata.name", "missing: the service's name");
  r.check_object_name(isvc.name, "metadata.name", "a service's");
  if (doc["metadata"]["annotations"]) read_annotations(r, doc["metadata"]["annotations"], isvc);
  if (!doc["spec"]) r.fail("spec.predictor", "missing");
  only_known(r, doc["spec"], "spec", {"predictor"}, isvc);
  if (!doc["spec"]["predictor"]) r.fail("spec.predictor", "missing");
  read_predictor(r, doc["spec"]["predictor"], isvc);
  if (doc["slurm"]) read_slurm(r, doc["slurm"], isvc);
  if (isvc.slurm.allocate == 0) isvc.slurm.allocate = isvc.max_replicas;
  return isvc;
}

std::string storage_field(const std::string& source) { return source + ": storageUri"; }

}  // namespace

std::vector<std::string> sbatch_resources(const InferenceService& isvc, int tasks) {
  std::vector<std::string> argv{"--ntasks=" + std::to_string(tasks), "--cpus-per-task=" + std::to_string(isvc.cpus)};
  if (isvc.gpus > 0) argv.push_back("--gpus-per-task=" + std::to_string(isvc.gpus));
  if (!isvc.memory.empty()) argv.push_back("--mem-per-cpu=" + isvc.memory);
  const auto& s = isvc.slurm;
  if (!s.partition.empty()) argv.push_back("--partition=" + s.partition);
  if (!s.account.empty()) argv.push_back("--account=" + s.account);
  if (!s.time.empty()) argv.push_back("--time=" + s.time);
  if (!s.qos.empty()) argv.push_back("--qos=" + s.qos);
  return argv;
}

InferenceService read_inference_service(const std::string& text, const std::string& source) {
  return yaml::read_document(text, source, [](const Reader& r, const YAML::Node& doc) { return read_document(r, doc); });
}

InferenceService read_inference_service_file(const std::string& path) {
  return read_inference_service(yaml::read_spec_file(path, "the InferenceService spec"), path);
}

void check_storage(const InferenceService& isvc, const std::string& source) {
  const std::string where = storage_field(source) + " " + isvc.storage.string();
  std::error_code ec;
  const auto status = fs::status(isvc.storage, ec);
  if (!fs::exists(status)) throw input_error(where + ": no such file or folder: give a model repository or a model file");
  if (fs::is_regular_file(status)) return;
  if (!fs::is_directory(status)) throw input_error(where + ": neither a model repository nor a model file");
  try {
    if (!read_repository(isvc.storage, {}).empty()) return;
  } catch (const Error& e) {
    throw input_error(where + ": " + e.what());
  }
  throw input_error(where + ": holds no model (a repository holds <model>/<version>/model.pt; see docs/serve.md)");
}

std::string sinfo_gres(const std::string& partition) {
  // Every partition, filtered here: sinfo -p fails for one it does not know.
  const auto r = run_process({"sinfo", "-h", "-o", "%P %G"});
  if (!r.ok()) throw Error("sinfo failed: " + (r.err.empty() ? r.out : r.err));
  std::istringstream lines(r.out);
  std::string name, gres, all;
  while (lines >> name >> gres) {
    // The default partition is starred; a named one is listed once per node state.
    if (partition.empty() ? name.ends_with('*') : name == partition || name == partition + "*") all += (all.empty() ? "" : ",") + gres;
  }
  return all;
}

void check_partition(const InferenceService& isvc, const std::string& source, const PartitionGres& gres) {
  if (isvc.gpus == 0) return;
  const std::string which = isvc.slurm.partition.empty() ? "the default partition" : "partition " + isvc.slurm.partition;
  const std::string found = gres(isvc.slurm.partition);
  if (found.empty()) {
    throw input_error(source + ": slurm.partition " + isvc.slurm.partition +
                      ": Slurm knows no such partition (sinfo lists those there are)");
  }
  if (found.find("gpu") == std::string::npos) {
    throw input_error(source + ": resources: nvidia.com/gpu " + std::to_string(isvc.gpus) + " asked, but " + which +
                      " has no GPUs (sinfo -o '%P %G'): name a GPU partition in slurm.partition, or ask for none");
  }
}

}  // namespace cohort::serve
