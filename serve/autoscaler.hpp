// serve/autoscaler.hpp — how many replicas a service wants, from the load its router sees,
// between minReplicas and maxReplicas.
//
// As Knative's KPA: the metric is averaged over a short window (the up-window, Knative's
// panic window, 6 s by default) and divided by the target per replica; the result, bounded,
// is the desired count. As the Kubernetes HPA's stabilisation: a higher count is acted on at
// once; a lower one only once every desired count of the last down-window (Knative's stable
// window, 60 s by default) was lower, and then to the highest of them, so that a load that
// rises and falls faster than the window keeps its replicas rather than flapping.
//
// Time is given, never read: the caller passes each sample's time, so tests drive it with a
// fake clock.
//
//   Autoscaler a({.min_replicas = 1, .max_replicas = 3, .target = 8});
//   ScaleDecision d = a.observe({now, router.load().outstanding, router.load().requests}, 1);
//   if (d.changed()) log(d.reason), scale to d.to;
#pragma once

#include <chrono>
#include <deque>
#include <string>

#include "serve/isvc.hpp"

namespace cohort::serve {

using AutoscaleClock = std::chrono::steady_clock;

struct AutoscalerOptions {
  int min_replicas = 1;
  int max_replicas = 1;
  ScaleMetric metric = ScaleMetric::concurrency;
  double target = 100;  // per replica: requests under way, or requests a second
  std::chrono::milliseconds up_window{6000};
  std::chrono::milliseconds down_window{60000};
};

// The spec's scaling fields as the autoscaler takes them. Without scaleTarget the target is
// Knative's: 70 % of containerConcurrency when that is set, else 100.
AutoscalerOptions autoscaler_options(const InferenceService& isvc);

struct LoadSample {
  AutoscaleClock::time_point at;
  int outstanding = 0;    // requests under way through the router, waiting ones included
  long long requests = 0; // requests the router has taken so far, a running total
};

struct ScaleDecision {
  int from = 0;
  int to = 0;
  std::string reason;  // one line: the metric, the target, the window
  bool changed() const { return from != to; }
};

// How many replicas a run of the service starts with. A run after a requeue (preemption,
// the time limit, scontrol requeue) comes back at the count the autoscaler wanted when the
// last run drained, so that a service under load is not cut to minReplicas by a requeue
// and then has to climb again; the down-window decides from there as ever. Any other
// run starts at minReplicas.
int replicas_to_start(const std::string& last_state, int last_desired, int min_replicas, int max_replicas);

class Autoscaler {
 public:
  explicit Autoscaler(AutoscalerOptions options);

  // One look at the router's load while `current` replicas serve.
  ScaleDecision observe(const LoadSample& sample, int current);

  // The metric averaged over the up-window at the last sample, for the whole service.
  double metric() const { return metric_; }
  int desired() const { return desired_; }
  const AutoscalerOptions& options() const { return options_; }

 private:
  double average(AutoscaleClock::time_point now) const;
  std::string describe(double metric) const;

  AutoscalerOptions options_;
  std::deque<LoadSample> samples_;  // the up-window's
  struct Desired {
    AutoscaleClock::time_point at;
    int count;
  };
  std::deque<Desired> history_;     // the down-window's, since the last change
  double metric_ = 0;
  int desired_ = 0;
  int expected_ = -1;  // the count the last observation left
};

}  // namespace cohort::serve
