// checkpoint/internal.hpp — everything private to checkpoint/, for the files that use most
// of it. Each part has its own header:
//   hdf5.hpp       HDF5 behind one lock, owned handles, element types, root attributes
//   dataset.hpp    a tensor's dataset in state.h5, checked before it is read
//   group.hpp      the ranks, and how they agree on each step's outcome
//   layout.hpp     the directory: step directories, `latest`, leftovers
//   manifest.hpp   manifest.json, and the checks on tensors' names and shapes
//   retention.hpp  which checkpoints retention removes, and removing them
#pragma once

#include "checkpoint/dataset.hpp"
#include "checkpoint/group.hpp"
#include "checkpoint/hdf5.hpp"
#include "checkpoint/layout.hpp"
#include "checkpoint/manifest.hpp"
#include "checkpoint/retention.hpp"
