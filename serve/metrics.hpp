// serve/metrics.hpp — what `GET /metrics` shows, in Prometheus' text format (0.0.4), per
// model and version as Triton names its own: requests that succeeded and failed, inferences
// (batch items) and executions, the request and compute durations as histograms, and the
// process' CPU time and resident memory.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace cohort::serve {

class Metrics {
 public:
  // One request to `model` `version`.
  struct Request {
    bool success = false;
    std::int64_t batch = 0;  // inferences it held: its rows
    double request_s = 0;    // in the server, in all
    double compute_s = 0;    // in the model, its wait for a batch included
    double queue_s = 0;      // waiting in a batcher's queue
    int executions = 1;      // runs of the model it accounts for: 0 when it joined another's batch
    std::int64_t batch_rows = 0;  // the rows of the run it led, when it led one
  };
  void record(const std::string& model, std::int64_t version, const Request& request);

  // The exposition: every family with its HELP and TYPE, one series per model and version.
  std::string text() const;

  // What Triton's statistics extension reports of one model version.
  struct Stats {
    std::uint64_t success = 0, failure = 0, inferences = 0, executions = 0;
    double success_s = 0, failure_s = 0, compute_s = 0;  // summed durations
    std::int64_t last_inference_ms = 0;  // since the epoch; 0 before the first
  };
  Stats stats(const std::string& model, std::int64_t version) const;

 private:
  struct Histogram {
    std::vector<std::uint64_t> counts;  // per bucket of its family's bounds, not cumulative
    double sum = 0;
    std::uint64_t count = 0;
    void observe(double value, const std::vector<double>& bounds);
  };
  struct Series {
    std::uint64_t success = 0, failure = 0, inferences = 0, executions = 0;
    Histogram request, compute, queue, batch_size;
    double failure_s = 0;
    std::int64_t last_inference_ms = 0;
  };

  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::int64_t>, Series> series_;
};

}  // namespace cohort::serve
