// What is on disk: checkpoints of format version 1 (one state.h5 for all ranks, from the
// fixture cohort wrote before), which must keep loading and verifying.
#include <gtest/gtest.h>

#include <filesystem>

#include "checkpoint/checkpoint.hpp"
#include "common/error.hpp"
#include "test_util.hpp"

namespace cohort::checkpoint {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// The fixture's content (tests/checkpoint/fixtures/README.md).
constexpr std::uint64_t kRows = 37, kCols = 5;
constexpr std::int64_t kStep = 3;

fs::path copy_of_fixture(const TempDir& tmp) {
  fs::copy(fs::path(COHORT_CKPT_FIXTURES) / "v1-2-ranks", tmp / "ckpt", fs::copy_options::recursive);
  return tmp / "ckpt";
}

TEST(FormatVersion1, ASingleFileCheckpointLoadsWhole) {
  TempDir tmp;
  const auto dir = copy_of_fixture(tmp);
  // One process takes every tensor whole, whether it was saved sharded or not.
  float scale = 0;
  std::vector<std::int64_t> ids(kRows);
  std::vector<float> w(kRows * kCols);
  const std::vector<TensorSlot> slots{{"scale", DType::float32, {}, Sharding::replicated, &scale},
                                      {"ids", DType::int64, {kRows}, Sharding::replicated, ids.data()},
                                      {"w", DType::float32, {kRows, kCols}, Sharding::rows, w.data()}};
  auto r = Checkpointer(dir).load_latest(slots);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->step, kStep);
  EXPECT_EQ(r->saved_world_size, 2);
  EXPECT_EQ(r->metadata.epoch, 1);
  EXPECT_TRUE(r->skipped.empty());
  EXPECT_EQ(w, testing::pattern(kStep, kRows * kCols));
  for (std::uint64_t i = 0; i < kRows; ++i) EXPECT_EQ(ids[i], static_cast<std::int64_t>(i));
  EXPECT_EQ(scale, 2.5f);
}

TEST(FormatVersion1, ASingleFileCheckpointVerifiesAndItsDamageIsFound) {
  TempDir tmp;
  const auto dir = copy_of_fixture(tmp);
  const auto checkpoint = checkpoint_path(dir, kStep);
  auto report = verify(checkpoint);
  EXPECT_TRUE(report.ok()) << (report.problems.empty() ? "" : report.problems[0].message);
  Manifest m = read_manifest(checkpoint);
  EXPECT_EQ(m.format_version, 1);
  std::vector<std::byte> bytes;
  read_tensor(checkpoint, m.tensors[1], bytes);
  EXPECT_EQ(bytes.size(), kRows * 8);

  testing::flip_byte(checkpoint, "ids", 17);
  report = verify(checkpoint);
  ASSERT_EQ(report.problems.size(), 1u);
  EXPECT_EQ(report.problems[0].tensor, "ids");
}

}  // namespace
}  // namespace cohort::checkpoint
