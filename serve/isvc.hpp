// serve/isvc.hpp — KServe's InferenceService (serving.kserve.io/v1beta1) as cohort serves it
// on Slurm: the fields that mean something in an allocation, read and checked before any job
// is submitted.
//
//   apiVersion: serving.kserve.io/v1beta1
//   kind: InferenceService
//   metadata:
//     name: mlp
//     annotations:                                          # Knative's, for the autoscaler
//       autoscaling.knative.dev/window: 60s                 # the down-window
//       autoscaling.knative.dev/panic-window-percentage: "10.0"  # the up-window, % of it
//   spec:
//     predictor:
//       minReplicas: 1
//       maxReplicas: 3
//       scaleMetric: concurrency        # or rps
//       scaleTarget: 8
//       containerConcurrency: 16
//       canaryTrafficPercent: 20
//       model:
//         modelFormat: {name: pytorch}
//         storageUri: file:///models/mlp   # a model repository, or one model file
//         resources: {limits: {cpu: 2, memory: 4Gi, nvidia.com/gpu: 1}}
//   slurm: {partition: gpu, account: ml, time: "1-00:00:00", qos: normal,   # cohort's own
//           allocate: minReplicas}   # replicas in the job; above: companion jobs
//
// The older `spec.predictor.pytorch: {storageUri, ...}` is read like `model`. Fields that
// mean nothing without Kubernetes (serviceAccountName, image, args, ...) are accepted with
// a note; any other unknown field is an error naming it.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace cohort::serve {

enum class ScaleMetric { concurrency, rps };

struct SlurmPlacement {
  std::string partition, account, time, qos;  // empty: Slurm's defaults
  // `allocate`: how many replicas the service's own job holds CPUs (and GPUs) for, between
  // minReplicas and maxReplicas (the default). The autoscaler places a replica above it in
  // a companion job of its own, so that a service does not keep idle slots reserved on a
  // shared cluster for load that may never come.
  int allocate = 0;  // resolved: never 0 once read
};

struct InferenceService {
  std::string name;
  std::string runtime_version;             // recorded, not acted on: the runtime is cohort's
  std::filesystem::path storage;           // a model repository or a model file
  int min_replicas = 1;
  int max_replicas = 1;
  ScaleMetric scale_metric = ScaleMetric::concurrency;
  std::optional<int> scale_target;         // per replica
  int container_concurrency = 0;           // requests a replica takes at once; 0: no bound
  // The autoscaler's windows (serve/autoscaler.hpp), from Knative's annotations.
  std::chrono::milliseconds scale_down_window{60000};
  std::chrono::milliseconds scale_up_window{6000};
  std::optional<int> canary_traffic_percent;
  int cpus = 1;                            // per replica
  std::string memory;                      // per replica, Slurm's syntax ("4G"); empty: default
  int gpus = 0;                            // per replica
  SlurmPlacement slurm;
  std::vector<std::string> notes;          // one line per field accepted without effect
};

// sbatch's options for `tasks` replicas of the service: each replica's CPUs, GPUs and memory,
// and the slurm block's partition, account, time and qos.
std::vector<std::string> sbatch_resources(const InferenceService& isvc, int tasks);

// Reads an InferenceService document; `source` names it in errors ("isvc.yaml:
// spec.predictor.minReplicas: ..."). Checks the document alone, not the file system.
InferenceService read_inference_service(const std::string& text, const std::string& source);
InferenceService read_inference_service_file(const std::string& path);

// The storageUri holds a model: a folder that is a model repository (serve/repository.hpp),
// or a model file. Throws an input error naming the spec's field otherwise.
void check_storage(const InferenceService& isvc, const std::string& source);

// What sinfo says of a partition's generic resources ("gpu:2,shard:4" or "(null)"); empty
// when Slurm knows no such partition.
using PartitionGres = std::function<std::string(const std::string& partition)>;
// sinfo's own answer, for the partition given or the default one.
std::string sinfo_gres(const std::string& partition);

// A service that asks for GPUs must name, or default to, a partition that has them.
void check_partition(const InferenceService& isvc, const std::string& source, const PartitionGres& gres);

}  // namespace cohort::serve
