// common/serial_worker.hpp — one thread that runs tasks one at a time, in the order given.
//
// For work that must keep its order while its callers go on: background collectives, which
// every rank must run in the same order as its peers.
//
//   cohort::SerialWorker worker;
//   worker.post([&] { reduce(bucket); });   // the thread starts with the first task
//   worker.join();                          // runs what is queued, then ends the thread
//
// A task must not throw (its exception would end the process): it reports its own failure.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace cohort {

class SerialWorker {
 public:
  SerialWorker() = default;
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;
  ~SerialWorker() { join(); }

  void post(std::function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
      queue_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

  // Tasks still queued run first: whoever waits on them (a peer rank) would wait forever.
  void join() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace cohort
