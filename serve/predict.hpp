// serve/predict.hpp — batch prediction, `cohort serve predict`: a model over every row of an
// HDF5 dataset or a .npy file, into one array in the input's order.
//
//   PredictOptions o{.model = "mlp.pt", .input = "x.h5", .output = "y.h5"};
//   PredictReport r = predict(o, find_worker(), *torchscript_runtime());
//
// The rows are cut into fixed shards (the same whoever runs them), and shard i is worker
// i % workers' to predict. Each finished shard is a file in OUTPUT.parts/, written whole or
// not at all, so a rerun predicts only the shards that have none. The worker that finds
// every shard done writes OUTPUT from them and removes the shards, leaving the plan and a
// marker that says OUTPUT is written: a worker that starts later has nothing to do.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace cohort::serve {

class Runtime;

struct PredictOptions {
  std::filesystem::path model;    // a TorchScript file, a model folder REPO/NAME or a repository of one model
  std::filesystem::path input;    // .npy, or HDF5
  std::filesystem::path output;   // .npy, or HDF5
  std::string input_dataset;      // empty: the file's only dataset
  std::string output_dataset = "predictions";
  std::int64_t batch_size = 0;    // 0: the model's max_batch_size, or 64
  std::int64_t shard_rows = 0;    // 0: 16 batches
};

// Which share of the shards this process predicts: the rank within a step (the launch
// contract's RANK and WORLD_SIZE, else SLURM_PROCID and SLURM_NTASKS in a step, one that sets
// SLURM_STEP_ID) within the task of an
// array job (SLURM_ARRAY_TASK_ID, counted from SLURM_ARRAY_TASK_MIN by SLURM_ARRAY_TASK_STEP,
// of SLURM_ARRAY_TASK_COUNT); 0 of 1 where none is set.
struct Worker {
  int index = 0;
  int count = 1;
  std::string source;  // the variables it came from, for messages
};
Worker find_worker();

struct PredictReport {
  std::int64_t shards = 0;          // in all
  std::int64_t predicted = 0;       // by this process
  std::int64_t done_before = 0;     // of this worker's, found done when it started
  std::int64_t done_after = 0;      // of all, once this worker finished
  std::int64_t rows_predicted = 0;  // by this process
  double seconds = 0;               // this process's prediction
  bool wrote_output = false;        // this process joined the shards into the output
  bool found_written = false;       // the output was written before this process started
};

// Throws cohort::Error: input errors name the option or file and what would be right.
PredictReport predict(const PredictOptions& options, const Worker& worker, Runtime& runtime);

// `cohort serve predict`.
int predict_command(const std::vector<std::string>& args);

}  // namespace cohort::serve
