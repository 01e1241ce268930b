#include "serve/autoscaler.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace cohort::serve {
namespace {

std::string seconds_text(std::chrono::milliseconds d) {
  std::ostringstream out;
  out << static_cast<double>(d.count()) / 1000 << " s";
  return out.str();
}

std::string number_text(double v) {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(1);
  out << v;
  return out.str();
}

}  // namespace

AutoscalerOptions autoscaler_options(const InferenceService& isvc) {
  AutoscalerOptions o;
  o.min_replicas = isvc.min_replicas;
  o.max_replicas = isvc.max_replicas;
  o.metric = isvc.scale_metric;
  if (isvc.scale_target) o.target = *isvc.scale_target;
  else if (isvc.container_concurrency > 0) o.target = std::max(1.0, 0.7 * isvc.container_concurrency);
  o.up_window = isvc.scale_up_window;
  o.down_window = isvc.scale_down_window;
  return o;
}

Autoscaler::Autoscaler(AutoscalerOptions options) : options_(std::move(options)) {}

// Concurrency: the mean of the samples in the window. Requests a second: those taken
// between the window's first sample and its last, over the time between them.
double Autoscaler::average(AutoscaleClock::time_point now) const {
  if (samples_.empty()) return 0;
  if (options_.metric == ScaleMetric::concurrency) {
    double sum = 0;
    for (const auto& s : samples_) sum += s.outstanding;
    return sum / static_cast<double>(samples_.size());
  }
  const double span = std::chrono::duration<double>(now - samples_.front().at).count();
  if (span <= 0) return 0;
  return static_cast<double>(samples_.back().requests - samples_.front().requests) / span;
}

std::string Autoscaler::describe(double metric) const {
  const bool concurrency = options_.metric == ScaleMetric::concurrency;
  return std::string(concurrency ? "concurrency " : "rps ") + number_text(metric) + " over the last " +
         seconds_text(options_.up_window) + ", target " + number_text(options_.target) +
         (concurrency ? " requests under way" : " requests/s") + " per replica";
}

int replicas_to_start(const std::string& last_state, int last_desired, int min_replicas, int max_replicas) {
  if (last_state != "requeued") return min_replicas;
  return std::clamp(last_desired, min_replicas, std::max(min_replicas, max_replicas));
}

ScaleDecision Autoscaler::observe(const LoadSample& sample, int current) {
  const auto now = sample.at;
  samples_.push_back(sample);
  while (samples_.size() > 1 && samples_.front().at < now - options_.up_window) samples_.pop_front();
  metric_ = average(now);
  // Bounded before the cast: a wild metric must not overflow an int.
  const int wanted = static_cast<int>(std::clamp(std::ceil(metric_ / options_.target - 1e-9), 0.0, 1e6));
  desired_ = std::clamp(wanted, options_.min_replicas, options_.max_replicas);

  ScaleDecision d{current, current, {}};
  const std::string bounds = " (min " + std::to_string(options_.min_replicas) + ", max " +
                             std::to_string(options_.max_replicas) + ")";
  // The count changed other than as decided (a start failed, a rollout): the down-window
  // starts again.
  if (current != expected_) history_.clear();
  history_.push_back({now, desired_});
  while (history_.size() > 1 && history_[1].at <= now - options_.down_window) history_.pop_front();

  if (desired_ > current) {
    d.to = desired_;
    d.reason = describe(metric_) + " asks for " + std::to_string(wanted) + " replicas" + bounds;
  } else if (desired_ < current && history_.front().at <= now - options_.down_window) {
    int highest = 0;
    for (const auto& h : history_) highest = std::max(highest, h.count);
    if (highest < current) {
      d.to = highest;
      d.reason = describe(metric_) + "; at most " + std::to_string(highest) + " replicas wanted for the whole " +
                 seconds_text(options_.down_window) + " down-window" + bounds;
    }
  }
  expected_ = d.to;
  return d;
}

}  // namespace cohort::serve
