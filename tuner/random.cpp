// random: independent uniform draws (uniform in log space for logUniform parameters).
#include "tuner/algorithms.hpp"

namespace cohort::tuner {
namespace {

class RandomSampler : public Sampler {
 public:
  RandomSampler(const Experiment& e, std::uint64_t seed) : experiment_(e), seed_(seed) {}

  std::optional<Point> suggest(int trial, const std::vector<Observation>&) override {
    auto rng = trial_rng(seed_, trial);
    return random_point(experiment_, rng);
  }

 private:
  const Experiment& experiment_;
  std::uint64_t seed_;
};

void validate(const Experiment& e, const SpecError& fail) {
  only_settings(e, {"random_state"}, fail);
  integer_setting(e, "random_state", 0, fail);
}

std::unique_ptr<Sampler> make(const Experiment& e, std::uint64_t seed) { return std::make_unique<RandomSampler>(e, seed); }

}  // namespace

const AlgorithmInfo kRandom{"random", &validate, &unlimited, &make};

}  // namespace cohort::tuner
