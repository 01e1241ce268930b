// Early stopping: the stoppers' table, their settings, and the median stopping rule.
#include <gtest/gtest.h>

#include "common/error.hpp"
#include "tuner/stopper.hpp"

namespace cohort::tuner {
namespace {

// An experiment that stops trials early with medianstop and `settings`.
Experiment median_stop(const std::string& type = "minimize", const std::string& settings = "[]") {
  return parse_experiment("objective: {type: " + type + ", objectiveMetricName: loss}\n"
                          "algorithm: {algorithmName: random}\nmaxTrialCount: 4\n"
                          "parameters: [{name: x, parameterType: double, feasibleSpace: {min: \"0\", max: \"1\"}}]\n"
                          "trialTemplate: {command: [\"true\"]}\n"
                          "earlyStopping: {algorithmName: medianstop, algorithmSettings: " + settings + "}\n",
                          "exp.yaml");
}

Curve flat(double v, int steps) {
  Curve c;
  for (int s = 1; s <= steps; ++s) c.emplace_back(s, v);
  return c;
}

// The curves of the succeeded trials, as the runner hands them over.
CompletedCurves completed(std::vector<Curve> curves) {
  return [curves = std::move(curves)]() -> const std::vector<Curve>& { return curves; };
}

TEST(MedianStop, StopsATrialWorseThanTheMedianOfCompletedTrials) {
  auto rule = make_stopper(median_stop());
  auto why = rule->should_stop(flat(5, 4), completed({flat(1, 10), flat(2, 10), flat(3, 10)}));
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("worse than the median 2"), std::string::npos) << *why;
  EXPECT_FALSE(rule->should_stop(flat(1.5, 4), completed({flat(1, 10), flat(2, 10), flat(3, 10)})));
}

TEST(MedianStop, WaitsForStartStepAndForEnoughCompletedTrials) {
  auto rule = make_stopper(median_stop());
  EXPECT_FALSE(rule->should_stop(flat(5, 3), completed({flat(1, 10), flat(2, 10), flat(3, 10)})));
  EXPECT_FALSE(rule->should_stop(flat(5, 4), completed({flat(1, 10), flat(2, 10)})));
  rule = make_stopper(median_stop("minimize", "[{name: min_trials_required, value: \"2\"}]"));
  EXPECT_TRUE(rule->should_stop(flat(5, 4), completed({flat(1, 10), flat(2, 10)})));
}

TEST(MedianStop, MaximisingStopsTrialsBelowTheMedian) {
  auto rule = make_stopper(median_stop("maximize"));
  EXPECT_TRUE(rule->should_stop(flat(0.5, 4), completed({flat(1, 10), flat(2, 10), flat(3, 10)})));
  EXPECT_FALSE(rule->should_stop(flat(5, 4), completed({flat(1, 10), flat(2, 10), flat(3, 10)})));
}

TEST(MedianStop, ReadsTheCompletedTrialsOnlyOnceTheTrialReachedStartStep) {
  auto rule = make_stopper(median_stop("minimize", "[{name: start_step, value: \"2\"}]"));
  int reads = 0;
  const std::vector<Curve> curves{flat(1, 10), flat(2, 10), flat(3, 10)};
  CompletedCurves counted = [&]() -> const std::vector<Curve>& {
    ++reads;
    return curves;
  };
  EXPECT_FALSE(rule->should_stop(flat(5, 1), counted));
  EXPECT_EQ(reads, 0);
  EXPECT_TRUE(rule->should_stop(flat(5, 2), counted));
  EXPECT_EQ(reads, 1);
}

TEST(Stopper, TheTableNamesEveryStopper) {
  EXPECT_EQ(stopper_names(), "medianstop");
  ASSERT_TRUE(find_stopper("medianstop"));
  EXPECT_EQ(find_stopper("medianstop")->name, "medianstop");
  EXPECT_FALSE(find_stopper("hyperband"));
}

TEST(Stopper, AnExperimentWithoutEarlyStoppingHasNone) {
  Experiment e = median_stop();
  e.early_stopping.clear();
  EXPECT_FALSE(make_stopper(e));
}

TEST(Stopper, AnUnknownNameIsAnInputErrorListingTheKnownOnes) {
  Experiment e = median_stop();
  e.early_stopping = "truncation";
  try {
    make_stopper(e);
    FAIL() << "accepted";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::input);
    EXPECT_STREQ(error.what(), "'truncation' is not an early-stopping algorithm (expected one of: medianstop)");
  }
}

}  // namespace
}  // namespace cohort::tuner
