// tuner/sampler.hpp — search algorithms behind one small interface.
//
// A sampler proposes the parameters of one trial from what the experiment has seen so far.
// It works on points: one double per parameter, the value itself for double and int
// parameters and the list index for discrete and categorical ones. Samplers are stateless
// between calls — every array task builds its own and asks once — so a suggestion depends
// only on the experiment, its seed, the trial number and the history; that is what makes
// `random_state` reproduce a sweep.
//
// Adding an algorithm: a class deriving from Sampler and an AlgorithmInfo describing it, in
// a file of its own, and one row naming it in the table in sampler.cpp.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tuner/experiment.hpp"

namespace cohort::tuner {

using Point = std::vector<double>;

// What a sampler is shown of one earlier trial.
struct Observation {
  int trial = 0;
  Point point;
  bool finished = false;              // Succeeded, with an objective
  double objective = 0;               // when finished
  std::vector<std::pair<long long, double>> curve;  // the objective's intermediate values
};

class Sampler {
 public:
  virtual ~Sampler() = default;
  // The point for trial number `trial` (its id: 0-based, in the order trials were claimed),
  // or nullopt when the algorithm has nothing left to propose (a grid that is exhausted).
  // `history` holds every earlier trial but the killed ones, running trials included.
  virtual std::optional<Point> suggest(int trial, const std::vector<Observation>& history) = 0;
};

struct AlgorithmInfo {
  std::string_view name;  // algorithmName, lower case
  // Checks settings and the space; calls `fail` for the first problem, with `field` under
  // spec.algorithm (empty for the algorithm itself).
  void (*validate)(const Experiment& experiment, const SpecError& fail);
  // How many distinct trials the algorithm can propose, when that is finite (grid).
  std::optional<long long> (*capacity)(const Experiment& experiment);
  std::unique_ptr<Sampler> (*make)(const Experiment& experiment, std::uint64_t seed);
};

// The capacity of an algorithm whose proposals never run out: none.
std::optional<long long> unlimited(const Experiment& experiment);

const AlgorithmInfo* find_algorithm(std::string_view name);
std::string algorithm_names();  // "grid, random, …" for messages

// The sampler the experiment names, seeded with `seed` (random_state when given).
std::unique_ptr<Sampler> make_sampler(const Experiment& experiment, std::uint64_t seed);

// The seed an experiment's samplers use: random_state when the spec gives one, else a
// fresh random number (stored in the journal so that every task of a sweep shares it).
std::uint64_t experiment_seed(const Experiment& experiment);

// Points and the parameters' text. A point from a unit-cube coordinate (0 ≤ u < 1 per
// parameter): log scales, steps and integer rounding applied.
Point from_unit(const Experiment& experiment, const std::vector<double>& unit);
// A uniformly random point of the space (from_unit of uniform draws): what random search
// proposes, and what the model-based samplers propose until they have enough trials.
Point random_point(const Experiment& experiment, std::mt19937_64& rng);
// The finished trials of a history, in its order.
std::vector<const Observation*> finished_trials(const std::vector<Observation>& history);
Assignment to_assignment(const Experiment& experiment, const Point& point);
Point to_point(const Experiment& experiment, const Assignment& assignment);
// Shortest text that reads back as the same double ("0.1", "1e-05").
std::string format_number(double value);

// A generator for one trial, independent of every other trial's.
std::mt19937_64 trial_rng(std::uint64_t seed, int trial, std::uint64_t stream = 0);

// Validation helpers for algorithms: settings must be among `allowed`; an integer setting
// in least..most.
void only_settings(const Experiment& experiment, const std::vector<std::string_view>& allowed, const SpecError& fail);
std::optional<long long> integer_setting(const Experiment& experiment, const std::string& name, long long least,
                                         const SpecError& fail,
                                         long long most = std::numeric_limits<long long>::max());
std::optional<double> number_setting(const Experiment& experiment, const std::string& name, const SpecError& fail);

}  // namespace cohort::tuner
