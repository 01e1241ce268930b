// serve/batcher.hpp — Triton's dynamic batcher, as a Model around a model: the requests that
// arrive together are merged along their batch dimension up to max_batch_size, waiting at
// most max_queue_delay_us for more, run as one, and each handed back its own rows. A queue
// of max_queue_size requests is full: one more is answered 503 with Retry-After.
//
// A batch runs at once when it reaches max_batch_size rows or the largest preferred batch
// size. `instances` threads each run a batch at a time, as Triton's instance_group count.
//
// run_async() queues the request and returns; a batcher thread answers it once its batch
// has run. The requests merged are all those waiting, however few server threads
// there are; only max_queue_size bounds them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "serve/repository.hpp"
#include "serve/runtime.hpp"

namespace cohort::serve {

class BatchingModel : public Model {
 public:
  BatchingModel(std::shared_ptr<Model> model, int max_batch_size, DynamicBatching config, int instances = 1);
  // Runs what is queued, then stops.
  ~BatchingModel() override;

  // Each input's first dimension is its batch; every input of one request has the same.
  std::vector<Tensor> run(const std::vector<Tensor>& inputs) override;
  void run_async(const std::vector<Tensor>& inputs, Done done) override;
  std::size_t pending() const override;
  void flush() override;

 private:
  struct Pending {
    const std::vector<Tensor>* inputs;
    std::int64_t rows;
    Done done;
    std::chrono::steady_clock::time_point enqueued = std::chrono::steady_clock::now();
  };
  using Batch = std::vector<std::unique_ptr<Pending>>;

  void loop();
  // Rows that make a batch worth running now: max_batch_size, or the largest preferred size.
  std::int64_t ready_rows() const;
  Batch take_batch(std::int64_t limit);
  std::vector<std::vector<Tensor>> run_batch(const Batch& batch);
  void execute(const Batch& batch);
  std::int64_t queued_rows() const;

  std::shared_ptr<Model> model_;
  int max_batch_;
  DynamicBatching config_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Pending>> queue_;
  bool stop_ = false;
  bool flushing_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace cohort::serve
