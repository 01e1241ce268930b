// The checkpointer across ranks, run under mpirun with the rank counts that
// tests/checkpoint/CMakeLists.txt gives: resharding (saved by 4, loaded by 2 and 1), and
// collective behaviour — fallback, bad input, async saves, preemption — on 2 ranks. The
// Reshard tests and the damage ones also run as plain processes that only have the launch contract
// (plain_ranks.sh), as torchrun starts them: MPI is then never initialised.
#include <gtest/gtest.h>
#include <mpi.h>

#include <csignal>
#include <cstdlib>
#include <set>

#include "checkpoint/agreement.hpp"
#include "checkpoint/checkpoint.hpp"
#include "checkpoint/layout.hpp"
#include "common/environment.hpp"
#include "common/error.hpp"
#include "test_util.hpp"

namespace cohort::checkpoint {
namespace {

// Started as torchrun starts ranks: no MPI, only RANK and WORLD_SIZE.
bool plain() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  return !initialized;
}

int rank() {
  if (plain()) return contract_ranks().value().first;
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int size() {
  if (plain()) return contract_ranks().value().second;
  int s = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

// The resharding tensors: "w" is [kRows, kCols], sharded unevenly; "ids" is [kRows];
// "scale" is replicated. Element (row, col) of w holds value_at(3, row * kCols + col).
constexpr std::uint64_t kRows = 37, kCols = 5;
constexpr std::int64_t kStep = 3;

// Rank r of n gets a block of rows; the split is deliberately uneven.
std::pair<std::uint64_t, std::uint64_t> rows_of(int r, int n) {
  std::uint64_t first = 0;
  for (int i = 0; i < r; ++i) first += (kRows + static_cast<std::uint64_t>(i)) / static_cast<std::uint64_t>(n);
  std::uint64_t count = (kRows + static_cast<std::uint64_t>(r)) / static_cast<std::uint64_t>(n);
  return {first, count};
}

std::filesystem::path shared_dir() {
  const char* dir = std::getenv("COHORT_CKPT_MPI_DIR");
  if (!dir || !*dir) throw std::runtime_error("set COHORT_CKPT_MPI_DIR");
  return dir;
}

TEST(Reshard, SaveShardedOnEveryRank) {
  // Plain ranks have no barrier to wait at: their directory starts empty (ctest fixtures).
  if (!plain()) {
    if (rank() == 0) std::filesystem::remove_all(shared_dir());
    MPI_Barrier(MPI_COMM_WORLD);
  }
  auto [first, rows] = rows_of(rank(), size());
  auto w = testing::pattern(kStep, rows * kCols, first * kCols);
  std::vector<std::int64_t> ids(rows);
  for (std::uint64_t i = 0; i < rows; ++i) ids[i] = static_cast<std::int64_t>(first + i);
  float scale = 2.5f;
  State state;
  state.tensors = {{"w", DType::float32, {rows, kCols}, Sharding::rows, w.data()},
                   {"ids", DType::int64, {rows}, Sharding::rows, ids.data()},
                   {"scale", DType::float32, {}, Sharding::replicated, &scale}};
  state.metadata.epoch = 1;
  state.metadata.attributes.set("written_by", size());
  Checkpointer ckpt(shared_dir());
  auto r = ckpt.save(kStep, state);
  EXPECT_EQ(r.bytes, kRows * kCols * 4 + kRows * 8 + 4);
  if (rank() == 0) {
    EXPECT_TRUE(verify(r.path).ok());
    EXPECT_EQ(read_manifest(r.path).world_size, size());
  }
}

TEST(Reshard, LoadMatchesWhatWasSaved) {
  auto [first, rows] = rows_of(rank(), size());
  std::vector<float> w(rows * kCols);
  std::vector<std::int64_t> ids(rows);
  float scale = 0;
  std::vector<TensorSlot> slots{{"w", DType::float32, {rows, kCols}, Sharding::rows, w.data()},
                                {"ids", DType::int64, {rows}, Sharding::rows, ids.data()},
                                {"scale", DType::float32, {}, Sharding::replicated, &scale}};
  Checkpointer ckpt(shared_dir());
  auto r = ckpt.load_latest(slots);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->step, kStep);
  EXPECT_TRUE(r->skipped.empty());
  EXPECT_EQ(r->metadata.epoch, 1);
  EXPECT_EQ(r->saved_world_size, r->metadata.attributes.at("written_by").as_int());
  EXPECT_EQ(w, testing::pattern(kStep, rows * kCols, first * kCols));
  for (std::uint64_t i = 0; i < rows; ++i) EXPECT_EQ(ids[i], static_cast<std::int64_t>(first + i));
  EXPECT_EQ(scale, 2.5f);

  // Every rank can also take the whole tensor.
  std::vector<float> whole(kRows * kCols);
  std::vector<TensorSlot> all{{"w", DType::float32, {kRows, kCols}, Sharding::replicated, whole.data()}};
  ckpt.load(kStep, all);
  EXPECT_EQ(whole, testing::pattern(kStep, kRows * kCols));
}

// Every rank waits here for all the others. Plain ranks meet through files in the shared
// directory, as their checkpointers do.
void barrier() {
  if (!plain()) {
    MPI_Barrier(MPI_COMM_WORLD);
    return;
  }
  static detail::FileAgreement files(shared_dir() / ".test-barrier", rank(), size(), std::chrono::minutes(2));
  files.exchange({});
}

// A directory every rank agrees on, removed at the end. Plain ranks, which cannot pass a
// name around, take one named after the test inside their shared directory.
class SharedTemp {
 public:
  SharedTemp() {
    if (plain()) {
      path_ = shared_dir() / ::testing::UnitTest::GetInstance()->current_test_info()->name();
      if (rank() == 0) {
        std::filesystem::remove_all(path_);
        std::filesystem::create_directories(path_);
      }
      barrier();
      return;
    }
    std::string path;
    if (rank() == 0) {
      temp_ = std::make_unique<testing::TempDir>();
      path = temp_->path().string();
    }
    unsigned long n = path.size();
    MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG, 0, MPI_COMM_WORLD);
    path.resize(n);
    MPI_Bcast(path.data(), static_cast<int>(n), MPI_CHAR, 0, MPI_COMM_WORLD);
    path_ = path;
  }
  ~SharedTemp() {
    barrier();
    if (plain() && rank() == 0) {
      std::error_code ec;
      std::filesystem::remove_all(path_, ec);
    }
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::unique_ptr<testing::TempDir> temp_;
  std::filesystem::path path_;
};

struct Shard {
  std::vector<float> w;
  std::uint64_t rows;
  explicit Shard(std::int64_t step) {
    auto [first, n] = rows_of(rank(), size());
    rows = n;
    w = testing::pattern(step, rows * kCols, first * kCols);
  }
  State state(bool compress = false) {
    return State{{{"w", DType::float32, {rows, kCols}, Sharding::rows, w.data(), compress}}, {}};
  }
  std::vector<TensorSlot> slots() { return {{"w", DType::float32, {rows, kCols}, Sharding::rows, w.data()}}; }
};

Options quiet() {
  Options o;
  o.warn = [](const std::string&) {};
  return o;
}

// Saves steps 1 and 2, lets rank 0 `damage` step 2 (given its path), then expects every
// rank to load step 1, step 2 skipped for a reason that mentions `why`.
template <typename F>
void expect_fallback_from_damage(F&& damage, const std::string& why) {
  SharedTemp tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  Shard s1(1), s2(2);
  ckpt.save(1, s1.state());
  auto r2 = ckpt.save(2, s2.state());
  if (rank() == 0) damage(r2.path);
  barrier();
  Shard loaded(0);
  auto slots = loaded.slots();
  auto r = ckpt.load_latest(slots);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->step, 1);
  ASSERT_EQ(r->skipped.size(), 1u);
  EXPECT_NE(r->skipped[0].reason.find(why), std::string::npos) << r->skipped[0].reason;
  EXPECT_EQ(loaded.w, Shard(1).w);
}

TEST(Parallel, ADamagedShardInAnyRankFileMakesEveryRankFallBackTogether) {
  // Each rank's rows in turn, in its own file: only the rank that loads them reads them.
  for (int damaged = 0; damaged < size(); ++damaged) {
    SCOPED_TRACE("rows of rank " + std::to_string(damaged));
    const auto [first, rows] = rows_of(damaged, size());
    const std::uint64_t byte = (first + rows) * kCols * 4 - 3;
    expect_fallback_from_damage(
        [byte, damaged](const std::filesystem::path& step) {
          ASSERT_EQ(testing::locate_byte(step, "w", byte).first.filename(), detail::rank_file_name(damaged));
          testing::flip_byte(step, "w", byte);
        },
        "tensor 'w': checksum mismatch");
  }
}

TEST(Parallel, AMissingRankFileIsNamedAndEveryRankFallsBack) {
  expect_fallback_from_damage(
      [](const std::filesystem::path& step) { std::filesystem::remove(step / "rank-00001.h5"); },
      "rank-00001.h5 is missing");
}

// Replicated tensors of 4, 3, 2 and 1 units: written once each, by the rank with the
// fewest bytes so far, so no rank writes them all.
TEST(Parallel, ReplicatedTensorsAreSpreadOverTheRanksBySize) {
  SharedTemp tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  constexpr std::uint64_t kUnit = 4096;
  std::vector<std::vector<float>> values;
  State state;
  for (std::uint64_t units = 4; units >= 1; --units) values.push_back(testing::pattern(7 + units, units * kUnit));
  for (std::uint64_t i = 0; i < values.size(); ++i) {
    state.tensors.push_back({"r" + std::to_string(i), DType::float32, {values[i].size()}, Sharding::replicated,
                             values[i].data()});
  }
  auto r = ckpt.save(7, state);
  if (rank() == 0) {
    auto m = read_manifest(r.path);
    std::set<std::string> writers;
    for (const auto& t : m.tensors) {
      ASSERT_EQ(t.pieces.size(), 1u) << t.name;
      writers.insert(t.pieces[0].file);
    }
    EXPECT_EQ(writers.size(), static_cast<size_t>(std::min(size(), 4)));
    EXPECT_EQ(m.tensors[0].pieces[0].file, "rank-00000.h5");
    EXPECT_EQ(m.tensors[1].pieces[0].file, "rank-00001.h5");
    EXPECT_TRUE(verify(r.path).ok());
  }
  std::vector<std::vector<float>> back;
  std::vector<TensorSlot> slots;
  for (const auto& v : values) back.emplace_back(v.size(), 0.0f);
  for (std::uint64_t i = 0; i < back.size(); ++i) {
    slots.push_back({"r" + std::to_string(i), DType::float32, {back[i].size()}, Sharding::replicated, back[i].data()});
  }
  ckpt.load(7, slots);
  EXPECT_EQ(back, values);
}

TEST(Parallel, DifferentStatesOnDifferentRanksFailEverywhereAndCommitNothing) {
  SharedTemp tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  float x = 1;
  State state{{{rank() == 1 ? "y" : "x", DType::float32, {}, Sharding::replicated, &x}}, {}};
  try {
    ckpt.save(1, state);
    FAIL() << "expected an input error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    EXPECT_NE(std::string(e.what()).find("the ranks passed different states"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(ckpt.steps().empty());
}

TEST(Parallel, CompressedShardsRoundTrip) {
  SharedTemp tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  Shard s(4);
  auto r = ckpt.save(4, s.state(true));
  Shard loaded(0);
  auto slots = loaded.slots();
  ckpt.load(4, slots);
  EXPECT_EQ(loaded.w, s.w);
  if (rank() == 0) {
    EXPECT_TRUE(verify(r.path).ok());
  }
}

TEST(Parallel, AsyncSaveRunsWhileTheCallerUsesMpi) {
  SharedTemp tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  Shard s(6);
  auto future = ckpt.save_async(6, s.state());
  // Training's own collectives go on meanwhile.
  for (int i = 0; i < 20; ++i) {
    int one = 1, sum = 0;
    MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    EXPECT_EQ(sum, size());
  }
  s.w.assign(s.w.size(), -1.0f);
  EXPECT_EQ(future.get().step, 6);
  Shard loaded(0);
  auto slots = loaded.slots();
  ckpt.load(6, slots);
  EXPECT_EQ(loaded.w, Shard(6).w);
}

TEST(Parallel, APreemptionSignalOnOneRankIsSeenByAll) {
  PreemptionWatch watch;
  EXPECT_FALSE(watch.requested());
  if (rank() == size() - 1) std::raise(SIGUSR1);
  EXPECT_TRUE(watch.requested());
  watch.acknowledge();
  EXPECT_FALSE(watch.requested());
}

}  // namespace
}  // namespace cohort::checkpoint

int main(int argc, char** argv) {
  if (!cohort::started_by_mpi_launcher() && cohort::contract_ranks()) {
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
  }
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  ::testing::InitGoogleTest(&argc, argv);
  int failed = RUN_ALL_TESTS();
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return any;
}
