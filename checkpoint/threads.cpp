#include "checkpoint/threads.hpp"

#include <sched.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <thread>

#include "common/environment.hpp"
#include "common/error.hpp"
#include "common/text.hpp"

namespace cohort::checkpoint::detail {

namespace {
constexpr std::uint64_t kParallelCopyFrom = 64ull << 20;

// COHORT_CKPT_THREADS (1 to 64), else the rank's allowed cores, at most 4.
int rank_threads() {
  if (const std::string text = env_or("COHORT_CKPT_THREADS"); !text.empty()) {
    const auto value = parse_integer(text, 1, 64);
    if (!value) {
      throw input_error("COHORT_CKPT_THREADS=" + text +
                        ": expected how many threads copy a rank's snapshot for save_async, a whole number from 1 "
                        "to 64");
    }
    return static_cast<int>(*value);
  }
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  const int cores = ::sched_getaffinity(0, sizeof allowed, &allowed) == 0 ? CPU_COUNT(&allowed) : 1;
  return std::clamp(cores, 1, 4);
}

}  // namespace

void copy_all(const std::vector<Copy>& copies) {
  std::uint64_t total = 0;
  for (const auto& c : copies) total += c.bytes;
  const int allowed = rank_threads();  // read on every save, so that a bad setting is always named
  const int threads = total >= kParallelCopyFrom ? allowed : 1;
  auto share = [&](int k) {
    const std::uint64_t begin = total * static_cast<std::uint64_t>(k) / static_cast<std::uint64_t>(threads);
    const std::uint64_t end = total * static_cast<std::uint64_t>(k + 1) / static_cast<std::uint64_t>(threads);
    std::uint64_t at = 0;
    for (const auto& c : copies) {
      const std::uint64_t lo = std::max(begin, at), hi = std::min(end, at + c.bytes);
      if (lo < hi) std::memcpy(c.dst + (lo - at), c.src + (lo - at), hi - lo);
      at += c.bytes;
      if (at >= end) break;
    }
  };
  std::vector<std::jthread> helpers;
  for (int k = 1; k < threads; ++k) helpers.emplace_back(share, k);
  share(0);
}

}  // namespace cohort::checkpoint::detail
