// bayesianoptimization: a Gaussian process (Matérn 5/2 kernel over the unit cube, log scales
// in log space, categories one-hot) fitted to the finished trials, and the next point where
// the expected improvement is largest. The kernel's length scale and noise are chosen by the
// marginal likelihood from a small grid; the acquisition is maximised over random points and
// perturbations of the best trials, then refined locally. Meant for up to ~20 dimensions.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "tuner/algorithms.hpp"

namespace cohort::tuner {
namespace {

using Vec = std::vector<double>;

// Where each parameter lives in the model's coordinates: one column, or one per category.
struct Encoding {
  std::vector<size_t> offset;
  std::vector<size_t> width;
  size_t dims = 0;
};

Encoding encoding_of(const Experiment& e) {
  Encoding enc;
  for (const auto& p : e.parameters) {
    enc.offset.push_back(enc.dims);
    size_t w = p.type == ParameterType::categorical ? p.list.size() : 1;
    enc.width.push_back(w);
    enc.dims += w;
  }
  return enc;
}

// A parameter's value as a coordinate in [0, 1] (the inverse of from_unit, up to rounding).
double to_unit(const Parameter& p, double v) {
  switch (p.type) {
    case ParameterType::discrete:
      return p.list.size() == 1 ? 0.5 : v / static_cast<double>(p.list.size() - 1);
    case ParameterType::categorical:
      return v;
    case ParameterType::int_:
    case ParameterType::double_:
      if (p.max == p.min) return 0.5;
      if (p.log_scale() && !p.step) {
        return (std::log(v) - std::log(p.min)) / (std::log(p.max) - std::log(p.min));
      }
      return (v - p.min) / (p.max - p.min);
  }
  return 0;
}

Vec encode(const Experiment& e, const Encoding& enc, const Point& point) {
  Vec x(enc.dims, 0.0);
  for (size_t j = 0; j < e.parameters.size(); ++j) {
    const Parameter& p = e.parameters[j];
    if (p.type == ParameterType::categorical) x[enc.offset[j] + static_cast<size_t>(point[j])] = 1.0;
    else x[enc.offset[j]] = to_unit(p, point[j]);
  }
  return x;
}

// Model coordinates → the unit cube from_unit takes (a category by its largest column).
Vec decode(const Experiment& e, const Encoding& enc, const Vec& x) {
  Vec unit(e.parameters.size());
  for (size_t j = 0; j < e.parameters.size(); ++j) {
    const Parameter& p = e.parameters[j];
    double u = std::clamp(x[enc.offset[j]], 0.0, 1.0);
    if (p.type == ParameterType::categorical) {
      auto begin = x.begin() + static_cast<long>(enc.offset[j]);
      size_t k = static_cast<size_t>(std::max_element(begin, begin + static_cast<long>(enc.width[j])) - begin);
      u = (static_cast<double>(k) + 0.5) / static_cast<double>(p.list.size());
    } else if (p.type == ParameterType::discrete) {
      u = (std::round(u * static_cast<double>(p.list.size() - 1)) + 0.5) / static_cast<double>(p.list.size());
    } else if (p.type == ParameterType::int_ && p.distribution == Distribution::uniform) {
      // from_unit maps [k/n, (k+1)/n) to the k-th value; aim at the value nearest u.
      double n = static_cast<double>(*p.cardinality());
      u = (std::round(u * (n - 1)) + 0.5) / n;
    } else if (p.step) {
      double n = static_cast<double>(*p.cardinality());
      u = (std::round(u * (p.max - p.min) / *p.step) + 0.5) / n;
    }
    unit[j] = std::min(u, std::nextafter(1.0, 0.0));
  }
  return unit;
}

double matern52(const Vec& a, const Vec& b, double length) {
  double d2 = 0;
  for (size_t i = 0; i < a.size(); ++i) d2 += (a[i] - b[i]) * (a[i] - b[i]);
  double r = std::sqrt(5.0 * d2) / length;
  return (1 + r + r * r / 3) * std::exp(-r);
}

// Lower-triangular Cholesky factor in place; false when not positive definite.
bool cholesky(std::vector<double>& a, size_t n) {
  for (size_t j = 0; j < n; ++j) {
    double s = a[j * n + j];
    for (size_t k = 0; k < j; ++k) s -= a[j * n + k] * a[j * n + k];
    if (s <= 0) return false;
    double d = std::sqrt(s);
    a[j * n + j] = d;
    for (size_t i = j + 1; i < n; ++i) {
      double t = a[i * n + j];
      for (size_t k = 0; k < j; ++k) t -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = t / d;
    }
  }
  return true;
}

void solve_lower(const std::vector<double>& l, size_t n, Vec& b) {
  for (size_t i = 0; i < n; ++i) {
    double t = b[i];
    for (size_t k = 0; k < i; ++k) t -= l[i * n + k] * b[k];
    b[i] = t / l[i * n + i];
  }
}

void solve_upper(const std::vector<double>& l, size_t n, Vec& b) {
  for (size_t i = n; i-- > 0;) {
    double t = b[i];
    for (size_t k = i + 1; k < n; ++k) t -= l[k * n + i] * b[k];
    b[i] = t / l[i * n + i];
  }
}

struct Gp {
  std::vector<Vec> x;
  std::vector<double> chol;
  Vec alpha;
  double length = 1, noise = 1e-6;
  size_t n = 0;

  // Fits to standardised y; returns the log marginal likelihood (−inf when singular).
  double fit(const std::vector<Vec>& xs, const Vec& y, double l, double s2) {
    x = xs;
    n = xs.size();
    length = l;
    noise = s2;
    chol.assign(n * n, 0.0);
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j <= i; ++j) chol[i * n + j] = chol[j * n + i] = matern52(xs[i], xs[j], l);
      chol[i * n + i] += s2;
    }
    if (!cholesky(chol, n)) return -INFINITY;
    alpha = y;
    solve_lower(chol, n, alpha);
    double fit_term = std::inner_product(alpha.begin(), alpha.end(), alpha.begin(), 0.0);
    solve_upper(chol, n, alpha);
    double log_det = 0;
    for (size_t i = 0; i < n; ++i) log_det += std::log(chol[i * n + i]);
    return -0.5 * fit_term - log_det;
  }

  void predict(const Vec& at, double& mean, double& sd) const {
    Vec k(n);
    for (size_t i = 0; i < n; ++i) k[i] = matern52(at, x[i], length);
    mean = std::inner_product(k.begin(), k.end(), alpha.begin(), 0.0);
    solve_lower(chol, n, k);
    double var = 1.0 + noise - std::inner_product(k.begin(), k.end(), k.begin(), 0.0);
    sd = std::sqrt(std::max(var, 1e-12));
  }
};

// Expected improvement below `best` (we minimise).
double expected_improvement(double mean, double sd, double best) {
  double z = (best - mean) / sd;
  double pdf = std::exp(-0.5 * z * z) / std::sqrt(2 * M_PI);
  double cdf = 0.5 * std::erfc(-z / std::sqrt(2.0));
  return (best - mean) * cdf + sd * pdf;
}

class GpSampler : public Sampler {
 public:
  GpSampler(const Experiment& e, std::uint64_t seed) : experiment_(e), seed_(seed), enc_(encoding_of(e)) {
    SpecError ignore = [](const std::string&, const std::string&) {};
    initial_ = static_cast<size_t>(integer_setting(e, "n_initial_points", 1, ignore).value_or(10));
  }

  std::optional<Point> suggest(int trial, const std::vector<Observation>& history) override {
    const std::vector<const Observation*> done = finished_trials(history);
    auto rng = trial_rng(seed_, trial);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    if (done.size() < initial_) return random_point(experiment_, rng);
    std::vector<Vec> xs;
    Vec y;
    double sign = experiment_.objective.type == Goal::minimize ? 1.0 : -1.0;
    for (const auto* o : done) {
      xs.push_back(encode(experiment_, enc_, o->point));
      y.push_back(sign * o->objective);
    }
    double mean = std::accumulate(y.begin(), y.end(), 0.0) / static_cast<double>(y.size());
    double var = 0;
    for (double v : y) var += (v - mean) * (v - mean);
    double sd = std::sqrt(var / static_cast<double>(y.size()));
    if (sd <= 0) sd = 1;
    for (double& v : y) v = (v - mean) / sd;

    // Length scales relative to the cube's diagonal, so the grid suits any dimension.
    Gp gp;
    double best_ll = -INFINITY, best_l = 0.5, best_s2 = 1e-4;
    double diag = std::sqrt(static_cast<double>(enc_.dims));
    for (double l : {0.08, 0.15, 0.3, 0.55, 1.0}) {
      for (double s2 : {1e-6, 1e-2}) {
        double ll = gp.fit(xs, y, l * diag, s2);
        if (ll > best_ll) best_ll = ll, best_l = l * diag, best_s2 = s2;
      }
    }
    gp.fit(xs, y, best_l, best_s2);
    double best_y = *std::min_element(y.begin(), y.end());

    auto score = [&](const Vec& x) {
      double m, s;
      gp.predict(x, m, s);
      return expected_improvement(m, s, best_y);
    };
    // Candidates: uniform points, and points near the best trials so far.
    std::vector<size_t> order(y.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return y[a] < y[b]; });
    std::normal_distribution<double> normal(0.0, 1.0);
    auto perturb = [&](const Vec& x, double scale) {
      Vec c = x;
      for (size_t j = 0; j < experiment_.parameters.size(); ++j) {
        const Parameter& p = experiment_.parameters[j];
        size_t at = enc_.offset[j];
        if (p.type == ParameterType::categorical) {
          if (u(rng) < scale) {
            std::fill(c.begin() + static_cast<long>(at), c.begin() + static_cast<long>(at + enc_.width[j]), 0.0);
            c[at + static_cast<size_t>(u(rng) * static_cast<double>(enc_.width[j]))] = 1.0;
          }
        } else {
          c[at] = std::clamp(c[at] + scale * normal(rng), 0.0, 1.0);
        }
      }
      return c;
    };
    auto random_candidate = [&]() { return encode(experiment_, enc_, random_point(experiment_, rng)); };
    Vec best_x = random_candidate();
    double best_score = score(best_x);
    auto consider = [&](const Vec& c) {
      double s = score(c);
      if (s > best_score) best_score = s, best_x = c;
    };
    for (int i = 0; i < 300; ++i) consider(random_candidate());
    for (size_t k = 0; k < std::min<size_t>(5, order.size()); ++k) {
      for (int i = 0; i < 40; ++i) consider(perturb(xs[order[k]], i < 20 ? 0.1 : 0.02));
    }
    for (double scale : {0.05, 0.02, 0.01, 0.005}) {
      Vec centre = best_x;
      for (int i = 0; i < 25; ++i) consider(perturb(centre, scale));
    }
    return from_unit(experiment_, decode(experiment_, enc_, best_x));
  }

 private:
  const Experiment& experiment_;
  std::uint64_t seed_;
  Encoding enc_;
  size_t initial_ = 10;
};

void validate(const Experiment& e, const SpecError& fail) {
  only_settings(e, {"random_state", "n_initial_points"}, fail);
  integer_setting(e, "random_state", 0, fail);
  integer_setting(e, "n_initial_points", 1, fail);
  size_t dims = encoding_of(e).dims;
  if (dims > 40) {
    fail("", "bayesianoptimization models up to 40 dimensions (categories count one each); this space has " +
                 std::to_string(dims) + ": use tpe");
  }
}

std::unique_ptr<Sampler> make(const Experiment& e, std::uint64_t seed) { return std::make_unique<GpSampler>(e, seed); }

}  // namespace

const AlgorithmInfo kBayesianOptimization{"bayesianoptimization", &validate, &unlimited, &make};

}  // namespace cohort::tuner
