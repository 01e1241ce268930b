// A checkpoint directory that runs out of space: on a 20 MiB tmpfs mounted for the test
// (root only; skipped elsewhere), a save fails with a message that says so, leaves nothing
// behind and no HDF5 file open, and `cohort bench ckpt` exits 1 after removing its scratch.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "checkpoint/checkpoint.hpp"
#include "common/error.hpp"
#include "common/process.hpp"
#include "test_util.hpp"

namespace cohort::checkpoint {
namespace {

namespace fs = std::filesystem;

// A 20 MiB tmpfs at a fresh directory, unmounted however the test ends.
class FullDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
    mnt_ = tmp_ / "small";
    fs::create_directory(mnt_);
    if (::mount("tmpfs", mnt_.c_str(), "tmpfs", 0, "size=20m") != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
    }
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) ::umount2(mnt_.c_str(), MNT_DETACH);
  }

  testing::TempDir tmp_;
  fs::path mnt_;
  bool mounted_ = false;
};

TEST_F(FullDisk, ASaveThatRunsOutOfSpaceSaysSoLeavesNothingAndTheNextSaveWorks) {
  Options options;
  options.warn = [](const std::string&) {};
  Checkpointer ckpt(mnt_ / "ckpt", MPI_COMM_WORLD, options);
  float x = 1;
  ckpt.save(1, State{{{"x", DType::float32, {}, Sharding::replicated, &x}}, {}});

  // 32 MiB in one tensor or in many, compressed or not: the disk fills during a data
  // write, or with metadata or compressed chunks still to be written. Random bits, so that
  // deflate cannot shrink them.
  std::vector<std::uint32_t> data(8 << 20);
  std::uint32_t bits = 12345;
  for (auto& d : data) d = bits = bits * 1664525u + 1013904223u;
  for (auto [tensors, compress] : {std::pair{1, false}, {2, false}, {64, false}, {2, true}}) {
    SCOPED_TRACE(std::to_string(tensors) + (compress ? " compressed" : "") + " tensors");
    const std::uint64_t rows = 8192 / static_cast<std::uint64_t>(tensors);
    State state;
    for (int t = 0; t < tensors; ++t) {
      state.tensors.push_back({"t" + std::to_string(t), DType::uint32, {rows, 1024}, Sharding::rows,
                               data.data() + static_cast<std::uint64_t>(t) * rows * 1024, compress});
    }
    try {
      ckpt.save(2, state);
      ADD_FAILURE() << "32 MiB fitted in 20 MiB";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::failure) << e.what();
      EXPECT_NE(std::string(e.what()).find(std::strerror(ENOSPC)), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find((mnt_ / "ckpt").string()), std::string::npos) << e.what();
    }
    EXPECT_EQ(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0) << "an HDF5 file or object was left open";
    EXPECT_EQ(ckpt.steps(), std::vector<std::int64_t>{1});
    for (const auto& e : fs::directory_iterator(mnt_ / "ckpt")) {
      EXPECT_NE(e.path().filename().string()[0], '.') << e.path();
    }
  }
  ckpt.save(3, State{{{"x", DType::float32, {}, Sharding::replicated, &x}}, {}});
  EXPECT_EQ(ckpt.steps(), (std::vector<std::int64_t>{1, 3}));
}

TEST_F(FullDisk, BenchSaysTheDiskIsFullRemovesItsScratchAndExitsCleanly) {
  const char* bin = std::getenv("COHORT_BIN");
  // The raw file alone overflows 64M; with 12M the checkpoint fills the disk after it.
  for (const char* bytes : {"64M", "12M"}) {
    SCOPED_TRACE(bytes);
    auto r = run_process({bin ? bin : "cohort", "bench", "ckpt", "--dir", mnt_.string(), "--bytes", bytes,
                          "--tensors", "2", "--repeat", "1"});
    EXPECT_EQ(r.term_signal, 0) << "killed by signal " << r.term_signal << ": " << r.err;
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find(std::strerror(ENOSPC)), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line expected: " << r.err;
    EXPECT_TRUE(fs::is_empty(mnt_)) << "the bench left " << fs::directory_iterator(mnt_)->path();
    for (const auto& e : fs::directory_iterator(mnt_)) fs::remove_all(e.path());
  }
}

}  // namespace
}  // namespace cohort::checkpoint
