// hyperband: Hyperband's brackets run asynchronously (ASHA, Li et al. 2020), so that any
// number of parallel trials keep busy. One parameter, named by the `resource_name` setting,
// is the training budget (epochs, steps); its feasibleSpace gives the smallest and the
// largest budget R. Rungs are R/eta^k. A free trial promotes a configuration that is in the
// top 1/eta of its rung and not yet tried on the next rung, highest rungs first; when there
// is none it starts a new random configuration, on the lowest rung of the next bracket in
// turn (bracket b starts at rung b, as Hyperband's brackets trade breadth for depth). A
// promoted configuration runs again from the start with the larger budget. Katib's r_l
// setting, when given, is R, and the rungs go down from it to 1.
#include <algorithm>
#include <cmath>
#include <set>

#include "common/error.hpp"
#include "tuner/algorithms.hpp"

namespace cohort::tuner {
namespace {

struct Setup {
  size_t resource = 0;          // index of the resource parameter
  double eta = 3;
  std::vector<double> rungs;    // budgets, smallest first
};

std::optional<Setup> setup_of(const Experiment& e, const SpecError& fail) {
  Setup s;
  auto name = e.setting("resource_name");
  if (!name) {
    fail("algorithmSettings", "hyperband needs resource_name: the parameter that sets a trial's budget (epochs, steps)");
    return std::nullopt;
  }
  const Parameter* p = e.find(*name);
  if (!p) {
    fail("algorithmSettings", "resource_name '" + *name + "' is not one of the experiment's parameters");
    return std::nullopt;
  }
  if ((p->type != ParameterType::int_ && p->type != ParameterType::double_) || p->step ||
      p->distribution != Distribution::uniform) {
    fail("algorithmSettings", "the resource parameter '" + *name + "' must be an int or double with min and max only");
    return std::nullopt;
  }
  if (p->min <= 0 && !e.setting("r_l")) {
    fail("algorithmSettings", "the resource parameter '" + *name + "' needs min > 0");
    return std::nullopt;
  }
  s.resource = static_cast<size_t>(p - e.parameters.data());
  if (auto eta = number_setting(e, "eta", fail)) s.eta = *eta;
  if (s.eta < 2) {
    fail("algorithmSettings", "eta must be at least 2");
    return std::nullopt;
  }
  // Katib's r_l is the largest budget, and its smallest is r_l/eta^k for the largest k that
  // keeps it at least 1; the parameter's feasibleSpace then does not count, as in Katib.
  const auto r_l = number_setting(e, "r_l", fail);
  if (r_l && *r_l < s.eta) {
    fail("algorithmSettings", "r_l (the largest budget) must be at least eta (" + format_number(s.eta) + ")");
    return std::nullopt;
  }
  const double smallest = r_l ? 1 : p->min;
  double r = r_l ? *r_l : p->max;
  std::vector<double> rungs;
  while (r >= smallest * (1 - 1e-9)) {
    rungs.push_back(p->type == ParameterType::int_ ? std::round(r) : r);
    r /= s.eta;
  }
  std::reverse(rungs.begin(), rungs.end());
  rungs.erase(std::unique(rungs.begin(), rungs.end()), rungs.end());
  if (rungs.size() < 2) {
    fail("algorithmSettings", "the resource parameter '" + *name + "' spans less than one factor of eta; widen min..max");
    return std::nullopt;
  }
  s.rungs = rungs;
  return s;
}

class HyperbandSampler : public Sampler {
 public:
  HyperbandSampler(const Experiment& e, std::uint64_t seed, Setup s) : experiment_(e), seed_(seed), setup_(std::move(s)) {}

  std::optional<Point> suggest(int trial, const std::vector<Observation>& history) override {
    const size_t top = setup_.rungs.size() - 1;
    // Per rung: each configuration's objective there (finished), and which are tried at all.
    std::vector<std::vector<std::pair<double, Point>>> finished(top + 1);
    std::vector<std::set<Point>> tried(top + 1);
    std::set<Point> configs;
    for (const auto& o : history) {
      size_t rung = rung_of(o.point[setup_.resource]);
      Point config = o.point;
      config[setup_.resource] = 0;
      tried[rung].insert(config);
      configs.insert(config);
      if (o.finished) finished[rung].emplace_back(o.objective, config);
    }
    bool minimize = experiment_.objective.type == Goal::minimize;
    for (size_t k = top; k-- > 0;) {
      auto& done = finished[k];
      std::stable_sort(done.begin(), done.end(), [&](const auto& a, const auto& b) {
        return minimize ? a.first < b.first : a.first > b.first;
      });
      size_t promotable = static_cast<size_t>(std::floor(static_cast<double>(done.size()) / setup_.eta));
      for (size_t i = 0; i < promotable; ++i) {
        if (tried[k + 1].count(done[i].second)) continue;
        Point p = done[i].second;
        p[setup_.resource] = setup_.rungs[k + 1];
        return p;
      }
    }
    auto rng = trial_rng(seed_, trial);
    Point p = random_point(experiment_, rng);
    // Brackets in turn; the last rung alone would be plain random search, so it is left out.
    p[setup_.resource] = setup_.rungs[configs.size() % top];
    return p;
  }

 private:
  size_t rung_of(double r) const {
    size_t best = 0;
    for (size_t i = 1; i < setup_.rungs.size(); ++i) {
      if (std::abs(setup_.rungs[i] - r) < std::abs(setup_.rungs[best] - r)) best = i;
    }
    return best;
  }

  const Experiment& experiment_;
  std::uint64_t seed_;
  Setup setup_;
};

void validate(const Experiment& e, const SpecError& fail) {
  only_settings(e, {"random_state", "resource_name", "eta", "r_l"}, fail);
  integer_setting(e, "random_state", 0, fail);
  setup_of(e, fail);
}

std::unique_ptr<Sampler> make(const Experiment& e, std::uint64_t seed) {
  SpecError raise = [](const std::string& field, const std::string& why) { throw input_error(field + ": " + why); };
  return std::make_unique<HyperbandSampler>(e, seed, *setup_of(e, raise));
}

}  // namespace

const AlgorithmInfo kHyperband{"hyperband", &validate, &unlimited, &make};

}  // namespace cohort::tuner
