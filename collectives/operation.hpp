// collectives/operation.hpp — what a Request waits on, one kind per backend.
//
// Private to collectives/ (namespace detail): users include communicator.hpp and bucketing.hpp.
#pragma once

#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <utility>

namespace cohort::collectives::detail {

// How long a rank waits for its peers inside one collective before it reports them
// (COHORT_COLLECTIVES_TIMEOUT, seconds; default 30 minutes, PyTorch's collective timeout:
// a rank may legitimately arrive late, another rank writing a checkpoint).
std::chrono::seconds collectives_timeout();

class Operation {
 public:
  virtual ~Operation() = default;
  virtual void wait() = 0;   // rethrows the operation's error
  virtual bool test() = 0;
};

// Completed by another thread (the communicator's progress thread) or at once.
class HostOperation final : public Operation {
 public:
  void finish(std::exception_ptr error) {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
      error_ = std::move(error);
    }
    cv_.notify_all();
  }
  void wait() override {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return done_; });
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }
  bool test() override {
    std::lock_guard lock(mutex_);
    return done_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::exception_ptr error_;
};

}  // namespace cohort::collectives::detail
