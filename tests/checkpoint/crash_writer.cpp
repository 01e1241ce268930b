// Saves checkpoints FIRST, FIRST+1, … into DIR, COUNT of them, for the crash test to kill at
// random moments; with "again", saves step FIRST COUNT times over, replacing it each time.
// Each step's tensors hold testing::pattern(step) so a reader can tell exactly which step
// it loaded. Also the unprivileged writer of the read-only-directory test.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "checkpoint/checkpoint.hpp"
#include "common/error.hpp"
#include "test_util.hpp"

int main(int argc, char** argv) {
  using namespace cohort::checkpoint;
  const bool again = argc == 5 && std::string(argv[4]) == "again";
  if (argc != 4 && !again) {
    std::fprintf(stderr, "usage: ckpt_crash_writer DIR FIRST COUNT [again]\n");
    return 2;
  }
  const std::int64_t first = std::atoll(argv[2]);
  const std::int64_t count = std::atoll(argv[3]);
  Options options;
  options.retention = {2, 0};  // pruning runs too, so a kill can land in it
  // An error ends it as a command would: one line, and 2 for bad input, 1 for a failure.
  try {
    Checkpointer ckpt(argv[1], MPI_COMM_WORLD, options);
    for (std::int64_t i = 0; i < count; ++i) {
      const std::int64_t step = again ? first : first + i;
      auto a = testing::pattern(step, 256 * 1024);
      auto b = testing::pattern(step + 1, 1000);
      State state;
      state.tensors = {{"a", DType::float32, {256, 1024}, Sharding::rows, a.data()},
                       {"b", DType::float32, {1000}, Sharding::replicated, b.data()}};
      ckpt.save(step, state);
      std::fprintf(stderr, "committed %lld\n", static_cast<long long>(step));
    }
  } catch (const cohort::Error& e) {
    std::fprintf(stderr, "ckpt_crash_writer: %s\n", e.what());
    return e.exit_code();
  }
  return 0;
}
