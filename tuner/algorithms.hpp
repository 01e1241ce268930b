// tuner/algorithms.hpp — the built-in algorithms, one file each; private to tuner/.
#pragma once

#include "tuner/sampler.hpp"

namespace cohort::tuner {

extern const AlgorithmInfo kGrid;    // grid.cpp
extern const AlgorithmInfo kRandom;  // random.cpp
extern const AlgorithmInfo kSobol;   // sobol.cpp
extern const AlgorithmInfo kTpe;     // tpe.cpp
extern const AlgorithmInfo kMultivariateTpe;       // tpe.cpp
extern const AlgorithmInfo kBayesianOptimization;  // bayesopt.cpp
extern const AlgorithmInfo kHyperband;             // hyperband.cpp

}  // namespace cohort::tuner
