// Metrics in Katib's StdOut format and their strategies.
#include <gtest/gtest.h>

#include "tuner/metrics.hpp"

namespace cohort::tuner {
namespace {

Objective objective(Goal type = Goal::minimize) {
  Objective o;
  o.type = type;
  o.metric = "loss";
  o.additional = {"accuracy"};
  return o;
}

TEST(StdOut, ReadsNameValuePairsWithOrWithoutSpaces) {
  auto m = parse_metric_line("loss=0.25, accuracy = 0.9 lr=1e-3;");
  ASSERT_EQ(m.values.size(), 3u);
  EXPECT_EQ(m.values[0], (std::pair<std::string, double>{"loss", 0.25}));
  EXPECT_EQ(m.values[1], (std::pair<std::string, double>{"accuracy", 0.9}));
  EXPECT_EQ(m.values[2], (std::pair<std::string, double>{"lr", 1e-3}));
  EXPECT_FALSE(m.step);
}

TEST(StdOut, EpochOrStepMakesTheLineAnIntermediateValue) {
  EXPECT_EQ(parse_metric_line("epoch=3 loss=0.5").step, 3);
  EXPECT_EQ(parse_metric_line("Epoch 3: step=120 loss=0.5").step, 120);
  EXPECT_EQ(parse_metric_line("epoch=3 loss=0.5").values.size(), 1u);
}

TEST(StdOut, IgnoresValuesThatAreNotNumbers) {
  auto m = parse_metric_line("optimizer=adam loss=nan x==2 path=/a=b model=v1.2.3 loss=0.5");
  ASSERT_EQ(m.values.size(), 1u);
  EXPECT_EQ(m.values[0].second, 0.5);
}

TEST(Collector, FinalValuesFollowEachMetricsStrategy) {
  Objective o = objective();
  MetricCollector c(o);
  EXPECT_TRUE(c.feed("epoch=1 loss=0.5 accuracy=0.6"));
  EXPECT_TRUE(c.feed("epoch=2 loss=0.3 accuracy=0.8"));
  EXPECT_FALSE(c.feed("loss=0.4 accuracy=0.7 other=3"));
  EXPECT_EQ(c.value("loss"), 0.3);       // minimize: the minimum
  EXPECT_EQ(c.value("accuracy"), 0.7);   // others: the latest
  EXPECT_FALSE(c.value("other"));        // not a metric of the experiment
  EXPECT_EQ(c.curve().size(), 2u);
  o.strategies = {{"loss", MetricStrategy::latest}};
  MetricCollector latest(o);
  latest.feed("loss=0.1");
  latest.feed("loss=0.2");
  EXPECT_EQ(latest.value("loss"), 0.2);
}

}  // namespace
}  // namespace cohort::tuner
