#include "tuner/sampler.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "common/error.hpp"
#include "tuner/algorithms.hpp"
#include "tuner/registry.hpp"

namespace cohort::tuner {
namespace {

const std::vector<const AlgorithmInfo*> kAlgorithms{&kGrid, &kRandom,          &kSobol,
                                                    &kTpe,  &kMultivariateTpe, &kBayesianOptimization,
                                                    &kHyperband};

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

const AlgorithmInfo* find_algorithm(std::string_view name) { return find_named(kAlgorithms, name); }

std::string algorithm_names() { return names_of(kAlgorithms); }

std::optional<long long> unlimited(const Experiment&) { return std::nullopt; }

std::unique_ptr<Sampler> make_sampler(const Experiment& experiment, std::uint64_t seed) {
  const auto* a = find_algorithm(experiment.algorithm);
  if (!a) throw input_error("'" + experiment.algorithm + "' is not an algorithm (expected one of: " + algorithm_names() + ")");
  return a->make(experiment, seed);
}

std::uint64_t experiment_seed(const Experiment& experiment) {
  if (auto s = experiment.setting("random_state")) return static_cast<std::uint64_t>(std::stoll(*s));
  std::random_device device;
  return (static_cast<std::uint64_t>(device()) << 32) ^ device();
}

// The seed is hashed and the trial's key added, not both hashed and combined symmetrically:
// that made trial T of seed S the same point as trial S of seed T, and trial S of every
// small seed S (a random_state of 3, say) one and the same point.
std::mt19937_64 trial_rng(std::uint64_t seed, int trial, std::uint64_t stream) {
  return std::mt19937_64(splitmix64(splitmix64(seed) + static_cast<std::uint64_t>(trial) + (stream << 40)));
}

namespace {

// A uniform draw u in [0, 1) as a draw of a normal distribution centred on 0.5 with sigma
// 1/6, cut off at 0 and 1: the inverse of its distribution function, by bisection.
double central(double u) {
  auto phi = [](double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); };
  const double lo = phi(-3), hi = phi(3);
  const double target = lo + u * (hi - lo);
  double a = -3, b = 3;
  for (int i = 0; i < 60; ++i) {
    const double m = 0.5 * (a + b);
    (phi(m) < target ? a : b) = m;
  }
  return (0.5 * (a + b) + 3) / 6;
}

}  // namespace

Point random_point(const Experiment& experiment, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<double> unit(experiment.parameters.size());
  for (auto& x : unit) x = u(rng);
  // Random draws follow a normal distribution where one is asked for; the model-based
  // algorithms, and sobol's even cover, search min..max as they would a uniform one.
  for (size_t i = 0; i < unit.size(); ++i) {
    const Distribution d = experiment.parameters[i].distribution;
    if (d == Distribution::normal || d == Distribution::log_normal) unit[i] = central(unit[i]);
  }
  return from_unit(experiment, unit);
}

std::vector<const Observation*> finished_trials(const std::vector<Observation>& history) {
  std::vector<const Observation*> done;
  for (const auto& o : history) {
    if (o.finished) done.push_back(&o);
  }
  return done;
}

Point from_unit(const Experiment& experiment, const std::vector<double>& unit) {
  Point point;
  for (size_t i = 0; i < experiment.parameters.size(); ++i) {
    const Parameter& p = experiment.parameters[i];
    double u = std::clamp(unit[i], 0.0, std::nextafter(1.0, 0.0));
    switch (p.type) {
      case ParameterType::discrete:
      case ParameterType::categorical:
        point.push_back(std::floor(u * static_cast<double>(p.list.size())));
        break;
      case ParameterType::int_: {
        if (p.log_scale() && !p.step) {
          double lo = std::log(p.min - 0.5), hi = std::log(p.max + 0.5);
          point.push_back(std::clamp(std::round(std::exp(lo + u * (hi - lo))), p.min, p.max));
          break;
        }
        double step = p.step.value_or(1.0);
        double k = std::floor(u * static_cast<double>(*p.cardinality()));
        point.push_back(p.min + k * step);
        break;
      }
      case ParameterType::double_:
        if (p.step) {
          double k = std::floor(u * static_cast<double>(*p.cardinality()));
          point.push_back(std::min(p.max, p.min + k * *p.step));
        } else if (p.log_scale()) {
          point.push_back(std::exp(std::log(p.min) + u * (std::log(p.max) - std::log(p.min))));
        } else {
          point.push_back(p.min + u * (p.max - p.min));
        }
        break;
    }
  }
  return point;
}

std::string format_number(double value) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, r.ptr);
}

Assignment to_assignment(const Experiment& experiment, const Point& point) {
  Assignment out;
  for (size_t i = 0; i < experiment.parameters.size(); ++i) {
    const Parameter& p = experiment.parameters[i];
    std::string text;
    switch (p.type) {
      case ParameterType::discrete:
      case ParameterType::categorical:
        text = p.list.at(static_cast<size_t>(point[i]));
        break;
      case ParameterType::int_:
        text = std::to_string(std::llround(point[i]));
        break;
      case ParameterType::double_:
        text = format_number(point[i]);
        break;
    }
    out.emplace_back(p.name, std::move(text));
  }
  return out;
}

Point to_point(const Experiment& experiment, const Assignment& assignment) {
  Point point;
  for (const auto& p : experiment.parameters) {
    auto it = std::find_if(assignment.begin(), assignment.end(), [&](const auto& a) { return a.first == p.name; });
    if (it == assignment.end()) throw Error("the journal has no value of parameter '" + p.name + "' for a trial");
    if (p.type == ParameterType::discrete || p.type == ParameterType::categorical) {
      auto at = std::find(p.list.begin(), p.list.end(), it->second);
      if (at == p.list.end()) throw Error("the journal's value '" + it->second + "' of '" + p.name + "' is not in its list");
      point.push_back(static_cast<double>(at - p.list.begin()));
    } else {
      const std::string& text = it->second;
      double value = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (ec != std::errc() || end != text.data() + text.size()) {
        throw Error("the journal's value '" + text + "' of '" + p.name + "' is not a number");
      }
      point.push_back(value);
    }
  }
  return point;
}

void only_settings(const Experiment& experiment, const std::vector<std::string_view>& allowed, const SpecError& fail) {
  for (size_t i = 0; i < experiment.algorithm_settings.size(); ++i) {
    const auto& name = experiment.algorithm_settings[i].name;
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      fail("algorithmSettings[" + std::to_string(i) + "].name",
           "'" + name + "' is not a setting of " + experiment.algorithm + " (expected " + (list.empty() ? "none" : list) + ")");
    }
  }
}

namespace {
std::string setting_path(const Experiment& experiment, const std::string& name) {
  for (size_t i = 0; i < experiment.algorithm_settings.size(); ++i) {
    if (experiment.algorithm_settings[i].name == name) return "algorithmSettings[" + std::to_string(i) + "].value";
  }
  return "algorithmSettings";
}
}  // namespace

std::optional<long long> integer_setting(const Experiment& experiment, const std::string& name, long long least,
                                         const SpecError& fail, long long most) {
  auto text = experiment.setting(name);
  if (!text) return std::nullopt;
  long long v = 0;
  auto r = std::from_chars(text->data(), text->data() + text->size(), v);
  if (r.ec != std::errc() || r.ptr != text->data() + text->size()) {
    fail(setting_path(experiment, name), name + " must be a whole number (got '" + *text + "')");
  }
  if (v < least) fail(setting_path(experiment, name), name + " must be at least " + std::to_string(least) + " (got " + *text + ")");
  if (v > most) fail(setting_path(experiment, name), name + " must be at most " + std::to_string(most) + " (got " + *text + ")");
  return v;
}

std::optional<double> number_setting(const Experiment& experiment, const std::string& name, const SpecError& fail) {
  auto text = experiment.setting(name);
  if (!text) return std::nullopt;
  try {
    size_t used = 0;
    double v = std::stod(*text, &used);
    if (used == text->size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  fail(setting_path(experiment, name), name + " must be a number (got '" + *text + "')");
  return std::nullopt;
}

}  // namespace cohort::tuner
