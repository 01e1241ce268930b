// serve/repository.hpp — models as Triton lays them out, configured in YAML:
//
//   REPO/<model>/config.yaml
//   REPO/<model>/<version>/model.pt       (versions are positive whole numbers)
//
//   # config.yaml
//   max_batch_size: 8                     # 0: no batch dimension; dims are whole shapes
//   inputs:  [{name: x, datatype: FP32, dims: [4]}]   # -1 for a variable dimension
//   outputs: [{name: y, datatype: FP32, dims: [2]}]
//   dynamic_batching: {max_queue_delay_us: 100, preferred_batch_sizes: [4, 8], max_queue_size: 64}
//   instances: 1
//   version_policy: {latest: 1}           # or: all, or {specific: [1, 3]}
//
// A single file is served as a one-version model with `--model NAME=PATH`.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "serve/tensor.hpp"

namespace cohort::serve {

struct DynamicBatching {
  std::int64_t max_queue_delay_us = 0;
  std::vector<int> preferred_batch_sizes;
  int max_queue_size = 0;  // 0: Triton's default, no bound of the config's own
};

struct VersionPolicy {
  enum class Kind { latest, all, specific } kind = Kind::latest;
  int latest = 1;
  std::vector<std::int64_t> specific;
};

struct ModelConfig {
  std::string name;
  int max_batch_size = 0;
  std::vector<TensorSpec> inputs;   // empty: taken from the model file
  std::vector<TensorSpec> outputs;  // empty: taken from the model file
  std::optional<DynamicBatching> dynamic_batching;
  int instances = 1;
  VersionPolicy version_policy;
};

// One version of a model, to be loaded.
struct ModelVersion {
  std::int64_t version = 1;
  std::filesystem::path file;
};

struct RepositoryModel {
  ModelConfig config;
  std::vector<ModelVersion> versions;  // those the policy serves, oldest first
};

// Reads a config.yaml's text; `source` names it in errors ("repo/mlp/config.yaml:
// inputs[0].datatype: …"). A config's name must match the model's folder when it gives one.
ModelConfig read_config(const std::string& text, const std::string& source, const std::string& model_name);

// The models of a repository, in name order; `only` keeps those named (each must exist).
// A model without a config.yaml is served with what its file declares.
std::vector<RepositoryModel> read_repository(const std::filesystem::path& repo, const std::vector<std::string>& only);

// One model from `--model NAME=PATH`: PATH is a model file, served as version 1.
RepositoryModel single_model(const std::string& spec);

}  // namespace cohort::serve
