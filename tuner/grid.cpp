// grid: every combination of the parameters' values, in order, the last parameter fastest.
#include <cmath>
#include <set>

#include "tuner/algorithms.hpp"

namespace cohort::tuner {
namespace {

class GridSampler : public Sampler {
 public:
  explicit GridSampler(const Experiment& e) : experiment_(e) {}

  // The first combination no earlier trial holds, so that a killed trial's point is
  // proposed again.
  std::optional<Point> suggest(int, const std::vector<Observation>& history) override {
    std::set<long long> taken;
    for (const auto& o : history) taken.insert(index_of(o.point));
    long long index = 0;
    while (taken.count(index)) ++index;
    Point point(experiment_.parameters.size());
    for (size_t i = experiment_.parameters.size(); i-- > 0;) {
      const Parameter& p = experiment_.parameters[i];
      long long n = *p.cardinality();
      long long k = index % n;
      index /= n;
      if (p.type == ParameterType::discrete || p.type == ParameterType::categorical) {
        point[i] = static_cast<double>(k);
      } else {
        point[i] = std::min(p.max, p.min + static_cast<double>(k) * p.step.value_or(1.0));
      }
    }
    if (index > 0) return std::nullopt;  // every combination has been proposed
    return point;
  }

 private:
  long long index_of(const Point& point) const {
    long long index = 0;
    for (size_t i = 0; i < experiment_.parameters.size(); ++i) {
      const Parameter& p = experiment_.parameters[i];
      long long k = 0;
      if (p.type == ParameterType::discrete || p.type == ParameterType::categorical) {
        k = std::llround(point[i]);
      } else {
        k = std::llround((point[i] - p.min) / p.step.value_or(1.0));
      }
      index = index * *p.cardinality() + k;
    }
    return index;
  }

  const Experiment& experiment_;
};

void validate(const Experiment& e, const SpecError& fail) {
  only_settings(e, {"random_state"}, fail);
  integer_setting(e, "random_state", 0, fail);
  for (const auto& p : e.parameters) {
    if (!p.cardinality()) {
      fail("", "grid needs a step for the double parameter '" + p.name + "' (feasibleSpace.step), or another algorithm");
    }
    if (p.distribution != Distribution::uniform) {
      fail("", "grid takes no distribution but uniform (parameter '" + p.name + "'): give min, max and step");
    }
  }
}

std::optional<long long> capacity(const Experiment& e) {
  long long n = 1;
  for (const auto& p : e.parameters) {
    n *= *p.cardinality();
    if (n > 1000000000LL) return n;
  }
  return n;
}

std::unique_ptr<Sampler> make(const Experiment& e, std::uint64_t) { return std::make_unique<GridSampler>(e); }

}  // namespace

const AlgorithmInfo kGrid{"grid", &validate, &capacity, &make};

}  // namespace cohort::tuner
