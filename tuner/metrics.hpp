// tuner/metrics.hpp — metrics from a trial's output, as Katib's collectors read them. Private
// to tuner/, but for parse_metric_line, which the Python package's sweep.report() asks
// whether the sweep will read the line it is about to print.
//
// By default a line holds `name=value` pairs ("epoch=3 loss=0.25 accuracy=0.91"), as Katib's
// default filter reads them; an experiment's metricsFormat gives regular expressions of its
// own (group 1 the name, group 2 the value), and a File collector in JSON format reads one
// JSON object per line. Values on a line that also gives `epoch=` or `step=` are intermediate
// values at that step; a value without one is one step after the objective's previous value,
// as Katib counts every reported value as one observation. Every value counts towards the
// metric's final value, chosen by its strategy (min, max or latest).
#pragma once

#include <optional>
#include <regex>
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

// Why `filter` cannot be one of metricsFormat's expressions (it does not compile, or has
// fewer than two groups); nullopt when it can.
std::optional<std::string> check_metric_filter(const std::string& filter);

class MetricCollector {
 public:
  // `source`'s filters must have passed check_metric_filter.
  explicit MetricCollector(const Objective& objective, const MetricsSource& source = {});

  // Takes one line; true when it carried an intermediate value of the objective.
  bool feed(std::string_view line);
  // Every metric name the output gave, in the order first seen (for a message when the
  // objective is not among them).
  const std::vector<std::string>& names_seen() const { return seen_; }

  // The metric's value by its strategy, when the trial reported it.
  std::optional<double> value(const std::string& metric) const;
  // The objective and the additional metrics that were reported, objective first.
  std::vector<std::pair<std::string, double>> final_metrics() const;
  const std::vector<std::pair<long long, double>>& curve() const { return curve_; }

 private:
  MetricLine parse(std::string_view line) const;

  const Objective& objective_;
  std::vector<std::regex> filters_;
  bool json_ = false;
  std::vector<std::string> seen_;
  std::vector<std::pair<std::string, std::vector<double>>> values_;
  std::vector<std::pair<long long, double>> curve_;
};

}  // namespace cohort::tuner
