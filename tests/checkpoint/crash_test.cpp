// Fault injection: a writer killed with SIGKILL at random moments of its saves (inside
// HDF5 writes, fsyncs, renames, the `latest` update or pruning) never damages what was
// committed before, and the next load_latest() returns a complete checkpoint.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <random>
#include <thread>

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

// The newest checkpoint that loads, saved by `ranks` writers (each wrote the same rows of
// "a"), loaded whole here.
Loaded load(const std::filesystem::path& dir, std::uint64_t ranks = 1) {
  Options options;
  options.warn = [](const std::string&) {};
  Checkpointer ckpt(dir, MPI_COMM_WORLD, options);
  Loaded out{-1, std::vector<float>(ranks * 256 * 1024), std::vector<float>(1000), {}};
  std::vector<TensorSlot> slots{{"a", DType::float32, {ranks * 256, 1024}, Sharding::rows, out.a.data()},
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

// Plain ranks (the launch contract, no MPI) saving together, one of them killed with
// SIGKILL at a random moment: the others name it and fail by themselves once the agreement's
// deadline passes, and `latest` still loads and verifies (on one process, resharded).
// COHORT_CRASH_KILLS sets how many kills (30 by default).
class PlainRanks {
 public:
  static constexpr int kRanks = 3;

  PlainRanks(const std::filesystem::path& dir, const std::filesystem::path& logs, std::int64_t first,
             std::int64_t count) {
    for (int r = 0; r < kRanks; ++r) {
      SpawnOptions options;
      options.environment = environment_with({"RANK=" + std::to_string(r), "WORLD_SIZE=" + std::to_string(kRanks),
                                              "COHORT_CKPT_TIMEOUT=1"});
      logs_.push_back(logs / ("rank-" + std::to_string(r) + ".log"));
      options.err = Stream::file(logs_.back().string());
      ranks_.push_back(spawn({COHORT_CRASH_WRITER, dir.string(), std::to_string(first), std::to_string(count)},
                             options));
    }
  }
  Process& rank(int r) { return ranks_[static_cast<size_t>(r)]; }
  std::string log(int r) const { return testing::read_file(logs_[static_cast<size_t>(r)]); }

 private:
  std::vector<Process> ranks_;
  std::vector<std::filesystem::path> logs_;
};

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status); }

TEST(Commit, SigkillOfOnePlainRankIsNamedByTheOthersAndNeverDamagesLatest) {
  testing::TempDir tmp;
  const std::filesystem::path dir = tmp / "ckpt";
  const auto started = std::chrono::steady_clock::now();
  {
    PlainRanks seed(dir, tmp.path(), 0, 1);
    for (int r = 0; r < PlainRanks::kRanks; ++r) ASSERT_EQ(seed.rank(r).wait(), 0) << seed.log(r);
  }
  const auto one_save = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);

  const char* kills_text = std::getenv("COHORT_CRASH_KILLS");
  const int kills = kills_text ? std::atoi(kills_text) : 30;
  std::mt19937 gen(20261203);
  std::uniform_int_distribution<int> delay_ms(1, std::max(250, static_cast<int>(3 * one_save.count())));
  std::uniform_int_distribution<int> pick(0, PlainRanks::kRanks - 1);
  std::int64_t committed = 0;
  int commits_seen = 0, loaded = 0;
  for (int trial = 0; trial < kills; ++trial) {
    const int victim = pick(gen);
    {
      PlainRanks ranks(dir, tmp.path(), committed + 1, 1000000);
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(gen)));
      ranks.rank(victim).signal(SIGKILL);
      ASSERT_EQ(exit_code(ranks.rank(victim).wait()), -SIGKILL);
      for (int r = 0; r < PlainRanks::kRanks; ++r) {
        if (r == victim) continue;
        // Each survivor stops by itself, with the failure naming a rank that did not come. On
        // a loaded machine a live rank later than the 1 s deadline is named as well as, or
        // instead of, the one that died: which ranks are named is the agreement's own tests'
        // concern (agreement_test.cpp), whose deadlines leave no such doubt.
        EXPECT_EQ(exit_code(ranks.rank(r).wait()), 1) << "trial " << trial << ", rank " << r << ": " << ranks.log(r);
        const std::string log = ranks.log(r);
        EXPECT_NE(log.find("did not"), std::string::npos) << "trial " << trial << ", rank " << r << ": " << log;
      }
    }
    std::string latest = testing::read_file(dir / "latest");
    while (!latest.empty() && latest.back() == '\n') latest.pop_back();
    ASSERT_TRUE(std::filesystem::is_directory(dir / latest)) << "trial " << trial << ": latest names " << latest;
    Loaded got = load(dir, PlainRanks::kRanks);
    ASSERT_GE(got.step, committed) << "a committed checkpoint went missing in trial " << trial;
    EXPECT_TRUE(got.skipped.empty()) << "trial " << trial << ": " << got.skipped[0].reason;
    const auto rows = testing::pattern(got.step, 256 * 1024);
    for (int r = 0; r < PlainRanks::kRanks; ++r) {
      ASSERT_TRUE(std::equal(rows.begin(), rows.end(), got.a.begin() + r * 256 * 1024)) << "trial " << trial;
    }
    ASSERT_EQ(got.b, testing::pattern(got.step + 1, 1000)) << "trial " << trial;
    ASSERT_TRUE(verify(checkpoint_path(dir, got.step)).ok()) << "trial " << trial;
    ++loaded;
    commits_seen += static_cast<int>(got.step - committed);
    committed = got.step;
  }
  std::cout << loaded << " of " << kills << " kills of one of " << PlainRanks::kRanks << " plain ranks left latest "
            << "loading and verified; " << commits_seen << " checkpoints committed between them\n";
  EXPECT_GT(commits_seen, 0) << "no checkpoint was committed between " << kills << " kills";
  // The ranks' next run cleans up and commits.
  PlainRanks last(dir, tmp.path(), committed + 1, 1);
  for (int r = 0; r < PlainRanks::kRanks; ++r) ASSERT_EQ(last.rank(r).wait(), 0) << last.log(r);
  EXPECT_EQ(load(dir, PlainRanks::kRanks).step, committed + 1);
}

}  // namespace
}  // namespace cohort::checkpoint
