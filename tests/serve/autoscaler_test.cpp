// The autoscaler's policy on a fake clock and made-up load: up at once, down only after the
// whole down-window, no flapping on a sawtooth, never past minReplicas or maxReplicas.
#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "serve/autoscaler.hpp"

namespace cohort::serve {
namespace {

using namespace std::chrono_literals;

// A service's load, one sample every 200 ms as the service's job takes them.
class Load {
 public:
  explicit Load(AutoscalerOptions o) : scaler_(o), replicas_(o.min_replicas) {}

  // `seconds` of `outstanding` requests under way, `rps` taken a second; every decision taken.
  void run(double seconds, int outstanding, double rps = 0) {
    for (int i = 0; i < static_cast<int>(seconds * 5); ++i) {
      now_ += 200ms;
      requests_ += rps / 5;
      const ScaleDecision d = scaler_.observe({now_, outstanding, static_cast<long long>(requests_)}, replicas_);
      if (d.changed()) {
        decisions.push_back(d);
        replicas_ = d.to;
      }
    }
  }
  int replicas() const { return replicas_; }
  std::vector<ScaleDecision> decisions;

 private:
  Autoscaler scaler_;
  int replicas_;
  AutoscaleClock::time_point now_{};
  double requests_ = 0;
};

AutoscalerOptions options() {
  return {.min_replicas = 1, .max_replicas = 4, .metric = ScaleMetric::concurrency, .target = 2,
          .up_window = 2s, .down_window = 10s};
}

TEST(Autoscaler, ScalesUpOnceTheUpWindowsAverageExceedsTheTarget) {
  Load load(options());
  load.run(5, 1);
  EXPECT_EQ(load.replicas(), 1);
  load.run(5, 6);
  EXPECT_EQ(load.replicas(), 3);
  ASSERT_FALSE(load.decisions.empty());
  EXPECT_EQ(load.decisions.front().from, 1);
  EXPECT_NE(load.decisions.back().reason.find("target 2.0"), std::string::npos) << load.decisions.back().reason;
}

TEST(Autoscaler, AShortBurstIsAveragedAway) {
  Load load(options());
  load.run(5, 0);
  load.run(0.2, 8);  // one sample of 8 among ten of 0: an average of 0.8
  load.run(5, 0);
  EXPECT_TRUE(load.decisions.empty());
}

TEST(Autoscaler, ScalesDownOnlyAfterTheWholeDownWindow) {
  Load load(options());
  load.run(5, 7);
  ASSERT_EQ(load.replicas(), 4);
  const auto ups = load.decisions.size();
  load.run(9, 0);  // under the 10 s window, with the 2 s of average going to 0
  EXPECT_EQ(load.replicas(), 4);
  load.run(4, 0);
  EXPECT_EQ(load.replicas(), 1);
  ASSERT_GT(load.decisions.size(), ups);
  for (auto i = ups; i < load.decisions.size(); ++i) EXPECT_LT(load.decisions[i].to, load.decisions[i].from);
  EXPECT_NE(load.decisions.back().reason.find("10 s down-window"), std::string::npos) << load.decisions.back().reason;
}

TEST(Autoscaler, ScalesDownToTheHighestCountOfTheWindow) {
  Load load(options());
  load.run(4, 8);
  ASSERT_EQ(load.replicas(), 4);
  load.run(20, 3);  // wants 2 for the whole window
  EXPECT_EQ(load.replicas(), 2);
}

TEST(Autoscaler, ASawtoothFasterThanTheDownWindowDoesNotFlap) {
  Load load(options());
  for (int i = 0; i < 10; ++i) {
    load.run(3, 7);
    load.run(3, 0);
  }
  EXPECT_EQ(load.replicas(), 4);
  for (const auto& d : load.decisions) EXPECT_GT(d.to, d.from) << d.reason;
}

TEST(Autoscaler, StaysWithinMinAndMax) {
  auto o = options();
  o.min_replicas = 2;
  o.max_replicas = 3;
  Load load(o);
  load.run(20, 0);
  EXPECT_EQ(load.replicas(), 2);
  load.run(5, 100);
  EXPECT_EQ(load.replicas(), 3);
  EXPECT_NE(load.decisions.back().reason.find("max 3"), std::string::npos) << load.decisions.back().reason;
  load.run(2, std::numeric_limits<int>::max());
  EXPECT_EQ(load.replicas(), 3);
  load.run(30, 0);
  EXPECT_EQ(load.replicas(), 2);
}

TEST(Autoscaler, ScalesOnRequestsPerSecond) {
  auto o = options();
  o.metric = ScaleMetric::rps;
  o.target = 10;
  Load load(o);
  load.run(5, 0, 5);
  EXPECT_EQ(load.replicas(), 1);
  load.run(5, 0, 25);
  EXPECT_EQ(load.replicas(), 3);
  EXPECT_NE(load.decisions.back().reason.find("rps"), std::string::npos) << load.decisions.back().reason;
  load.run(15, 0, 5);
  EXPECT_EQ(load.replicas(), 1);
}

TEST(Autoscaler, ACountChangedOutsideItStartsTheDownWindowAgain) {
  Autoscaler a(options());
  AutoscaleClock::time_point t{};
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(a.observe({t += 200ms, 0, 0}, 1).changed());
  // A rollout left two replicas: a lower count is acted on only after a whole window more.
  for (int i = 0; i < 45; ++i) EXPECT_FALSE(a.observe({t += 200ms, 0, 0}, 2).changed()) << i;
  bool down = false;
  for (int i = 0; i < 10 && !down; ++i) down = a.observe({t += 200ms, 0, 0}, 2).changed();
  EXPECT_TRUE(down);
}

TEST(Autoscaler, ARequeuedServiceStartsAtTheCountItHadReached) {
  EXPECT_EQ(replicas_to_start("requeued", 3, 1, 4), 3);
  EXPECT_EQ(replicas_to_start("requeued", 6, 1, 4), 4);  // maxReplicas lowered since
  EXPECT_EQ(replicas_to_start("requeued", 0, 2, 4), 2);  // an older registry without a count
  // Stopped for good, or a first run: minReplicas.
  EXPECT_EQ(replicas_to_start("stopped", 3, 1, 4), 1);
  EXPECT_EQ(replicas_to_start("submitted", 3, 1, 4), 1);
  EXPECT_EQ(replicas_to_start("", 0, 1, 1), 1);
}

TEST(Autoscaler, AServiceStartedAboveTheLoadsCountKeepsItForAWholeDownWindow) {
  Autoscaler a(options());
  AutoscaleClock::time_point t{};
  // Back from a requeue at 3 replicas with no load yet: no scale-down before the window ends.
  for (int i = 0; i < 45; ++i) EXPECT_FALSE(a.observe({t += 200ms, 0, 0}, 3).changed()) << i;
  bool down = false;
  for (int i = 0; i < 10 && !down; ++i) down = a.observe({t += 200ms, 0, 0}, 3).changed();
  EXPECT_TRUE(down);
}

TEST(Autoscaler, TheTargetDefaultsToKnatives) {
  InferenceService isvc;
  EXPECT_EQ(autoscaler_options(isvc).target, 100);
  isvc.container_concurrency = 10;
  EXPECT_EQ(autoscaler_options(isvc).target, 7);
  isvc.scale_target = 3;
  EXPECT_EQ(autoscaler_options(isvc).target, 3);
}

}  // namespace
}  // namespace cohort::serve
