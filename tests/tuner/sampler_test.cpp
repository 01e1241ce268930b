// The search algorithms: reproducible from their seed, inside the space, and searching.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "common/error.hpp"
#include "tuner/sampler.hpp"

namespace cohort::tuner {
namespace {

Experiment experiment(const std::string& algorithm, const std::string& parameters, const std::string& settings = "") {
  return parse_experiment("objective: {type: minimize, objectiveMetricName: loss}\n"
                          "algorithm: {algorithmName: " + algorithm + (settings.empty() ? "" : ", algorithmSettings: " + settings) +
                              "}\nmaxTrialCount: 100\nparameters:\n" + parameters + "trialTemplate: {command: [true]}\n",
                          "exp.yaml");
}

// Runs `n` trials of `e` one after another against `f`, as the journal would show them.
std::vector<Observation> optimise(const Experiment& e, std::uint64_t seed, int n, double (*f)(const Point&)) {
  std::vector<Observation> history;
  for (int i = 0; i < n; ++i) {
    auto point = make_sampler(e, seed)->suggest(i, history);
    EXPECT_TRUE(point);
    Observation o;
    o.trial = i;
    o.point = *point;
    o.finished = true;
    o.objective = f(*point);
    history.push_back(o);
  }
  return history;
}

const std::string kMixed =
    "  - {name: x, parameterType: double, feasibleSpace: {min: \"-1\", max: \"2\"}}\n"
    "  - {name: lr, parameterType: double, feasibleSpace: {min: \"0.0001\", max: \"1\", distribution: logUniform}}\n"
    "  - {name: n, parameterType: int, feasibleSpace: {min: \"2\", max: \"10\", step: \"2\"}}\n"
    "  - {name: d, parameterType: double, feasibleSpace: {min: \"0\", max: \"1\", step: \"0.25\"}}\n"
    "  - {name: opt, parameterType: categorical, feasibleSpace: {list: [sgd, adam, rmsprop]}}\n"
    "  - {name: k, parameterType: discrete, feasibleSpace: {list: [\"1\", \"5\", \"25\"]}}\n";

void expect_inside(const Experiment& e, const Point& p) {
  Assignment a = to_assignment(e, p);
  double x = std::stod(a[0].second), lr = std::stod(a[1].second), d = std::stod(a[3].second);
  long n = std::stol(a[2].second);
  EXPECT_TRUE(x >= -1 && x <= 2) << x;
  EXPECT_TRUE(lr >= 0.0001 && lr <= 1) << lr;
  EXPECT_TRUE(n >= 2 && n <= 10 && n % 2 == 0) << n;
  EXPECT_TRUE(d == 0 || d == 0.25 || d == 0.5 || d == 0.75 || d == 1) << d;
  EXPECT_TRUE(a[4].second == "sgd" || a[4].second == "adam" || a[4].second == "rmsprop") << a[4].second;
  EXPECT_TRUE(a[5].second == "1" || a[5].second == "5" || a[5].second == "25") << a[5].second;
  EXPECT_EQ(to_point(e, a), p);
}

double quadratic(const Point& p) { return (p[0] - 0.3) * (p[0] - 0.3); }
double mixed_objective(const Point& p) {
  return (p[0] - 1) * (p[0] - 1) + std::pow(std::log10(p[1]) + 2, 2) + (p[4] == 1 ? 0 : 1) + p[2] / 10;
}

TEST(Grid, VisitsEveryCombinationOnceWithTheLastParameterFastest) {
  Experiment e = experiment("grid",
                            "  - {name: a, parameterType: int, feasibleSpace: {min: \"1\", max: \"3\"}}\n"
                            "  - {name: b, parameterType: categorical, feasibleSpace: {list: [x, y]}}\n");
  std::vector<Observation> history;
  std::vector<std::string> seen;
  for (int i = 0;; ++i) {
    auto p = make_sampler(e, 1)->suggest(i, history);
    if (!p) break;
    auto a = to_assignment(e, *p);
    seen.push_back(a[0].second + a[1].second);
    history.push_back({i, *p, false, 0, {}});
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"1x", "1y", "2x", "2y", "3x", "3y"}));
}

TEST(Grid, ProposesAKilledTrialsPointAgain) {
  Experiment e = experiment("grid", "  - {name: a, parameterType: int, feasibleSpace: {min: \"1\", max: \"3\"}}\n");
  // Trial 1 (a=2) was killed, so the history leaves it out.
  std::vector<Observation> history{{0, {1}, true, 0, {}}, {2, {3}, true, 0, {}}};
  auto p = make_sampler(e, 1)->suggest(3, history);
  ASSERT_TRUE(p);
  EXPECT_EQ((*p)[0], 2);
  history.push_back({3, *p, true, 0, {}});
  EXPECT_FALSE(make_sampler(e, 1)->suggest(4, history));
}

TEST(Random, TheSameSeedGivesTheSameTrialsAndAnotherSeedOthers) {
  Experiment e = experiment("random", kMixed);
  for (int i = 0; i < 20; ++i) {
    auto a = make_sampler(e, 7)->suggest(i, {});
    EXPECT_EQ(a, make_sampler(e, 7)->suggest(i, {}));
    EXPECT_NE(a, make_sampler(e, 8)->suggest(i, {}));
    expect_inside(e, *a);
  }
}

// random_state is most often a small number: trial S of seed S, and trial T of seed S against
// trial S of seed T, are points of their own.
TEST(Random, SmallSeedsShareNoTrials) {
  Experiment e = experiment("random", kMixed);
  std::set<std::vector<double>> diagonal;
  for (int s = 0; s < 10; ++s) {
    diagonal.insert(*make_sampler(e, s)->suggest(s, {}));
    for (int t = s + 1; t < 10; ++t) EXPECT_NE(make_sampler(e, s)->suggest(t, {}), make_sampler(e, t)->suggest(s, {}));
  }
  EXPECT_EQ(diagonal.size(), 10u);
}

TEST(Random, LogUniformSpreadsOverDecades) {
  Experiment e = experiment("random", kMixed);
  int below_001 = 0;
  for (int i = 0; i < 400; ++i) below_001 += (*make_sampler(e, 3)->suggest(i, {}))[1] < 0.01;
  // Two of the four decades lie below 0.01.
  EXPECT_GT(below_001, 140);
  EXPECT_LT(below_001, 260);
}

// Katib's normal: centred on the middle of min..max with sigma a sixth of the width, and
// never outside it. About 68% of draws lie within one sigma, against a third for uniform.
TEST(Random, NormalAndLogNormalCentreTheDrawsAndStayInRange) {
  Experiment e = experiment("random",
                            "  - {name: x, parameterType: double, feasibleSpace: {min: \"0\", max: \"6\", distribution: normal}}\n"
                            "  - {name: b, parameterType: int, feasibleSpace: {min: \"1\", max: \"10000\", distribution: logNormal}}\n");
  int near = 0, near_log = 0;
  for (int i = 0; i < 1000; ++i) {
    const Point p = *make_sampler(e, 5)->suggest(i, {});
    ASSERT_GE(p[0], 0);
    ASSERT_LE(p[0], 6);
    ASSERT_GE(p[1], 1);
    ASSERT_LE(p[1], 10000);
    near += std::abs(p[0] - 3) < 1;
    near_log += p[1] >= 10 && p[1] <= 1000;  // within one sigma of 100 on the log scale
  }
  EXPECT_GT(near, 600);
  EXPECT_LT(near, 760);
  EXPECT_GT(near_log, 600);
}

TEST(Sobol, EveryOneDimensionalProjectionIsStratified) {
  std::string params;
  for (int j = 0; j < 21; ++j) {
    params += "  - {name: p" + std::to_string(j) + ", parameterType: double, feasibleSpace: {min: \"0\", max: \"1\"}}\n";
  }
  Experiment e = experiment("sobol", params);
  const int n = 64;
  std::vector<std::set<int>> cells(21);
  for (int i = 0; i < n; ++i) {
    auto p = make_sampler(e, 5)->suggest(i, {});
    for (int j = 0; j < 21; ++j) cells[j].insert(static_cast<int>((*p)[j] * n));
  }
  for (int j = 0; j < 21; ++j) EXPECT_EQ(cells[j].size(), static_cast<size_t>(n)) << "dimension " << j;
}

TEST(Sobol, MoreParametersThanItsDirectionNumbersIsAnError) {
  std::string params;
  for (int j = 0; j < 22; ++j) {
    params += "  - {name: p" + std::to_string(j) + ", parameterType: double, feasibleSpace: {min: \"0\", max: \"1\"}}\n";
  }
  EXPECT_THROW(experiment("sobol", params), Error);
}

TEST(Tpe, IsReproducibleAndStaysInsideAMixedSpace) {
  Experiment e = experiment("tpe", kMixed);
  auto a = optimise(e, 42, 40, mixed_objective);
  auto b = optimise(e, 42, 40, mixed_objective);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].point, b[i].point);
    expect_inside(e, a[i].point);
  }
}

TEST(MultivariateTpe, IsReproducibleStaysInsideAMixedSpaceAndBeatsRandomSearch) {
  Experiment e = experiment("multivariate-tpe", kMixed);
  auto a = optimise(e, 42, 40, mixed_objective);
  auto b = optimise(e, 42, 40, mixed_objective);
  double best = INFINITY, best_random = INFINITY;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].point, b[i].point);
    expect_inside(e, a[i].point);
    best = std::min(best, a[i].objective);
  }
  for (const auto& o : optimise(experiment("random", kMixed), 42, 40, mixed_objective)) {
    best_random = std::min(best_random, o.objective);
  }
  EXPECT_LT(best, best_random);
}

TEST(Tpe, ConcentratesAroundTheOptimumOnceStarted) {
  Experiment tpe = experiment("tpe", "  - {name: x, parameterType: double, feasibleSpace: {min: \"0\", max: \"1\"}}\n");
  Experiment random = experiment("random", "  - {name: x, parameterType: double, feasibleSpace: {min: \"0\", max: \"1\"}}\n");
  auto mean_late_distance = [](const std::vector<Observation>& h) {
    double s = 0;
    for (size_t i = 20; i < h.size(); ++i) s += std::abs(h[i].point[0] - 0.3);
    return s / static_cast<double>(h.size() - 20);
  };
  double t = 0, r = 0;
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    t += mean_late_distance(optimise(tpe, seed, 50, quadratic));
    r += mean_late_distance(optimise(random, seed, 50, quadratic));
  }
  // Random search averages a distance of about 0.29 here.
  EXPECT_LT(t, 0.7 * r) << "tpe " << t / 5 << ", random " << r / 5;
}

TEST(Tpe, PrefersTheBestCategory) {
  Experiment e = experiment("tpe", kMixed);
  auto h = optimise(e, 9, 60, mixed_objective);
  int adam = 0;
  for (size_t i = 30; i < h.size(); ++i) adam += h[i].point[4] == 1;
  EXPECT_GT(adam, 20);
}

TEST(Algorithms, FormatNumbersReadBackExactly) {
  for (double v : {0.1, 1e-5, 123456.789, -2.5, 3.0}) EXPECT_EQ(std::stod(format_number(v)), v);
  EXPECT_EQ(format_number(0.1), "0.1");
}

}  // namespace
}  // namespace cohort::tuner

namespace cohort::tuner {
namespace {

TEST(BayesianOptimization, IsReproducibleAndBeatsRandomSearchOnAQuadratic) {
  Experiment bo = experiment("bayesianoptimization", kMixed);
  Experiment random = experiment("random", kMixed);
  auto a = optimise(bo, 4, 25, mixed_objective);
  auto b = optimise(bo, 4, 25, mixed_objective);
  double best_bo = INFINITY, best_random = INFINITY;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].point, b[i].point);
    expect_inside(bo, a[i].point);
    best_bo = std::min(best_bo, a[i].objective);
  }
  for (const auto& o : optimise(random, 4, 25, mixed_objective)) best_random = std::min(best_random, o.objective);
  EXPECT_LT(best_bo, best_random);
}

Experiment hyperband(const std::string& settings) {
  return experiment("hyperband",
                    "  - {name: x, parameterType: double, feasibleSpace: {min: \"0\", max: \"1\"}}\n"
                    "  - {name: epochs, parameterType: int, feasibleSpace: {min: \"1\", max: \"27\"}}\n",
                    settings);
}

TEST(Hyperband, PromotesTheTopThirdOfARungToTheNextBudget) {
  Experiment e = hyperband("[{name: resource_name, value: epochs}, {name: random_state, value: \"1\"}]");
  std::vector<Observation> history;
  // Six configurations on rung 0 (1 epoch); the objective is x, so the best two are promoted.
  for (int i = 0; i < 6; ++i) history.push_back({i, {0.1 * (i + 1), 1}, true, 0.1 * (i + 1), {}});
  auto p = make_sampler(e, 1)->suggest(6, history);
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, (Point{0.1, 3}));
  history.push_back({6, *p, false, 0, {}});  // running on rung 1: not promoted again
  p = make_sampler(e, 1)->suggest(7, history);
  EXPECT_EQ(*p, (Point{0.2, 3}));
  history.push_back({7, *p, false, 0, {}});
  // Nothing left to promote: a new configuration, on the lowest rung of its bracket.
  p = make_sampler(e, 1)->suggest(8, history);
  EXPECT_NE((*p)[0], 0.3);
  EXPECT_TRUE((*p)[1] == 1 || (*p)[1] == 3 || (*p)[1] == 9) << (*p)[1];
}

TEST(Hyperband, NeedsAResourceParameter) {
  EXPECT_THROW(hyperband("[{name: eta, value: \"3\"}]"), Error);
  EXPECT_THROW(hyperband("[{name: resource_name, value: x}]"), Error);
  EXPECT_THROW(hyperband("[{name: resource_name, value: epochs}, {name: eta, value: \"1\"}]"), Error);
}

}  // namespace
}  // namespace cohort::tuner
