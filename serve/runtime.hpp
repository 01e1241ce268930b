// serve/runtime.hpp — what runs a model: a runtime loads a model file into a Model, and a
// Model runs a batch of named tensors into named tensors. TorchScript (libtorch) is the one
// runtime today; another (ONNX Runtime, TensorRT) is another implementation of Runtime, as
// Triton adds backends.
//
//   auto runtime = cohort::serve::torchscript_runtime();   // nullptr: built without libtorch
//   auto model = runtime->load("repo/mlp/1/model.pt", config);
//   std::vector<Tensor> out = model->run(inputs);          // in config.inputs' order
#pragma once

#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "serve/tensor.hpp"

namespace cohort::serve {

struct ModelConfig;

// A loaded model. run() may be called from several threads at once.
class Model {
 public:
  virtual ~Model() = default;
  // `inputs` hold one tensor per declared input, in the declared order, already checked
  // against the signature; the result holds every output the model gives, named as the
  // config names them. A failure of the model itself is a cohort::Error of kind failure.
  virtual std::vector<Tensor> run(const std::vector<Tensor>& inputs) = 0;
  // What run_async() answers: the outputs or the failure, and how many runs of the model
  // the request accounts for: 1 when it ran alone or led its batch, 0 when it joined
  // another's batch (the metrics' execution count).
  struct Result {
    std::vector<Tensor> outputs;
    std::exception_ptr failure;
    int executions = 1;
    double queue_s = 0;           // its wait in a batcher's queue
    std::int64_t batch_rows = 0;  // the rows of the run it led; 0: its own rows, or none when it led none
  };
  // run(), answered through `done`, on this thread or another: a batching model answers
  // from its own thread, so that a request waiting for its batch holds none of the server's
  // threads. `inputs` must live until `done` has been called. A request refused at once (a
  // full queue) throws here instead.
  using Done = std::function<void(Result)>;
  virtual void run_async(const std::vector<Tensor>& inputs, Done done);
  // Requests waiting to run (a batching model's queue).
  virtual std::size_t pending() const { return 0; }
  // From now on, run what is queued without waiting for more (a drain).
  virtual void flush() {}
};

class Runtime {
 public:
  virtual ~Runtime() = default;
  // "torchscript": the platform a model's metadata names.
  virtual std::string platform() const = 0;
  // Loads `file`. `config` says the inputs and outputs; where it leaves them out (a model
  // file served without a config), load() fills them in from what the file declares.
  // A file that is not a model of this runtime is an input error naming it.
  virtual std::unique_ptr<Model> load(const std::filesystem::path& file, ModelConfig& config) = 0;
};

// The TorchScript runtime: CPU, intra-op threads from COHORT_CPUS or OMP_NUM_THREADS (the
// rank's placement), inference mode. Null when cohort was built without libtorch.
std::unique_ptr<Runtime> torchscript_runtime();

// Intra-op threads for a runtime: COHORT_CPUS' count of CPUs ("0-3,8" is 5), else
// OMP_NUM_THREADS, else `fallback`.
int placement_threads(int fallback);

}  // namespace cohort::serve
