// sobol: a Sobol' low-discrepancy sequence, shifted by a random digital shift drawn from the
// seed. Direction numbers: Joe and Kuo's primitive polynomials and initial values for the
// first 21 dimensions (S. Joe, F. Y. Kuo, "Constructing Sobol sequences with better
// two-dimensional projections", SIAM J. Sci. Comput. 30, 2008).
#include <array>
#include <cstdint>

#include "tuner/algorithms.hpp"

namespace cohort::tuner {
namespace {

struct Direction {
  unsigned degree;
  unsigned coefficients;        // the polynomial's inner coefficients, as Joe and Kuo's a
  std::array<unsigned, 8> m;    // initial direction numbers m_1..m_degree
};

// Dimension 1 is van der Corput's sequence (all m = 1); these are dimensions 2..21.
constexpr std::array<Direction, 20> kDirections{{
    {1, 0, {1}},
    {2, 1, {1, 3}},
    {3, 1, {1, 3, 1}},
    {3, 2, {1, 1, 1}},
    {4, 1, {1, 1, 3, 3}},
    {4, 4, {1, 3, 5, 13}},
    {5, 2, {1, 1, 5, 5, 17}},
    {5, 4, {1, 1, 5, 5, 5}},
    {5, 7, {1, 1, 7, 11, 19}},
    {5, 11, {1, 1, 5, 1, 1}},
    {5, 13, {1, 1, 1, 3, 11}},
    {5, 14, {1, 3, 5, 5, 31}},
    {6, 1, {1, 3, 3, 9, 7, 49}},
    {6, 13, {1, 1, 1, 15, 21, 21}},
    {6, 16, {1, 3, 1, 13, 27, 49}},
    {6, 19, {1, 1, 1, 15, 7, 5}},
    {6, 22, {1, 3, 1, 15, 13, 25}},
    {6, 25, {1, 1, 5, 5, 19, 61}},
    {7, 1, {1, 3, 7, 11, 23, 15, 103}},
    {7, 4, {1, 3, 7, 13, 13, 15, 69}},
}};

constexpr unsigned kBits = 32;
constexpr size_t kMaxDimensions = kDirections.size() + 1;

using Vectors = std::array<std::uint32_t, kBits>;

Vectors direction_vectors(size_t dimension) {
  Vectors v{};
  if (dimension == 0) {
    for (unsigned k = 0; k < kBits; ++k) v[k] = 1u << (kBits - 1 - k);
    return v;
  }
  const Direction& d = kDirections[dimension - 1];
  for (unsigned k = 0; k < kBits; ++k) {
    if (k < d.degree) {
      v[k] = d.m[k] << (kBits - 1 - k);
    } else {
      std::uint32_t x = v[k - d.degree] ^ (v[k - d.degree] >> d.degree);
      for (unsigned l = 1; l < d.degree; ++l) {
        if ((d.coefficients >> (d.degree - 1 - l)) & 1u) x ^= v[k - l];
      }
      v[k] = x;
    }
  }
  return v;
}

class SobolSampler : public Sampler {
 public:
  SobolSampler(const Experiment& e, std::uint64_t seed) : experiment_(e) {
    auto rng = trial_rng(seed, -1, 1);
    for (size_t j = 0; j < e.parameters.size(); ++j) {
      vectors_.push_back(direction_vectors(j));
      shifts_.push_back(static_cast<std::uint32_t>(rng()));
    }
  }

  std::optional<Point> suggest(int trial, const std::vector<Observation>&) override {
    // Index 0 is the origin before the shift; shifted, it is a point like any other, and
    // starting there keeps every aligned block of 2^k points stratified.
    std::uint64_t index = static_cast<std::uint64_t>(trial);
    std::vector<double> unit;
    for (size_t j = 0; j < vectors_.size(); ++j) {
      std::uint32_t x = shifts_[j];
      for (unsigned k = 0; k < kBits && (index >> k) != 0; ++k) {
        if ((index >> k) & 1u) x ^= vectors_[j][k];
      }
      unit.push_back(static_cast<double>(x) / 4294967296.0);
    }
    return from_unit(experiment_, unit);
  }

 private:
  const Experiment& experiment_;
  std::vector<Vectors> vectors_;
  std::vector<std::uint32_t> shifts_;
};

void validate(const Experiment& e, const SpecError& fail) {
  only_settings(e, {"random_state"}, fail);
  integer_setting(e, "random_state", 0, fail);
  if (e.parameters.size() > kMaxDimensions) {
    fail("", "sobol searches at most " + std::to_string(kMaxDimensions) + " parameters (this experiment has " +
                 std::to_string(e.parameters.size()) + "); use random or tpe");
  }
}

std::unique_ptr<Sampler> make(const Experiment& e, std::uint64_t seed) { return std::make_unique<SobolSampler>(e, seed); }

}  // namespace

const AlgorithmInfo kSobol{"sobol", &validate, &unlimited, &make};

}  // namespace cohort::tuner
