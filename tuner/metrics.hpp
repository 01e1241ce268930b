// tuner/metrics.hpp — metrics from a trial's output in Katib's StdOut format. Private to
// tuner/, but for parse_metric_line, which the Python package's sweep.report() asks whether
// the sweep will read the line it is about to print.
//
// A line holds `name=value` pairs ("epoch=3 loss=0.25 accuracy=0.91"). Values on a line that
// also gives `epoch=` or `step=` are intermediate values at that step; every value counts
// towards the metric's final value, chosen by its strategy (min, max or latest).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tuner/experiment.hpp"

namespace cohort::tuner {

struct MetricLine {
  std::vector<std::pair<std::string, double>> values;  // in the order written, epoch/step excluded
  std::optional<long long> step;                       // from step=, else epoch=
};

MetricLine parse_metric_line(std::string_view line);

class MetricCollector {
 public:
  explicit MetricCollector(const Objective& objective) : objective_(objective) {}

  // Takes one line; true when it carried an intermediate value of the objective.
  bool feed(std::string_view line);

  // The metric's value by its strategy, when the trial reported it.
  std::optional<double> value(const std::string& metric) const;
  // The objective and the additional metrics that were reported, objective first.
  std::vector<std::pair<std::string, double>> final_metrics() const;
  const std::vector<std::pair<long long, double>>& curve() const { return curve_; }

 private:
  const Objective& objective_;
  std::vector<std::pair<std::string, std::vector<double>>> values_;
  std::vector<std::pair<long long, double>> curve_;
};

}  // namespace cohort::tuner
