#include "tuner/metrics.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>


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

}  // namespace cohort::tuner
