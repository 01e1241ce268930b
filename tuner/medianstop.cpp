// medianstop: Katib's median stopping rule. A trial is stopped at step S when its best
// objective value so far is worse than the median, over the trials that succeeded, of each
// one's mean objective up to S. It applies once the trial has reported `start_step`
// intermediate values and at least `min_trials_required` trials have succeeded.
#include <algorithm>

#include "tuner/sampler.hpp"
#include "tuner/stoppers.hpp"

namespace cohort::tuner {
namespace {

// A bound on the settings that any real sweep stays far below.
constexpr long long kMost = 1'000'000;

class MedianStop : public Stopper {
 public:
  explicit MedianStop(const Experiment& e)
      : objective_(e.objective),
        min_trials_required_(setting(e, "min_trials_required", 3)),
        start_step_(setting(e, "start_step", 4)) {}

  std::optional<std::string> should_stop(const Curve& curve, const CompletedCurves& completed) override {
    if (static_cast<int>(curve.size()) < start_step_) return std::nullopt;
    const long long step = curve.back().first;
    std::vector<double> means = running_means(completed(), step);
    if (static_cast<int>(means.size()) < min_trials_required_ || means.empty()) return std::nullopt;
    std::sort(means.begin(), means.end());
    const size_t mid = means.size() / 2;
    const double median = means.size() % 2 ? means[mid] : 0.5 * (means[mid - 1] + means[mid]);
    double best = curve.front().second;
    for (const auto& [s, v] : curve) {
      if (objective_.better(v, best)) best = v;
    }
    if (!objective_.better(median, best)) return std::nullopt;
    return "medianstop: best " + objective_.metric + " " + format_number(best) + " by step " + std::to_string(step) +
           " is worse than the median " + format_number(median) + " of " + std::to_string(means.size()) +
           " completed trials' running averages";
  }

 private:
  static int setting(const Experiment& e, const std::string& name, int otherwise) {
    const auto text = e.early_stopping_setting(name);
    return text ? std::stoi(*text) : otherwise;
  }

  // Each completed trial's mean objective over its values up to `step`, for those that
  // reported any.
  static std::vector<double> running_means(const std::vector<Curve>& completed, long long step) {
    std::vector<double> means;
    for (const auto& other : completed) {
      double sum = 0;
      int n = 0;
      for (const auto& [s, v] : other) {
        if (s <= step) sum += v, ++n;
      }
      if (n > 0) means.push_back(sum / n);
    }
    return means;
  }

  Objective objective_;
  int min_trials_required_;
  int start_step_;
};

void validate(const Experiment& e, const SpecError& fail) {
  whole_number_settings(e, {{"min_trials_required", 1, kMost}, {"start_step", 1, kMost}}, fail);
}

std::unique_ptr<Stopper> make(const Experiment& e) { return std::make_unique<MedianStop>(e); }

}  // namespace

const StopperInfo kMedianStop{"medianstop", &validate, &make};

}  // namespace cohort::tuner
