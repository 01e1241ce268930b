// KServe InferenceService specs as cohort reads them: KServe's own examples, and every kind of
// bad spec refused with a message that names the field, before anything is submitted.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "serve/isvc.hpp"
#include "tests/common/temp_dir.hpp"

namespace cohort::serve {
namespace {

const std::string kFixtures = std::string(COHORT_SOURCE_DIR_PATH) + "/tests/serve/fixtures/kserve/";

std::string fixture(const std::string& name) { return read_text(kFixtures + name); }

// KServe's examples keep models in Cloud Storage; the same spec with a local path.
std::string with_local_storage(std::string text, const std::string& path) {
  const auto at = text.find("gs://");
  const auto end = text.find_first_of("\"\n", at);
  return text.replace(at, end - at, path);
}

std::string error_of(const std::string& text) {
  try {
    read_inference_service(text, "isvc.yaml");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    return e.what();
  }
  return "";
}

std::string spec(const std::string& predictor, const std::string& extra = "") {
  return "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: mlp}\nspec:\n  predictor:\n" +
         predictor + extra;
}

const std::string kModel = "    model: {modelFormat: {name: pytorch}, storageUri: /m}\n";

TEST(InferenceService, KServeExamplesAreReadOnceTheirModelIsOnTheFileSystem) {
  for (const char* name : {"torchserve.yaml", "canary.yaml", "gpu.yaml", "autoscaling.yaml", "autoscaling-new.yaml"}) {
    SCOPED_TRACE(name);
    const auto isvc = read_inference_service(with_local_storage(fixture(name), "file:///srv/models/mnist"), name);
    EXPECT_EQ(isvc.storage, "/srv/models/mnist");
    EXPECT_EQ(isvc.min_replicas, 1);
    EXPECT_EQ(isvc.max_replicas, 1);
  }
  const auto canary = read_inference_service(with_local_storage(fixture("canary.yaml"), "/m"), "canary.yaml");
  EXPECT_EQ(canary.canary_traffic_percent, 20);
  const auto gpu = read_inference_service(with_local_storage(fixture("gpu.yaml"), "/m"), "gpu.yaml");
  EXPECT_EQ(gpu.name, "torchserve-gpu");
  EXPECT_EQ(gpu.gpus, 1);
  EXPECT_EQ(gpu.memory, "4G");
  ASSERT_EQ(gpu.notes.size(), 1u);
  EXPECT_NE(gpu.notes[0].find("spec.predictor.pytorch.args: ignored on Slurm"), std::string::npos) << gpu.notes[0];
}

TEST(InferenceService, CloudStorageIsRefusedNamingTheField) {
  const auto message = error_of(fixture("torchserve.yaml"));
  EXPECT_NE(message.find("isvc.yaml: spec.predictor.pytorch.storageUri: 'gs://kfserving-examples"), std::string::npos)
      << message;
  EXPECT_NE(message.find("file system"), std::string::npos) << message;
}

TEST(InferenceService, ScalingAndResourcesAreRead) {
  const auto isvc = read_inference_service(
      spec("    minReplicas: 2\n    maxReplicas: \"4\"\n    scaleMetric: rps\n    scaleTarget: 50\n"
           "    containerConcurrency: 8\n"
           "    model:\n      modelFormat: {name: pytorch}\n      storageUri: file:///m\n      runtimeVersion: \"2.1\"\n"
           "      resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {cpu: 2}}\n",
           "slurm: {partition: gpu, account: ml, time: \"1:00:00\", qos: high}\n"),
      "isvc.yaml");
  EXPECT_EQ(isvc.min_replicas, 2);
  EXPECT_EQ(isvc.max_replicas, 4);
  EXPECT_EQ(isvc.scale_metric, ScaleMetric::rps);
  EXPECT_EQ(isvc.scale_target, 50);
  EXPECT_EQ(isvc.container_concurrency, 8);
  EXPECT_EQ(isvc.cpus, 2);  // the limit, not the request
  EXPECT_EQ(isvc.memory, "1G");
  EXPECT_EQ(isvc.runtime_version, "2.1");
  EXPECT_EQ(isvc.slurm.partition, "gpu");
  EXPECT_EQ(isvc.slurm.account, "ml");
  EXPECT_EQ(isvc.slurm.time, "1:00:00");
  EXPECT_EQ(isvc.slurm.qos, "high");
  EXPECT_EQ(isvc.slurm.allocate, 4);  // the job holds maxReplicas unless told
}

TEST(InferenceService, TheReplicasTheJobHoldsAreMinMaxOrACountBetween) {
  const auto allocate = [](const std::string& value) {
    return read_inference_service(spec("    minReplicas: 1\n    maxReplicas: 4\n" + kModel, "slurm: {allocate: " + value + "}\n"),
                                  "isvc.yaml")
        .slurm.allocate;
  };
  EXPECT_EQ(allocate("minReplicas"), 1);
  EXPECT_EQ(allocate("maxReplicas"), 4);
  EXPECT_EQ(allocate("2"), 2);
  for (const std::string bad : {"0", "5", "-1", "half", "[1]"}) {
    const auto message =
        error_of(spec("    minReplicas: 1\n    maxReplicas: 4\n" + kModel, "slurm: {allocate: " + bad + "}\n"));
    EXPECT_NE(message.find("slurm.allocate"), std::string::npos) << bad << ": " << message;
  }
}

TEST(InferenceService, BadSpecsAreErrorsNamingTheField) {
  struct Case {
    std::string text, expected;
  };
  const Case cases[] = {
      {spec("    model: {modelFormat: {name: pytorch}}\n"), "spec.predictor.model.storageUri: missing"},
      {spec("    minReplicas: 3\n    maxReplicas: 2\n" + kModel), "spec.predictor.maxReplicas: 2 is below minReplicas (3)"},
      {spec("    minReplicas: 0\n" + kModel), "spec.predictor.minReplicas: must be 1..256"},
      {spec("    scaleMetric: memory\n" + kModel), "spec.predictor.scaleMetric: 'memory'"},
      {spec("    canaryTrafficPercent: 120\n" + kModel), "spec.predictor.canaryTrafficPercent: must be 0..100"},
      {spec("    replicas: 2\n" + kModel), "spec.predictor.replicas: unknown field"},
      {spec("    model: {modelFormat: {name: sklearn}, storageUri: /m}\n"), "modelFormat.name: 'sklearn'"},
      {spec("    model: {modelFormat: {name: pytorch}, storageUri: /m, protocolVersion: v1}\n"), "protocolVersion: 'v1'"},
      {spec("    model: {modelFormat: {name: pytorch}, storageUri: /m, resources: {limits: {amd.com/gpu: 1}}}\n"),
       "resources.limits.amd.com/gpu: unknown resource"},
      {spec(kModel, "slurm: {nodes: 2}\n"), "slurm.nodes: unknown field"},
      {spec("    model: {storageUri: /m}\n"), "spec.predictor.model.modelFormat: missing"},
      {spec("    minReplicas: 1\n"), "spec.predictor.model: missing"},
      {"kind: Deployment\nmetadata: {name: x}\nspec: {}\n", "kind: must be InferenceService"},
      {"kind: InferenceService\nmetadata: {name: x}\nspec: {predictor: {}, transformer: {}}\n", "spec.transformer: unknown field"},
      {"kind: InferenceService\nmetadata: {name: 'a b'}\nspec: {}\n", "metadata.name: 'a b'"},
      {"kind: InferenceService\nspec: [1\n", "isvc.yaml"},
  };
  for (const auto& c : cases) {
    const auto message = error_of(c.text);
    EXPECT_NE(message.find(c.expected), std::string::npos) << c.text << "\n→ " << message;
    EXPECT_EQ(message.rfind("isvc.yaml", 0), 0u) << message;
  }
}

std::string annotated(const std::string& annotations) {
  return "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: mlp\n  annotations:\n" +
         annotations + "spec:\n  predictor:\n" + kModel;
}

TEST(InferenceService, KnativesAutoscalingWindowsAreRead) {
  const auto plain = read_inference_service(spec(kModel), "isvc.yaml");
  EXPECT_EQ(plain.scale_down_window, std::chrono::seconds(60));
  EXPECT_EQ(plain.scale_up_window, std::chrono::seconds(6));
  const auto isvc = read_inference_service(
      annotated("    autoscaling.knative.dev/window: 1m30s\n"
                "    autoscaling.knative.dev/panic-window-percentage: \"20.0\"\n"
                "    autoscaling.knative.dev/class: kpa.autoscaling.knative.dev\n    team: ml\n"),
      "isvc.yaml");
  EXPECT_EQ(isvc.scale_down_window, std::chrono::seconds(90));
  EXPECT_EQ(isvc.scale_up_window, std::chrono::seconds(18));
  ASSERT_EQ(isvc.notes.size(), 1u);
  EXPECT_NE(isvc.notes[0].find("metadata.annotations.autoscaling.knative.dev/class: ignored"), std::string::npos)
      << isvc.notes[0];
  EXPECT_EQ(read_inference_service(annotated("    autoscaling.knative.dev/window: 2500ms\n"), "isvc.yaml").scale_down_window,
            std::chrono::milliseconds(2500))
      << "windows under Knative's 6 s are cohort's own, for short tests";
}

TEST(InferenceService, BadAutoscalingAnnotationsAreErrorsNamingThem) {
  const std::pair<std::string, std::string> cases[] = {
      {"    autoscaling.knative.dev/window: soon\n", "autoscaling.knative.dev/window: 'soon': expected a duration"},
      {"    autoscaling.knative.dev/window: 60\n", "expected a duration such as 60s"},
      {"    autoscaling.knative.dev/window: 2h\n", "must be"},
      {"    autoscaling.knative.dev/panic-window-percentage: \"0\"\n", "panic-window-percentage: must be 1..100"},
  };
  for (const auto& [annotations, expected] : cases) {
    const auto message = error_of(annotated(annotations));
    EXPECT_NE(message.find(expected), std::string::npos) << annotations << "\n→ " << message;
  }
}

TEST(InferenceService, KubernetesOnlyFieldsAreNotedOnce) {
  const auto isvc = read_inference_service(spec("    serviceAccountName: sa\n" + kModel), "isvc.yaml");
  ASSERT_EQ(isvc.notes.size(), 1u);
  EXPECT_EQ(isvc.notes[0], "spec.predictor.serviceAccountName: ignored on Slurm (Slurm runs the job as you)");
}

TEST(InferenceService, StorageMustHoldAModel) {
  testing::TempDir dir;
  InferenceService isvc;
  isvc.storage = dir / "missing";
  try {
    check_storage(isvc, "isvc.yaml");
    FAIL() << "a missing path was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("isvc.yaml: storageUri " + isvc.storage.string() + ": no such"), std::string::npos)
        << e.what();
  }
  isvc.storage = dir.path();
  try {
    check_storage(isvc, "isvc.yaml");
    FAIL() << "an empty folder was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("holds no model"), std::string::npos) << e.what();
  }
  std::filesystem::create_directories(dir / "mlp" / "1");
  std::ofstream(dir / "mlp" / "1" / "model.pt") << "x";
  EXPECT_NO_THROW(check_storage(isvc, "isvc.yaml"));
  isvc.storage = dir / "mlp" / "1" / "model.pt";
  EXPECT_NO_THROW(check_storage(isvc, "isvc.yaml"));
}

TEST(InferenceService, GpusOnAPartitionWithoutThemAreRefused) {
  InferenceService isvc;
  isvc.gpus = 1;
  isvc.slurm.partition = "cpu";
  const auto ask = [](const std::string& p) -> std::string { return p == "cpu" ? "(null)" : p == "gpu" ? "gpu:2" : ""; };
  try {
    check_partition(isvc, "isvc.yaml", ask);
    FAIL() << "GPUs on a partition without them were taken";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    EXPECT_NE(std::string(e.what()).find("partition cpu has no GPUs"), std::string::npos) << e.what();
  }
  isvc.slurm.partition = "nowhere";
  EXPECT_THROW(check_partition(isvc, "isvc.yaml", ask), Error);
  isvc.slurm.partition = "gpu";
  EXPECT_NO_THROW(check_partition(isvc, "isvc.yaml", ask));
  isvc.gpus = 0;
  isvc.slurm.partition = "cpu";
  EXPECT_NO_THROW(check_partition(isvc, "isvc.yaml", ask));
}

}  // namespace
}  // namespace cohort::serve
