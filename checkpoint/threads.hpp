// checkpoint/threads.hpp — how many threads one rank's checkpoint work may use.
//
// One core's memcpy or CRC32C does not saturate a node's memory: a rank copies a large
// snapshot for save_async on several threads, and checksums what it loads on a second
// thread while it reads the next block. It uses the cores it may run on (Slurm binds a rank
// to its own), at most four, or COHORT_CKPT_THREADS of them. Private to checkpoint/.
#pragma once

#include <cstdint>
#include <vector>

namespace cohort::checkpoint::detail {

// COHORT_CKPT_THREADS (1 to 64) or the rank's allowed cores, at most 4; throws
// cohort::Error naming a bad setting.
int rank_threads();

struct Copy {
  std::byte* dst;
  const std::byte* src;
  std::uint64_t bytes;
};

// Copies everything in `copies`; from 64 MiB in all, each of rank_threads() threads takes
// an equal share of the bytes (a share may begin and end inside a copy).
void copy_all(const std::vector<Copy>& copies);

}  // namespace cohort::checkpoint::detail
