// tuner/stoppers.hpp — the built-in early-stopping algorithms, one file each; private to tuner/.
#pragma once

#include "tuner/stopper.hpp"

namespace cohort::tuner {

extern const StopperInfo kMedianStop;  // medianstop.cpp

}  // namespace cohort::tuner
