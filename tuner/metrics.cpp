#include "tuner/metrics.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "common/error.hpp"
#include "common/json.hpp"

namespace cohort::tuner {
namespace {

bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '|'; }

// A value as Katib's filters capture it; nullopt for what is not a finite number.
std::optional<double> number_of(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  if (text.empty() || text.size() > 64) return std::nullopt;
  const std::string copy(text);
  char* end = nullptr;
  const double v = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

// Adds name=value to `out`; step and epoch set its step instead, a step taking precedence.
void add_value(MetricLine& out, std::string name, double v) {
  if (name == "step" || name == "epoch") {
    if (name == "step" || !out.step) out.step = std::llround(v);
    return;
  }
  out.values.emplace_back(std::move(name), v);
}

MetricLine parse_filtered(std::string_view line, const std::vector<std::regex>& filters) {
  MetricLine out;
  for (const auto& filter : filters) {
    for (std::cregex_iterator it(line.data(), line.data() + line.size(), filter), end; it != end; ++it) {
      const auto& match = *it;
      std::string name = match[1].str();
      while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
      while (!name.empty() && std::isspace(static_cast<unsigned char>(name.front()))) name.erase(0, 1);
      if (const auto v = number_of(match[2].str()); v && !name.empty()) add_value(out, std::move(name), *v);
    }
  }
  return out;
}

// A File collector's JSON line: an object whose members are metrics, their values numbers or
// numbers as strings (Katib writes them as strings); anything else on the line is left.
MetricLine parse_json_line(std::string_view line) {
  MetricLine out;
  if (line.find('{') == std::string_view::npos) return out;
  json::Value doc;
  try {
    doc = json::parse(line);
  } catch (const Error&) {
    return out;
  }
  if (!doc.is_object()) return out;
  for (const auto& [name, value] : doc.as_object()) {
    std::optional<double> v;
    if (value.is_number()) v = value.as_double();
    else if (value.is_string()) v = number_of(value.as_string());
    if (v && std::isfinite(*v)) add_value(out, name, *v);
  }
  return out;
}

}  // namespace

std::optional<std::string> check_metric_filter(const std::string& filter) {
  // std::regex compiles and matches by recursion: a bound on the expression bounds both.
  constexpr size_t kLongest = 512;
  if (filter.size() > kLongest) {
    return "is " + std::to_string(filter.size()) + " characters long; a filter has at most " + std::to_string(kLongest);
  }
  try {
    const std::regex compiled(filter);
    if (compiled.mark_count() < 2) return "has " + std::to_string(compiled.mark_count()) + " groups; it needs two: the metric's name, then its value";
  } catch (const std::regex_error& e) {
    return std::string("is not a regular expression (") + e.what() + ")";
  }
  return std::nullopt;
}

MetricCollector::MetricCollector(const Objective& objective, const MetricsSource& source)
    : objective_(objective), json_(source.format == MetricsFormat::json) {
  for (const auto& f : source.filters) filters_.emplace_back(f);
}

MetricLine MetricCollector::parse(std::string_view line) const {
  if (json_) return parse_json_line(line);
  if (!filters_.empty()) return parse_filtered(line, filters_);
  if (line.find('=') == std::string_view::npos) return {};
  return parse_metric_line(line);
}

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
    add_value(out, std::string(line.substr(name_begin, name_end - name_begin)), v);
  }
  return out;
}

bool MetricCollector::feed(std::string_view line) {
  MetricLine m = parse(line);
  bool intermediate = false;
  // Not a structured binding: clang before 16 cannot capture one in the lambda below.
  for (const auto& entry : m.values) {
    const std::string& name = entry.first;
    const double v = entry.second;
    if (std::find(seen_.begin(), seen_.end(), name) == seen_.end() && seen_.size() < 64) seen_.push_back(name);
    bool wanted = name == objective_.metric ||
                  std::find(objective_.additional.begin(), objective_.additional.end(), name) != objective_.additional.end();
    if (!wanted) continue;
    auto it = std::find_if(values_.begin(), values_.end(), [&](const auto& e) { return e.first == name; });
    if (it == values_.end()) it = values_.insert(values_.end(), {name, {}});
    it->second.push_back(v);
    if (name == objective_.metric) {
      curve_.emplace_back(m.step ? *m.step : (curve_.empty() ? 0 : curve_.back().first) + 1, v);
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
