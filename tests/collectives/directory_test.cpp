// Communicator::from_directory: ranks that share no MPI (torchrun's) meet through a
// key-value directory and carry host buffers over TCP and, on one node, shared memory. The
// ranks here are threads of one process, each with its own communicator; MPI is never
// initialised.
#include <dirent.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "collectives/communicator.hpp"
#include "common/error.hpp"

namespace cohort::collectives {
namespace {

// What torch's store is to the backend: set, and get that waits for the key.
class MemoryDirectory final : public PeerDirectory {
 public:
  void set(const std::string& key, const std::string& value) override {
    {
      std::lock_guard lock(mutex_);
      values_[key] = value;
    }
    changed_.notify_all();
  }
  std::string get(const std::string& key) override {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, std::chrono::seconds(60), [&] { return values_.count(key) > 0; })) {
      throw Error("the directory has no " + key);
    }
    return values_.at(key);
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, std::string> values_;
};

// Runs body(rank, communicator) on `size` threads, each joined through one directory, and
// returns each rank's error ("" when it succeeded); `token`, when given, receives the mesh's
// token, which names its shared segments.
std::vector<std::string> on_ranks(int size, const CommunicatorOptions& options,
                                  const std::function<void(int, Communicator&)>& body, std::string* token = nullptr) {
  MemoryDirectory directory;
  std::vector<std::string> errors(static_cast<std::size_t>(size));
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      try {
        Communicator comm = Communicator::from_directory(r, size, directory, options);
        body(r, comm);
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(r)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  if (token) *token = directory.get("cohort/tcp/token");
  return errors;
}

void expect_success(const std::vector<std::string>& errors) {
  for (std::size_t r = 0; r < errors.size(); ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
}

// The shared segments in /dev/shm of the mesh whose token is `token`: other tests running
// at the same time make and remove segments and folders of their own there.
std::vector<std::string> shared_segments(const std::string& token) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir("/dev/shm")) {
    while (dirent* e = ::readdir(d)) {
      if (std::string(e->d_name).rfind("cohort-" + token + "-", 0) == 0) names.emplace_back(e->d_name);
    }
    ::closedir(d);
  }
  return names;
}

CommunicatorOptions with_algorithm(AllreduceAlgorithm algorithm) {
  CommunicatorOptions options;
  options.algorithm = algorithm;
  return options;
}

class DirectoryAllreduce : public testing::TestWithParam<AllreduceAlgorithm> {};

TEST_P(DirectoryAllreduce, EveryRankGetsTheReductionOfEveryRanksValues) {
  const int size = 3;
  std::string token;
  expect_success(on_ranks(size, with_algorithm(GetParam()), [&](int rank, Communicator& comm) {
    // Counts below, at and far above the rank count, so that some ring blocks are empty.
    for (std::size_t count : {std::size_t{1}, std::size_t{3}, std::size_t{1000}, std::size_t{300001}}) {
      std::vector<std::int64_t> values(count);
      std::iota(values.begin(), values.end(), rank);
      comm.allreduce(values.data(), count, DType::int64, ReduceOp::sum);
      for (std::size_t i = 0; i < count; i += 997) ASSERT_EQ(values[i], 3 * static_cast<std::int64_t>(i) + 3);

      std::vector<float> in(count, static_cast<float>(rank + 1)), out(count);
      comm.allreduce(in.data(), out.data(), count, DType::float32, ReduceOp::avg);
      ASSERT_EQ(out[count - 1], 2.0f);
      ASSERT_EQ(in[0], static_cast<float>(rank + 1)) << "the input is left as it was";
      comm.allreduce(in.data(), count, DType::float32, ReduceOp::max);
      ASSERT_EQ(in[count / 2], 3.0f);
    }
  }, &token));
  ASSERT_FALSE(token.empty());
  EXPECT_EQ(shared_segments(token), std::vector<std::string>{}) << "no shared segment is left in /dev/shm";
}

INSTANTIATE_TEST_SUITE_P(Paths, DirectoryAllreduce,
                         testing::Values(AllreduceAlgorithm::automatic, AllreduceAlgorithm::ring),
                         [](const auto& info) {
                           return std::string(info.param == AllreduceAlgorithm::ring ? "Ring" : "SharedMemory");
                         });

TEST(DirectoryCommunicator, BroadcastAllgatherReduceScatterAndBarrierGiveMpisResults) {
  const int size = 3;
  expect_success(on_ranks(size, {}, [&](int rank, Communicator& comm) {
    // Larger than the broadcast's 1 MiB pieces, from a root that is not rank 0.
    std::vector<std::uint8_t> big(3 * (1u << 20) + 5, rank == 2 ? 7 : 0);
    big.back() = rank == 2 ? 9 : 0;
    comm.broadcast(big.data(), big.size(), DType::uint8, 2);
    EXPECT_EQ(big.front(), 7);
    EXPECT_EQ(big.back(), 9);

    const std::size_t count = 5;
    std::vector<double> mine(count, rank * 10.0), all(count * size);
    comm.allgather(mine.data(), all.data(), count, DType::float64);
    for (int r = 0; r < size; ++r) EXPECT_EQ(all[r * count + count - 1], r * 10.0);
    // In place: this rank's block already in the output.
    std::vector<double> in_place(count * size, -1.0);
    std::fill_n(in_place.begin() + rank * count, count, rank + 0.5);
    comm.allgather(in_place.data() + rank * count, in_place.data(), count, DType::float64);
    for (int r = 0; r < size; ++r) EXPECT_EQ(in_place[r * count], r + 0.5);

    // Block b of every rank holds b + rank: rank r receives the sum of block r.
    std::vector<std::int32_t> blocks(count * size);
    for (int b = 0; b < size; ++b) std::fill_n(blocks.begin() + b * count, count, b + rank);
    std::vector<std::int32_t> mine_reduced(count);
    comm.reduce_scatter(blocks.data(), mine_reduced.data(), count, DType::int32, ReduceOp::sum);
    EXPECT_EQ(mine_reduced[0], size * rank + 3);
    comm.reduce_scatter(blocks.data(), blocks.data() + rank * count, count, DType::int32, ReduceOp::max);
    EXPECT_EQ(blocks[rank * count + count - 1], rank + 2);
    comm.barrier();
  }));
}

TEST(DirectoryCommunicator, NonBlockingAndBlockingCallsRunInTheOrderIssued) {
  expect_success(on_ranks(2, {}, [&](int rank, Communicator& comm) {
    std::vector<float> first(1000, 1.0f), second(10, static_cast<float>(rank));
    Request a = comm.iallreduce(first.data(), first.size(), DType::float32, ReduceOp::sum);
    Request b = comm.ibroadcast(second.data(), second.size(), DType::float32, 1);
    std::int64_t third = rank;
    comm.allreduce(&third, 1, DType::int64, ReduceOp::sum);  // behind both
    EXPECT_TRUE(a.test() && b.test()) << "the blocking call ran after the ones issued before it";
    a.wait();
    b.wait();
    EXPECT_EQ(first[999], 2.0f);
    EXPECT_EQ(second[0], 1.0f);
    EXPECT_EQ(third, 1);
  }));
}

TEST(DirectoryCommunicator, RanksThatDisagreeAllFailInsteadOfWaiting) {
  const auto errors = on_ranks(2, {}, [&](int rank, Communicator& comm) {
    std::vector<float> buffer(rank == 0 ? 10 : 20);
    comm.broadcast(buffer.data(), buffer.size(), DType::float32, 0);
  });
  for (const auto& e : errors) EXPECT_NE(e.find("ranks disagree about the count"), std::string::npos) << e;
}

TEST(DirectoryCommunicator, APeerThatEndsIsNamedByTheRanksWaitingForIt) {
  const auto errors = on_ranks(2, with_algorithm(AllreduceAlgorithm::ring), [&](int rank, Communicator& comm) {
    if (rank == 1) return;  // its communicator goes, and its connections with it
    std::vector<float> buffer(1000);
    comm.allreduce(buffer.data(), buffer.size(), DType::float32, ReduceOp::sum);
  });
  EXPECT_NE(errors[0].find("rank 1 closed its connection"), std::string::npos) << errors[0];
  EXPECT_EQ(errors[1], "");
}

TEST(DirectoryCommunicator, BadRanksAndTheNcclBackendAreRefused) {
  MemoryDirectory directory;
  EXPECT_THROW(Communicator::from_directory(2, 2, directory), Error);
  CommunicatorOptions nccl;
  nccl.backend = "nccl";
  try {
    Communicator::from_directory(0, 1, directory, nccl);
    ADD_FAILURE() << "the nccl backend was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("host buffers only"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cohort::collectives
