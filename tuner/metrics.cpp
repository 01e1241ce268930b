#include "tuner/metrics.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "tuner/sampler.hpp"

namespace cohort::tuner {
namespace {

bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '|'; }

}  // namespace

MetricLine parse_metric_line(std::string_view line) {
  MetricLine out;
  size_t pos = 0;
  while ((pos = line.find('=', pos)) != std::string_view::npos) {
    size_t name_end = pos;
    while (name_end > 0 && (line[name_end - 1] == ' ' || line[name_end - 1] == '\t')) --name_end;
    size_t name_begin = name_end;
    while (name_begin > 0 && name_char(line[name_begin - 1])) --name_begin;
    size_t value_begin = pos + 1;
    while (value_begin < line.size() && (line[value_begin] == ' ' || line[value_begin] == '\t')) ++value_begin;
    ++pos;
    if (name_begin == name_end || value_begin >= line.size()) continue;
    std::string text(line.substr(value_begin, std::min<size_t>(64, line.size() - value_begin)));
    char* end = nullptr;
    double v = std::strtod(text.c_str(), &end);
    if (end == text.c_str() || !std::isfinite(v)) continue;
    // "lr=0.1abc" is not a number; "loss=0.1," and "loss=0.1;" are.
    if (*end && (std::isalnum(static_cast<unsigned char>(*end)) || *end == '.' || *end == '_')) continue;
    std::string name(line.substr(name_begin, name_end - name_begin));
    if (name == "step" || name == "epoch") {
      if (name == "step" || !out.step) out.step = std::llround(v);
      continue;
    }
    out.values.emplace_back(std::move(name), v);
  }
  return out;
}

bool MetricCollector::feed(std::string_view line) {
  if (line.find('=') == std::string_view::npos) return false;
  MetricLine m = parse_metric_line(line);
  bool intermediate = false;
  // Not a structured binding: clang before 16 cannot capture one in the lambda below.
  for (const auto& entry : m.values) {
    const std::string& name = entry.first;
    const double v = entry.second;
    bool wanted = name == objective_.metric ||
                  std::find(objective_.additional.begin(), objective_.additional.end(), name) != objective_.additional.end();
    if (!wanted) continue;
    auto it = std::find_if(values_.begin(), values_.end(), [&](const auto& e) { return e.first == name; });
    if (it == values_.end()) it = values_.insert(values_.end(), {name, {}});
    it->second.push_back(v);
    if (name == objective_.metric && m.step) {
      curve_.emplace_back(*m.step, v);
      intermediate = true;
    }
  }
  return intermediate;
}

std::optional<double> MetricCollector::value(const std::string& metric) const {
  auto it = std::find_if(values_.begin(), values_.end(), [&](const auto& e) { return e.first == metric; });
  if (it == values_.end() || it->second.empty()) return std::nullopt;
  switch (objective_.strategy(metric)) {
    case MetricStrategy::min: return *std::min_element(it->second.begin(), it->second.end());
    case MetricStrategy::max: return *std::max_element(it->second.begin(), it->second.end());
    case MetricStrategy::latest: return it->second.back();
  }
  return std::nullopt;
}

std::vector<std::pair<std::string, double>> MetricCollector::final_metrics() const {
  std::vector<std::pair<std::string, double>> out;
  if (auto v = value(objective_.metric)) out.emplace_back(objective_.metric, *v);
  for (const auto& name : objective_.additional) {
    if (auto v = value(name)) out.emplace_back(name, *v);
  }
  return out;
}

MedianStop MedianStop::from(const Experiment& experiment) {
  MedianStop m;
  if (auto v = experiment.early_stopping_setting("min_trials_required")) m.min_trials_required = std::stoi(*v);
  if (auto v = experiment.early_stopping_setting("start_step")) m.start_step = std::stoi(*v);
  return m;
}

std::optional<std::string> MedianStop::should_stop(const Objective& objective,
                                                   const std::vector<std::vector<std::pair<long long, double>>>& completed,
                                                   const std::vector<std::pair<long long, double>>& curve) const {
  if (static_cast<int>(curve.size()) < start_step) return std::nullopt;
  long long step = curve.back().first;
  std::vector<double> means;
  for (const auto& other : completed) {
    double sum = 0;
    int n = 0;
    for (const auto& [s, v] : other) {
      if (s <= step) sum += v, ++n;
    }
    if (n > 0) means.push_back(sum / n);
  }
  if (static_cast<int>(means.size()) < min_trials_required || means.empty()) return std::nullopt;
  std::sort(means.begin(), means.end());
  size_t mid = means.size() / 2;
  double median = means.size() % 2 ? means[mid] : 0.5 * (means[mid - 1] + means[mid]);
  double best = curve.front().second;
  for (const auto& [s, v] : curve) {
    if (objective.better(v, best)) best = v;
  }
  if (!objective.better(median, best)) return std::nullopt;
  return "medianstop: best " + objective.metric + " " + format_number(best) + " by step " + std::to_string(step) +
         " is worse than the median " + format_number(median) + " of " + std::to_string(means.size()) +
         " completed trials' running averages";
}

}  // namespace cohort::tuner
