// Metrics in Katib's StdOut format and their strategies.
#include <gtest/gtest.h>

#include "tuner/metrics.hpp"
#include "tuner/stopper.hpp"

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
  EXPECT_TRUE(c.feed("loss=0.4 accuracy=0.7 other=3"));
  EXPECT_EQ(c.value("loss"), 0.3);       // minimize: the minimum
  EXPECT_EQ(c.value("accuracy"), 0.7);   // others: the latest
  EXPECT_FALSE(c.value("other"));        // not a metric of the experiment
  EXPECT_EQ(c.curve(), (Curve{{1, 0.5}, {2, 0.3}, {3, 0.4}}));  // a value without a step is the next one
  o.strategies = {{"loss", MetricStrategy::latest}};
  MetricCollector latest(o);
  latest.feed("loss=0.1");
  latest.feed("loss=0.2");
  EXPECT_EQ(latest.value("loss"), 0.2);
}

// What Katib's pytorch-mnist trial writes through Python's logging, as Katib's default
// filter reads it: every value of the objective is one observation, one step.
TEST(Collector, EachValueWithoutAStepIsOneObservationAsKatibCountsThem) {
  Objective o = objective();
  MetricCollector c(o);
  const std::vector<std::string> log{
      "2026-12-03T16:00:00Z INFO     Using distributed PyTorch",
      "2026-12-03T16:00:01Z INFO     Train Epoch: 1 [0/640 (0%)]\tloss=2.3026",
      "2026-12-03T16:00:02Z INFO     Train Epoch: 1 [160/640 (25%)]\tloss=1.5000",
      // Katib's older summary format, which the default filter does not read.
      "2026-12-03T16:00:03Z INFO     {metricName: accuracy, metricValue: 0.7000};{metricName: loss, metricValue: 0.9000}",
  };
  std::vector<bool> intermediate;
  for (const auto& line : log) intermediate.push_back(c.feed(line));
  EXPECT_EQ(intermediate, (std::vector<bool>{false, true, true, false}));
  EXPECT_EQ(c.curve(), (Curve{{1, 2.3026}, {2, 1.5}}));
  EXPECT_EQ(c.value("loss"), 1.5);
  EXPECT_EQ(c.names_seen(), std::vector<std::string>{"loss"});
}

TEST(Collector, MetricsFormatFiltersReadWhatTheirGroupsCapture) {
  Objective o = objective();
  MetricsSource source;
  source.filters = {R"(\{metricName: ([\w|-]+), metricValue: ((-|\+)?[\d.]+)\})"};
  MetricCollector c(o, source);
  EXPECT_FALSE(c.feed("Train Epoch: 1 [0/640 (0%)]\tloss=2.3026"));
  EXPECT_TRUE(c.feed("{metricName: accuracy, metricValue: 0.7000};{metricName: loss, metricValue: 0.9000}"));
  EXPECT_EQ(c.value("loss"), 0.9);
  EXPECT_EQ(c.value("accuracy"), 0.7);
  EXPECT_EQ(c.names_seen(), (std::vector<std::string>{"accuracy", "loss"}));
  // Katib's default filter, given explicitly, reads what the built-in reading does.
  source.filters = {R"(([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?))"};
  MetricCollector d(o, source);
  EXPECT_TRUE(d.feed("epoch=2 loss=0.25 accuracy = 0.5 lr=abc"));
  EXPECT_EQ(d.curve(), (Curve{{2, 0.25}}));
  EXPECT_EQ(d.value("accuracy"), 0.5);
}

TEST(Collector, JsonLinesGiveMetricsAsNumbersOrStrings) {
  Objective o = objective();
  MetricsSource source;
  source.format = MetricsFormat::json;
  MetricCollector c(o, source);
  EXPECT_TRUE(c.feed(R"({"loss": "0.5", "timestamp": 1730000000.5})"));
  EXPECT_TRUE(c.feed(R"({"step": 7, "loss": 0.25, "accuracy": "0.9"})"));
  EXPECT_FALSE(c.feed("not json"));
  EXPECT_FALSE(c.feed(R"({"loss": "high"})"));
  EXPECT_EQ(c.curve(), (Curve{{1, 0.5}, {7, 0.25}}));
  EXPECT_EQ(c.value("accuracy"), 0.9);
}

TEST(Collector, AFilterNeedsToCompileAndHaveANameAndAValueGroup) {
  EXPECT_FALSE(check_metric_filter(R"(([\w-]+)=(\d+))"));
  EXPECT_NE(check_metric_filter("(unclosed").value_or("").find("is not a regular expression"), std::string::npos);
  EXPECT_EQ(check_metric_filter(R"(loss=(\d+))").value_or(""), "has 1 groups; it needs two: the metric's name, then its value");
  EXPECT_EQ(check_metric_filter(std::string(600, '(')).value_or(""), "is 600 characters long; a filter has at most 512");
}

}  // namespace
}  // namespace cohort::tuner
