#include "serve/batcher.hpp"

#include <chrono>
#include <cstring>
#include <future>

#include "serve/protocol.hpp"

namespace cohort::serve {
namespace {

// Whether two requests' tensors can share a batch: the same types and the same shapes past
// the batch dimension.
bool same_rows(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].dtype != b[i].dtype || a[i].shape.size() != b[i].shape.size() ||
        !std::equal(a[i].shape.begin() + 1, a[i].shape.end(), b[i].shape.begin() + 1)) {
      return false;
    }
  }
  return true;
}

// Row-major tensors with the same rows concatenate as their bytes do.
Tensor concatenate(const std::vector<const Tensor*>& parts, std::int64_t rows) {
  Tensor out{parts[0]->name, parts[0]->dtype, parts[0]->shape, {}};
  out.shape[0] = rows;
  for (const auto* p : parts) out.data.insert(out.data.end(), p->data.begin(), p->data.end());
  return out;
}

Tensor rows_of(const Tensor& t, std::int64_t first, std::int64_t count, std::int64_t total) {
  if (t.shape.empty() || t.shape[0] != total) {
    throw Error("output '" + t.name + "' of shape " + shape_text(t.shape) + " has no batch dimension of the batch's " +
                std::to_string(total) + " rows");
  }
  const std::size_t row_bytes = t.data.size() / static_cast<std::size_t>(total);
  Tensor out{t.name, t.dtype, t.shape, {}};
  out.shape[0] = count;
  const auto begin = t.data.begin() + static_cast<std::ptrdiff_t>(first * row_bytes);
  out.data.assign(begin, begin + static_cast<std::ptrdiff_t>(count * row_bytes));
  return out;
}

}  // namespace

BatchingModel::BatchingModel(std::shared_ptr<Model> model, int max_batch_size, DynamicBatching config, int instances)
    : model_(std::move(model)), max_batch_(max_batch_size), config_(std::move(config)) {
  for (int i = 0; i < std::max(1, instances); ++i) threads_.emplace_back([this] { loop(); });
}

BatchingModel::~BatchingModel() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void BatchingModel::flush() {
  {
    std::lock_guard lock(mutex_);
    flushing_ = true;
  }
  wake_.notify_all();
}

std::size_t BatchingModel::pending() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

std::vector<Tensor> BatchingModel::run(const std::vector<Tensor>& inputs) {
  std::promise<std::vector<Tensor>> result;
  auto answer = result.get_future();
  run_async(inputs, [&result](Result r) {
    if (r.failure) result.set_exception(r.failure);
    else result.set_value(std::move(r.outputs));
  });
  return answer.get();
}

void BatchingModel::run_async(const std::vector<Tensor>& inputs, Done done) {
  const std::int64_t rows = inputs.empty() || inputs[0].shape.empty() ? 1 : inputs[0].shape[0];
  auto p = std::make_unique<Pending>(Pending{.inputs = &inputs, .rows = rows, .done = std::move(done)});
  {
    std::lock_guard lock(mutex_);
    if (config_.max_queue_size > 0 && queue_.size() >= static_cast<std::size_t>(config_.max_queue_size)) {
      throw HttpError(503, "the model's queue is full (" + std::to_string(config_.max_queue_size) +
                               " requests): try again shortly", 1);
    }
    queue_.push_back(std::move(p));
  }
  wake_.notify_all();
}

std::int64_t BatchingModel::queued_rows() const {
  std::int64_t rows = 0;
  for (const auto& p : queue_) rows += p->rows;
  return rows;
}

std::int64_t BatchingModel::ready_rows() const {
  std::int64_t preferred = 0;
  for (int size : config_.preferred_batch_sizes) {
    if (size <= max_batch_) preferred = std::max<std::int64_t>(preferred, size);
  }
  return preferred > 0 ? preferred : max_batch_;
}

// The oldest request, and those after it that fit beside it within `limit` rows. Called
// with the lock held.
BatchingModel::Batch BatchingModel::take_batch(std::int64_t limit) {
  Batch batch;
  batch.push_back(std::move(queue_.front()));
  queue_.pop_front();
  std::int64_t rows = batch[0]->rows;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (rows + (*it)->rows <= limit && same_rows(*(*it)->inputs, *batch[0]->inputs)) {
      rows += (*it)->rows;
      batch.push_back(std::move(*it));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  return batch;
}

void BatchingModel::loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(config_.max_queue_delay_us);
    const std::int64_t ready = ready_rows();
    wake_.wait_until(lock, deadline, [&] { return stop_ || flushing_ || queue_.empty() || queued_rows() >= ready; });
    if (queue_.empty()) continue;  // another instance took them
    // A batch runs once it is ready or its oldest request has waited max_queue_delay_us.
    auto batch = take_batch(queued_rows() >= ready ? ready : max_batch_);
    if (!queue_.empty()) wake_.notify_all();  // what is left may be another instance's batch
    lock.unlock();
    execute(batch);
    lock.lock();
  }
}

// Each request's own rows of the batch's outputs, in the batch's order.
std::vector<std::vector<Tensor>> BatchingModel::run_batch(const Batch& batch) {
  if (batch.size() == 1) return {model_->run(*batch[0]->inputs)};
  std::int64_t total = 0;
  for (const auto& p : batch) total += p->rows;
  std::vector<Tensor> merged;
  for (std::size_t i = 0; i < batch[0]->inputs->size(); ++i) {
    std::vector<const Tensor*> parts;
    for (const auto& p : batch) parts.push_back(&(*p->inputs)[i]);
    merged.push_back(concatenate(parts, total));
  }
  const std::vector<Tensor> outputs = model_->run(merged);
  std::vector<std::vector<Tensor>> answers;
  std::int64_t first = 0;
  for (const auto& p : batch) {
    auto& mine = answers.emplace_back();
    for (const auto& t : outputs) mine.push_back(rows_of(t, first, p->rows, total));
    first += p->rows;
  }
  return answers;
}

// Every request of the batch is answered, with its rows or with the batch's failure.
void BatchingModel::execute(const Batch& batch) {
  const auto start = std::chrono::steady_clock::now();
  std::int64_t rows = 0;
  for (const auto& p : batch) rows += p->rows;
  std::vector<std::vector<Tensor>> answers;
  std::exception_ptr failure;
  try {
    answers = run_batch(batch);
  } catch (...) {
    failure = std::current_exception();
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    batch[i]->done({.outputs = failure ? std::vector<Tensor>{} : std::move(answers[i]),
                    .failure = failure,
                    .executions = i == 0 ? 1 : 0,
                    .queue_s = std::chrono::duration<double>(start - batch[i]->enqueued).count(),
                    .batch_rows = i == 0 ? rows : 0});
  }
}

}  // namespace cohort::serve
