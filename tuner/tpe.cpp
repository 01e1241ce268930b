// tpe: the Tree-structured Parzen Estimator (Bergstra et al., 2011), univariate, with the
// defaults Optuna's TPESampler uses: ten random start-up trials, the best
// min(⌈0.1·n⌉, 25) trials as the "good" group, a prior component, the magic clip on
// bandwidths, and 24 candidates drawn from the good density and ranked by l(x)/g(x)
// (with kernels counted by height: see numeric_log_p). Unlike Optuna, old trials are not
// weighted down (see trial_weights).
// Log-scaled parameters are modelled in log space; ints and stepped doubles as bins.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "tuner/algorithms.hpp"

namespace cohort::tuner {
namespace {

constexpr double kSqrt2 = 1.4142135623730951;
constexpr double kLogSqrt2Pi = 0.9189385332046727;

double normal_cdf(double z) { return 0.5 * std::erfc(-z / kSqrt2); }

// Every trial weighs the same, however old. Optuna's default_weights (from hyperopt) ramp
// down the oldest trials beyond the newest 25, which only ever touches the "rest" group
// (the good group is at most 25 trials); but a sweep's objective does not drift, so an old
// bad trial says as much about where not to look as a new one. With the ramp, regret after
// 50 trials was 1.04–1.2 times larger on the benchmark problems (200 seeds).
std::vector<double> trial_weights(size_t n) { return std::vector<double>(n, 1.0); }

// The space of one numeric parameter as the estimator sees it.
struct Scale {
  bool log = false;
  double low = 0, high = 0;  // in model space, widened by half a bin for binned values
  double bin = 0;            // bin width in model space (0: continuous); log ints use edges
  bool log_int = false;
};

Scale scale_of(const Parameter& p) {
  Scale s;
  if (p.type == ParameterType::int_ && p.log_scale() && !p.step) {
    s.log = s.log_int = true;
    s.low = std::log(p.min - 0.5);
    s.high = std::log(p.max + 0.5);
  } else if (p.log_scale() && !p.step) {
    s.log = true;
    s.low = std::log(p.min);
    s.high = std::log(p.max);
  } else if (p.type == ParameterType::int_ || p.step) {
    s.bin = p.step.value_or(1.0);
    s.low = p.min - s.bin / 2;
    s.high = p.min + static_cast<double>(*p.cardinality() - 1) * s.bin + s.bin / 2;
  } else {
    s.low = p.min;
    s.high = p.max;
  }
  return s;
}

struct Mixture {
  std::vector<double> mu, sigma, weight;
};

// The prior (centre of the range, the range as its width) counts among the neighbours
// that set each observation's width, which keeps widths near the centre narrower.
Mixture numeric_mixture(const std::vector<double>& xs, const Scale& s, double prior_weight) {
  Mixture m;
  std::vector<double> w = trial_weights(xs.size());
  size_t n = xs.size();
  // Observations plus the prior (centre of the range, the range as its width).
  std::vector<double> mus = xs;
  mus.push_back(0.5 * (s.low + s.high));
  std::vector<size_t> order(mus.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return mus[a] < mus[b]; });
  std::vector<double> sorted(mus.size() + 2);
  sorted.front() = s.low;
  sorted.back() = s.high;
  for (size_t i = 0; i < order.size(); ++i) sorted[i + 1] = mus[order[i]];
  std::vector<double> sorted_sigma(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    sorted_sigma[i] = std::max(sorted[i + 1] - sorted[i], sorted[i + 2] - sorted[i + 1]);
  }
  // The end points do not count as neighbours (Optuna's consider_endpoints=False).
  if (sorted.size() >= 4) {
    sorted_sigma.front() = sorted[2] - sorted[1];
    sorted_sigma.back() = sorted[sorted.size() - 2] - sorted[sorted.size() - 3];
  }
  double range = s.high - s.low;
  double max_sigma = range;
  double min_sigma = range / std::min(100.0, 1.0 + static_cast<double>(mus.size()));
  m.mu = mus;
  m.sigma.resize(mus.size());
  for (size_t i = 0; i < order.size(); ++i) m.sigma[order[i]] = std::clamp(sorted_sigma[i], min_sigma, max_sigma);
  m.sigma[n] = range;
  m.weight = w;
  m.weight.push_back(prior_weight);
  double total = std::accumulate(m.weight.begin(), m.weight.end(), 0.0);
  for (auto& x : m.weight) x /= total;
  return m;
}

double log_sum_exp(const std::vector<double>& v) {
  double top = *std::max_element(v.begin(), v.end());
  if (!std::isfinite(top)) return top;
  double s = 0;
  for (double x : v) s += std::exp(x - top);
  return top + std::log(s);
}

// The score of model-space x under a mixture: for binned values the log probability of the
// value's bin; for continuous ones the log of the sum of the kernels' heights at x, each
// kernel a truncated normal counted by its height, not its mass (its density times its
// width). That is how Optuna's TPESampler (up to 3.1) ranks candidates, and it ranks them
// better than the true density: a narrow kernel of the "rest" group no longer outweighs the
// broad ones around it, so candidates near good points are not rejected for one close bad
// neighbour. Counted by mass, the same sampler's regret after 50 trials was 1.2–1.4 times
// larger on every benchmark problem (200 seeds; docs/performance.md).
double numeric_log_p(const Mixture& m, const Scale& s, double x) {
  std::vector<double> terms;
  for (size_t k = 0; k < m.mu.size(); ++k) {
    double mu = m.mu[k], sg = m.sigma[k];
    double z = normal_cdf((s.high - mu) / sg) - normal_cdf((s.low - mu) / sg);
    double lw = std::log(m.weight[k]) - std::log(std::max(z, 1e-300));
    if (s.bin > 0 || s.log_int) {
      double lo = s.log_int ? std::log(std::exp(x) - 0.5) : x - s.bin / 2;
      double hi = s.log_int ? std::log(std::exp(x) + 0.5) : x + s.bin / 2;
      double p = normal_cdf((hi - mu) / sg) - normal_cdf((lo - mu) / sg);
      terms.push_back(lw + std::log(std::max(p, 1e-300)));
    } else {
      double d = (x - mu) / sg;
      terms.push_back(lw - 0.5 * d * d - kLogSqrt2Pi);
    }
  }
  return log_sum_exp(terms);
}

// Model-space value → the parameter's value (rounded to its grid) in model space again.
double snap(const Parameter& p, const Scale& s, double x) {
  if (s.log_int) return std::log(std::clamp(std::round(std::exp(x)), p.min, p.max));
  if (s.bin > 0) {
    double k = std::round((x - p.min) / s.bin);
    k = std::clamp(k, 0.0, static_cast<double>(*p.cardinality() - 1));
    return p.min + k * s.bin;
  }
  return std::clamp(x, s.low, s.high);
}

// Each observation is a kernel that favours its own category; every kernel also spreads
// prior_weight / kernels over all categories (Optuna's rule), so a category the group has
// never tried keeps a share that shrinks as the group grows. That share is what makes an
// untried category score well against a large "rest" group.
std::vector<double> categorical_p(const std::vector<double>& xs, size_t choices, double prior_weight) {
  std::vector<double> w = trial_weights(xs.size());
  w.push_back(prior_weight);
  double total = std::accumulate(w.begin(), w.end(), 0.0);
  double kernels = static_cast<double>(xs.size() + 1);
  double fill = prior_weight / kernels;
  double row = fill * static_cast<double>(choices);
  std::vector<double> p(choices, 0.0);
  for (size_t k = 0; k < w.size(); ++k) {
    bool prior = k == xs.size();
    for (size_t c = 0; c < choices; ++c) {
      bool own = !prior && static_cast<size_t>(xs[k]) == c;
      p[c] += w[k] / total * (fill + (own ? 1.0 : 0.0)) / (row + (prior ? 0.0 : 1.0));
    }
  }
  return p;
}

constexpr long long kMostCandidates = 10000;

// The finished trials on one side of TPE's split: the good group or the rest.
using Group = std::vector<const Observation*>;

class TpeSampler : public Sampler {
 public:
  TpeSampler(const Experiment& e, std::uint64_t seed, bool multivariate)
      : experiment_(e), seed_(seed), multivariate_(multivariate) {
    SpecError ignore = [](const std::string&, const std::string&) {};
    startup_ = static_cast<size_t>(integer_setting(e, "n_startup_trials", 0, ignore).value_or(10));
    candidates_ = static_cast<int>(integer_setting(e, "n_ei_candidates", 1, ignore)
                                       .value_or(integer_setting(e, "n_EI_candidates", 1, ignore).value_or(24)));
    gamma_ = number_setting(e, "gamma", ignore);
    prior_weight_ = number_setting(e, "prior_weight", ignore).value_or(1.0);
  }

  std::optional<Point> suggest(int trial, const std::vector<Observation>& history) override {
    const std::vector<const Observation*> done = finished_trials(history);
    if (done.size() < std::max<size_t>(startup_, 1)) {
      auto rng = trial_rng(seed_, trial);
      return random_point(experiment_, rng);
    }
    // Split into the good (below) and the rest by objective; ties keep trial order.
    std::vector<const Observation*> ranked = done;
    bool minimize = experiment_.objective.type == Goal::minimize;
    std::stable_sort(ranked.begin(), ranked.end(), [&](const Observation* a, const Observation* b) {
      return minimize ? a->objective < b->objective : a->objective > b->objective;
    });
    size_t n = ranked.size();
    size_t n_below = gamma_ ? static_cast<size_t>(std::ceil(*gamma_ * static_cast<double>(n)))
                            : std::min<size_t>(static_cast<size_t>(std::ceil(0.1 * static_cast<double>(n))), 25);
    n_below = std::clamp<size_t>(n_below, 1, n);
    std::vector<const Observation*> below(ranked.begin(), ranked.begin() + static_cast<long>(n_below));
    std::vector<const Observation*> above(ranked.begin() + static_cast<long>(n_below), ranked.end());
    auto by_trial = [](const Observation* a, const Observation* b) { return a->trial < b->trial; };
    std::sort(below.begin(), below.end(), by_trial);
    std::sort(above.begin(), above.end(), by_trial);

    if (multivariate_) return suggest_joint(trial, below, above);
    Point point(experiment_.parameters.size());
    for (size_t j = 0; j < experiment_.parameters.size(); ++j) {
      auto prng = trial_rng(seed_, trial, j + 1);
      point[j] = suggest_one(j, below, above, prng);
    }
    return point;
  }

 private:
  double suggest_one(size_t j, const Group& below, const Group& above, std::mt19937_64& rng) {
    const Parameter& p = experiment_.parameters[j];
    std::uniform_real_distribution<double> u(0.0, 1.0);
    if (p.type == ParameterType::discrete || p.type == ParameterType::categorical) {
      size_t choices = p.list.size();
      auto values = [&](const std::vector<const Observation*>& group) {
        std::vector<double> xs;
        for (const auto* o : group) xs.push_back(o->point[j]);
        return xs;
      };
      auto pl = categorical_p(values(below), choices, prior_weight_);
      auto pg = categorical_p(values(above), choices, prior_weight_);
      std::discrete_distribution<size_t> pick(pl.begin(), pl.end());
      size_t best = 0;
      double best_score = -INFINITY;
      for (int c = 0; c < candidates_; ++c) {
        size_t x = pick(rng);
        double score = std::log(pl[x]) - std::log(pg[x]);
        if (score > best_score) best_score = score, best = x;
      }
      return static_cast<double>(best);
    }
    Scale s = scale_of(p);
    auto model = [&](const std::vector<const Observation*>& group) {
      std::vector<double> xs;
      for (const auto* o : group) xs.push_back(s.log ? std::log(o->point[j]) : o->point[j]);
      return xs;
    };
    Mixture l = numeric_mixture(model(below), s, prior_weight_);
    Mixture g = numeric_mixture(model(above), s, prior_weight_);
    std::discrete_distribution<size_t> component(l.weight.begin(), l.weight.end());
    std::normal_distribution<double> normal(0.0, 1.0);
    double best = 0, best_score = -INFINITY;
    for (int c = 0; c < candidates_; ++c) {
      size_t k = component(rng);
      double x = 0;
      // Truncated normal by rejection; the prior's width keeps rejections rare.
      for (int attempt = 0;; ++attempt) {
        x = l.mu[k] + l.sigma[k] * normal(rng);
        if (x >= s.low && x <= s.high) break;
        if (attempt == 100) {
          x = s.low + u(rng) * (s.high - s.low);
          break;
        }
      }
      x = snap(p, s, x);
      double score = numeric_log_p(l, s, x) - numeric_log_p(g, s, x);
      if (score > best_score) best_score = score, best = x;
    }
    return s.log ? std::exp(best) : best;
  }

  // Multivariate: one kernel per observation over all parameters at once, so that
  // parameters that only work together are proposed together. Every numeric kernel has the
  // same width, Scott's rule on the range (0.2·n^(−1/(d+4))), as in Optuna's multivariate TPE.
  struct Joint {
    std::vector<double> weight;                 // per kernel, the prior last
    std::vector<std::vector<double>> mu, sigma; // [parameter][kernel]; numeric parameters
    std::vector<std::vector<std::vector<double>>> cat;  // [parameter][kernel][category]
  };

  Joint joint_of(const std::vector<const Observation*>& group) const {
    Joint m;
    size_t n = group.size(), d = experiment_.parameters.size();
    m.weight = trial_weights(n);
    m.weight.push_back(prior_weight_);
    double total = std::accumulate(m.weight.begin(), m.weight.end(), 0.0);
    for (auto& w : m.weight) w /= total;
    double sigma0 = 0.2 * std::pow(static_cast<double>(std::max<size_t>(n, 1)), -1.0 / (static_cast<double>(d) + 4));
    m.mu.resize(d);
    m.sigma.resize(d);
    m.cat.resize(d);
    for (size_t j = 0; j < d; ++j) {
      const Parameter& p = experiment_.parameters[j];
      if (p.type == ParameterType::discrete || p.type == ParameterType::categorical) {
        size_t choices = p.list.size();
        double fill = prior_weight_ / static_cast<double>(n + 1);
        for (size_t k = 0; k <= n; ++k) {
          std::vector<double> row(choices, fill);
          if (k < n) row[static_cast<size_t>(group[k]->point[j])] += 1;
          double sum = std::accumulate(row.begin(), row.end(), 0.0);
          for (auto& v : row) v /= sum;
          m.cat[j].push_back(std::move(row));
        }
        continue;
      }
      Scale sc = scale_of(p);
      double range = sc.high - sc.low;
      double min_sigma = range / std::min(100.0, 1.0 + static_cast<double>(n + 1));
      for (size_t k = 0; k < n; ++k) {
        m.mu[j].push_back(sc.log ? std::log(group[k]->point[j]) : group[k]->point[j]);
        m.sigma[j].push_back(std::clamp(sigma0 * range, min_sigma, range));
      }
      m.mu[j].push_back(0.5 * (sc.low + sc.high));
      m.sigma[j].push_back(range);
    }
    return m;
  }

  // x in model space (log for log scales; category indices).
  double joint_log_p(const Joint& m, const std::vector<double>& x) const {
    std::vector<double> terms;
    for (size_t k = 0; k < m.weight.size(); ++k) {
      double t = std::log(m.weight[k]);
      for (size_t j = 0; j < x.size(); ++j) {
        const Parameter& p = experiment_.parameters[j];
        if (p.type == ParameterType::discrete || p.type == ParameterType::categorical) {
          t += std::log(m.cat[j][k][static_cast<size_t>(x[j])]);
          continue;
        }
        Scale sc = scale_of(p);
        Mixture one{{m.mu[j][k]}, {m.sigma[j][k]}, {1.0}};
        t += numeric_log_p(one, sc, x[j]);
      }
      terms.push_back(t);
    }
    return log_sum_exp(terms);
  }

  std::optional<Point> suggest_joint(int trial, const Group& below, const Group& above) const {
    Joint l = joint_of(below), g = joint_of(above);
    auto rng = trial_rng(seed_, trial, 1);
    std::discrete_distribution<size_t> component(l.weight.begin(), l.weight.end());
    std::normal_distribution<double> normal(0.0, 1.0);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    const size_t d = experiment_.parameters.size();
    std::vector<double> best;
    double best_score = -INFINITY;
    for (int c = 0; c < candidates_; ++c) {
      size_t k = component(rng);
      std::vector<double> x(d);
      for (size_t j = 0; j < d; ++j) {
        const Parameter& p = experiment_.parameters[j];
        if (p.type == ParameterType::discrete || p.type == ParameterType::categorical) {
          std::discrete_distribution<size_t> pick(l.cat[j][k].begin(), l.cat[j][k].end());
          x[j] = static_cast<double>(pick(rng));
          continue;
        }
        Scale sc = scale_of(p);
        double v = 0;
        for (int attempt = 0;; ++attempt) {
          v = l.mu[j][k] + l.sigma[j][k] * normal(rng);
          if (v >= sc.low && v <= sc.high) break;
          if (attempt == 100) {
            v = sc.low + u(rng) * (sc.high - sc.low);
            break;
          }
        }
        x[j] = snap(p, sc, v);
      }
      double score = joint_log_p(l, x) - joint_log_p(g, x);
      if (score > best_score) best_score = score, best = x;
    }
    Point point(d);
    for (size_t j = 0; j < d; ++j) point[j] = scale_of(experiment_.parameters[j]).log ? std::exp(best[j]) : best[j];
    return point;
  }

  const Experiment& experiment_;
  std::uint64_t seed_;
  size_t startup_ = 10;
  int candidates_ = 24;
  std::optional<double> gamma_;
  double prior_weight_ = 1.0;
  bool multivariate_ = false;
};

void validate(const Experiment& e, const SpecError& fail) {
  only_settings(e, {"random_state", "n_startup_trials", "n_ei_candidates", "n_EI_candidates", "gamma", "prior_weight"}, fail);
  integer_setting(e, "random_state", 0, fail);
  integer_setting(e, "n_startup_trials", 0, fail);
  // Each candidate is scored inside the journal's lock, which every array task waits on.
  integer_setting(e, "n_ei_candidates", 1, fail, kMostCandidates);
  integer_setting(e, "n_EI_candidates", 1, fail, kMostCandidates);
  if (auto g = number_setting(e, "gamma", fail); g && (*g <= 0 || *g > 1)) fail("algorithmSettings", "gamma must be in (0, 1]");
  if (auto w = number_setting(e, "prior_weight", fail); w && *w <= 0) fail("algorithmSettings", "prior_weight must be positive");
}

std::unique_ptr<Sampler> make(const Experiment& e, std::uint64_t seed) {
  return std::make_unique<TpeSampler>(e, seed, false);
}

std::unique_ptr<Sampler> make_multivariate(const Experiment& e, std::uint64_t seed) {
  return std::make_unique<TpeSampler>(e, seed, true);
}

}  // namespace

const AlgorithmInfo kTpe{"tpe", &validate, &unlimited, &make};
// Katib's name for TPE with a joint density over all parameters.
const AlgorithmInfo kMultivariateTpe{"multivariate-tpe", &validate, &unlimited, &make_multivariate};

}  // namespace cohort::tuner
