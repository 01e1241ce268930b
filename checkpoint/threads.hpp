// checkpoint/threads.hpp — copying a rank's snapshot on the cores it may use.
//
// One core's memcpy does not saturate a node's memory, and the caller's copy is all that
// save_async blocks for: a rank copies a large snapshot on the cores it may run on (Slurm
// binds a rank to its own), at most four, or COHORT_CKPT_THREADS of them. Private to
// checkpoint/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cohort::checkpoint::detail {

struct Copy {
  std::byte* dst;
  const std::byte* src;
  std::uint64_t bytes;
};

// Copies everything in `copies`; from 64 MiB in all, each thread takes
// an equal share of the bytes (a share may begin and end inside a copy). Throws
// cohort::Error naming a bad COHORT_CKPT_THREADS.
void copy_all(const std::vector<Copy>& copies);

}  // namespace cohort::checkpoint::detail
