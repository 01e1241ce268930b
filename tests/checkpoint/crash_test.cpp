// Fault injection: a writer killed with SIGKILL at random moments of its saves (inside
// HDF5 writes, fsyncs, renames, the `latest` update or pruning) never damages what was
// committed before, and the next load_latest() returns a complete checkpoint.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <random>

#include "checkpoint/checkpoint.hpp"
#include "common/process.hpp"
#include "test_util.hpp"

namespace cohort::checkpoint {
namespace {

struct Loaded {
  std::int64_t step;
  std::vector<float> a, b;
  std::vector<Skipped> skipped;
};

Loaded load(const std::filesystem::path& dir) {
  Options options;
  options.warn = [](const std::string&) {};
  Checkpointer ckpt(dir, MPI_COMM_WORLD, options);
  Loaded out{-1, std::vector<float>(256 * 1024), std::vector<float>(1000), {}};
  std::vector<TensorSlot> slots{{"a", DType::float32, {256, 1024}, Sharding::rows, out.a.data()},
                                {"b", DType::float32, {1000}, Sharding::replicated, out.b.data()}};
  auto r = ckpt.load_latest(slots);
  if (r) {
    out.step = r->step;
    out.skipped = r->skipped;
  }
  return out;
}

TEST(Commit, SigkillAtRandomMomentsNeverDamagesTheLatestCommittedCheckpoint) {
  testing::TempDir tmp;
  const std::string dir = (tmp / "ckpt").string();
  // A first checkpoint, written to completion; how long that took (process start and one
  // save) scales the kills to this machine, so that they land before, inside and after
  // later commits whether the machine is fast or loaded.
  const auto started = std::chrono::steady_clock::now();
  auto seed = run_process({COHORT_CRASH_WRITER, dir, "0", "1"});
  ASSERT_EQ(seed.exit_code, 0) << seed.err;
  const auto one_save = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);

  std::mt19937 gen(20261128);
  std::uniform_int_distribution<int> delay_ms(1, std::max(250, static_cast<int>(3 * one_save.count())));
  std::int64_t committed = 0;
  int kills = 0, commits_seen = 0;
  for (int trial = 0; trial < 40; ++trial) {
    RunOptions options;
    options.timeout = std::chrono::milliseconds(delay_ms(gen));
    auto r = run_process({COHORT_CRASH_WRITER, dir, std::to_string(committed + 1), "1000000"}, options);
    ASSERT_TRUE(r.timed_out) << "the writer stopped by itself: " << r.err;
    ++kills;

    Loaded got = load(dir);
    ASSERT_GE(got.step, committed) << "a committed checkpoint went missing in trial " << trial;
    EXPECT_TRUE(got.skipped.empty()) << "trial " << trial << ": step " << got.skipped[0].step << " looked committed "
                                     << "but was damaged: " << got.skipped[0].reason;
    ASSERT_EQ(got.a, testing::pattern(got.step, 256 * 1024)) << "trial " << trial;
    ASSERT_EQ(got.b, testing::pattern(got.step + 1, 1000)) << "trial " << trial;
    ASSERT_TRUE(verify(checkpoint_path(dir, got.step)).ok());
    commits_seen += static_cast<int>(got.step - committed);
    committed = got.step;
  }
  std::cout << kills << " kills; " << commits_seen << " checkpoints committed between them\n";  // Kills that all land before the first commit would test nothing but the seed.
  EXPECT_GT(commits_seen, 0) << "no checkpoint was committed between " << kills << " kills";
  // Whatever the kills left behind, the next save cleans up and commits.
  auto last = run_process({COHORT_CRASH_WRITER, dir, std::to_string(committed + 1), "1"});
  ASSERT_EQ(last.exit_code, 0) << last.err;
  EXPECT_EQ(load(dir).step, committed + 1);
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    EXPECT_NE(e.path().filename().string()[0], '.') << e.path();
  }
}

// A step saved again (a run that resumed from an earlier step and reached it again) replaces
// the old copy in one exchange of directories: killed at any moment, the step is still
// committed, whole, and `latest` names a directory that exists. COHORT_CRASH_KILLS sets
// how many kills (100 by default).
TEST(Commit, SigkillWhileSavingAStepAgainAlwaysLeavesACommittedCopy) {
  testing::TempDir tmp;
  const std::filesystem::path dir = tmp / "ckpt";
  auto seed = run_process({COHORT_CRASH_WRITER, dir.string(), "4", "2"});
  ASSERT_EQ(seed.exit_code, 0) << seed.err;

  const char* kills_text = std::getenv("COHORT_CRASH_KILLS");
  const int kills = kills_text ? std::atoi(kills_text) : 100;
  std::mt19937 gen(20261129);
  std::uniform_int_distribution<int> delay_ms(1, 250);
  int passed = 0;
  for (int trial = 0; trial < kills; ++trial) {
    RunOptions options;
    options.timeout = std::chrono::milliseconds(delay_ms(gen));
    auto r = run_process({COHORT_CRASH_WRITER, dir.string(), "5", "1000000", "again"}, options);
    ASSERT_TRUE(r.timed_out) << "the writer stopped by itself: " << r.err;

    std::string latest = testing::read_file(dir / "latest");
    while (!latest.empty() && latest.back() == '\n') latest.pop_back();
    ASSERT_TRUE(std::filesystem::is_directory(dir / latest))
        << "trial " << trial << ": latest names " << latest << ", which is gone";
    Loaded got = load(dir);
    ASSERT_EQ(got.step, 5) << "trial " << trial << ": step 5 was not committed after the kill";
    EXPECT_TRUE(got.skipped.empty()) << "trial " << trial << ": " << got.skipped[0].reason;
    ASSERT_EQ(got.a, testing::pattern(5, 256 * 1024)) << "trial " << trial;
    ASSERT_EQ(got.b, testing::pattern(6, 1000)) << "trial " << trial;
    ++passed;
  }
  std::cout << passed << " of " << kills << " kills while saving step 5 again left it committed\n";
}

}  // namespace
}  // namespace cohort::checkpoint
