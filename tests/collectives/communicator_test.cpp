// Runs on every rank under `mpirun -n N` (N = 1, 2, 3); every rank checks its own results
// against a reference computed locally from every rank's inputs.
#include "collectives/communicator.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <numeric>

#include "common/error.hpp"
#include "collectives/reference.hpp"

namespace cohort::collectives {
namespace {

using detail::count_wrong;
using detail::describe;
using detail::filled;

constexpr DType kTypes[] = {DType::float32, DType::float64, DType::float16, DType::bfloat16,
                               DType::int32, DType::int64, DType::uint8};
constexpr ReduceOp kOps[] = {ReduceOp::sum, ReduceOp::avg, ReduceOp::min, ReduceOp::max, ReduceOp::prod};

// Tiny, odd, not divisible by 2 or 3, above the node-local threshold, and several chunks
// of the node-local path with a ragged last one.
constexpr std::size_t kCounts[] = {0, 1, 2, 3, 7, 1001, 40009, 300007};

Communicator& world(AllreduceAlgorithm algorithm) {
  static std::map<AllreduceAlgorithm, Communicator> comms;
  auto it = comms.find(algorithm);
  if (it == comms.end()) {
    CommunicatorOptions options;
    options.algorithm = algorithm;
    it = comms.emplace(algorithm, Communicator::from_environment(options)).first;
  }
  return it->second;
}

Communicator& world() { return world(AllreduceAlgorithm::automatic); }

class AllreduceAlgorithms : public ::testing::TestWithParam<AllreduceAlgorithm> {};

TEST_P(AllreduceAlgorithms, EveryOpAndDtypeMatchesTheReference) {
  Communicator& comm = world(GetParam());
  for (DType dt : kTypes) {
    for (ReduceOp op : kOps) {
      for (std::size_t count : kCounts) {
        for (bool in_place : {false, true}) {
          auto send = filled(comm.rank(), count, dt, op);
          std::vector<std::byte> recv(send.size());
          void* out = in_place ? send.data() : recv.data();
          comm.allreduce(send.data(), out, count, dt, op);
          EXPECT_EQ(count_wrong(out, count, comm.size(), dt, op), 0u) << describe(dt, op, count, in_place);
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Collectives, AllreduceAlgorithms,
                         ::testing::Values(AllreduceAlgorithm::automatic, AllreduceAlgorithm::mpi,
                                           AllreduceAlgorithm::node, AllreduceAlgorithm::ring),
                         [](const auto& info) {
                           switch (info.param) {
                             case AllreduceAlgorithm::mpi: return std::string("Mpi");
                             case AllreduceAlgorithm::node: return std::string("NodeLocal");
                             case AllreduceAlgorithm::ring: return std::string("Ring");
                             default: return std::string("Automatic");
                           }
                         });

TEST(Allreduce, MessagesLargerThanTheCachesAreCorrectInAndOutOfPlace) {
  Communicator& comm = world();
  for (DType dt : {DType::float32, DType::float64, DType::bfloat16}) {
    const std::size_t count = (6u << 20) / size_of(dt) + 5;
    for (bool in_place : {false, true}) {
      auto send = filled(comm.rank(), count, dt, ReduceOp::sum);
      std::vector<std::byte> recv(send.size());
      void* out = in_place ? send.data() : recv.data();
      comm.allreduce(send.data(), out, count, dt, ReduceOp::sum);
      EXPECT_EQ(count_wrong(out, count, comm.size(), dt, ReduceOp::sum), 0u) << describe(dt, ReduceOp::sum, count, in_place);
    }
  }
}

TEST(Allreduce, ManyNonBlockingOperationsInFlightAllComplete) {
  Communicator& comm = world();
  constexpr std::size_t kCount = 200003;
  std::vector<std::vector<std::byte>> buffers;
  std::vector<Request> requests;
  for (DType dt : kTypes) buffers.push_back(filled(comm.rank(), kCount, dt, ReduceOp::sum));
  for (std::size_t k = 0; k < buffers.size(); ++k) {
    requests.push_back(comm.iallreduce(buffers[k].data(), kCount, kTypes[k], ReduceOp::sum));
  }
  // A blocking operation meanwhile runs beside them, not behind them.
  auto small = filled(comm.rank(), 5, DType::float32, ReduceOp::max);
  comm.allreduce(small.data(), 5, DType::float32, ReduceOp::max);
  EXPECT_EQ(count_wrong(small.data(), 5, comm.size(), DType::float32, ReduceOp::max), 0u);
  for (std::size_t k = 0; k < buffers.size(); ++k) {
    requests[k].wait();
    EXPECT_TRUE(requests[k].test());
    EXPECT_EQ(count_wrong(buffers[k].data(), kCount, comm.size(), kTypes[k], ReduceOp::sum), 0u)
        << to_string(kTypes[k]);
  }
}

TEST(Allreduce, TestReportsCompletionWithoutBlocking) {
  Communicator& comm = world();
  auto buffer = filled(comm.rank(), 1000, DType::int64, ReduceOp::min);
  Request request = comm.iallreduce(buffer.data(), 1000, DType::int64, ReduceOp::min);
  while (!request.test()) {
  }
  request.wait();
  EXPECT_EQ(count_wrong(buffer.data(), 1000, comm.size(), DType::int64, ReduceOp::min), 0u);
}

TEST(Allreduce, SingleRankCommunicatorCopiesItsInput) {
  CommunicatorOptions options;
  Communicator self = Communicator::from_mpi(MPI_COMM_SELF, options);
  EXPECT_EQ(self.size(), 1);
  auto send = filled(0, 33, DType::bfloat16, ReduceOp::avg);
  std::vector<std::byte> recv(send.size());
  self.allreduce(send.data(), recv.data(), 33, DType::bfloat16, ReduceOp::avg);
  EXPECT_EQ(count_wrong(recv.data(), 33, 1, DType::bfloat16, ReduceOp::avg), 0u);
  self.iallreduce(send.data(), 33, DType::bfloat16, ReduceOp::avg).wait();
  EXPECT_EQ(count_wrong(send.data(), 33, 1, DType::bfloat16, ReduceOp::avg), 0u);
}

TEST(Broadcast, EveryDtypeArrivesFromEveryRoot) {
  Communicator& comm = world();
  for (DType dt : kTypes) {
    for (int root = 0; root < comm.size(); ++root) {
      for (std::size_t count : {std::size_t{0}, std::size_t{1}, std::size_t{1001}, std::size_t{300007}}) {
        auto buffer = filled(comm.rank(), count, dt, ReduceOp::max);
        auto want = filled(root, count, dt, ReduceOp::max);
        comm.broadcast(buffer.data(), count, dt, root);
        EXPECT_EQ(std::memcmp(buffer.data(), want.data(), count * size_of(dt)), 0)
            << to_string(dt) << " root " << root << " count " << count;
      }
    }
  }
  auto buffer = filled(comm.rank(), 77, DType::int32, ReduceOp::max);
  comm.ibroadcast(buffer.data(), 77, DType::int32, comm.size() - 1).wait();
  auto want = filled(comm.size() - 1, 77, DType::int32, ReduceOp::max);
  EXPECT_EQ(std::memcmp(buffer.data(), want.data(), 77 * 4), 0);
}

TEST(Allgather, BlocksArriveInRankOrderInAndOutOfPlace) {
  Communicator& comm = world();
  const std::size_t n = static_cast<std::size_t>(comm.size());
  for (DType dt : kTypes) {
    for (std::size_t count : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{100003}}) {
      const std::size_t block = count * size_of(dt);
      std::vector<std::byte> want(block * n + 1);
      for (int r = 0; r < comm.size(); ++r) {
        auto part = filled(r, count, dt, ReduceOp::sum);
        std::memcpy(want.data() + block * static_cast<std::size_t>(r), part.data(), block);
      }
      auto send = filled(comm.rank(), count, dt, ReduceOp::sum);
      std::vector<std::byte> recv(block * n + 1);
      comm.allgather(send.data(), recv.data(), count, dt);
      EXPECT_EQ(std::memcmp(recv.data(), want.data(), block * n), 0) << to_string(dt) << " count " << count;

      std::vector<std::byte> in_place(block * n + 1);
      std::byte* mine = in_place.data() + block * static_cast<std::size_t>(comm.rank());
      std::memcpy(mine, send.data(), block);
      Request request = comm.iallgather(mine, in_place.data(), count, dt);
      request.wait();
      EXPECT_EQ(std::memcmp(in_place.data(), want.data(), block * n), 0)
          << to_string(dt) << " count " << count << " in place";
    }
  }
}

TEST(ReduceScatter, EachRankGetsItsBlockReduced) {
  Communicator& comm = world();
  const std::size_t n = static_cast<std::size_t>(comm.size());
  const std::size_t r = static_cast<std::size_t>(comm.rank());
  for (DType dt : kTypes) {
    for (ReduceOp op : kOps) {
      for (std::size_t count : {std::size_t{0}, std::size_t{1}, std::size_t{13}, std::size_t{50021}}) {
        const std::size_t block = count * size_of(dt);
        auto send = filled(comm.rank(), count * n, dt, op);
        std::vector<std::byte> recv(block + 1);
        comm.reduce_scatter(send.data(), recv.data(), count, dt, op);
        EXPECT_EQ(count_wrong(recv.data(), count, comm.size(), dt, op, r * count), 0u)
            << describe(dt, op, count, false);

        std::byte* mine = send.data() + block * r;
        comm.ireduce_scatter(send.data(), mine, count, dt, op).wait();
        EXPECT_EQ(count_wrong(mine, count, comm.size(), dt, op, r * count), 0u) << describe(dt, op, count, true);
      }
    }
  }
}

TEST(Barrier, BlockingAndNonBlockingBarriersComplete) {
  Communicator& comm = world();
  comm.barrier();
  Request request = comm.ibarrier();
  request.wait();
  EXPECT_TRUE(request.test());
}

TEST(Errors, RanksThatDisagreeAboutALargeCountAllGetAnError) {
  Communicator& comm = world();
  if (comm.size() == 1) GTEST_SKIP() << "a single rank cannot disagree with itself";
  // Above the threshold of both cohort's paths (node-local on one node, the ring across
  // nodes), which check agreement; MPI's own algorithms may not notice.
  const std::size_t count = (2u << 20) / sizeof(float) + static_cast<std::size_t>(comm.rank());
  std::vector<float> buffer(count, 1.0f);
  try {
    comm.allreduce(buffer.data(), count, DType::float32, ReduceOp::sum);
    ADD_FAILURE() << "no error for counts that differ between ranks";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ranks disagree"), std::string::npos) << e.what();
  }
  // The communicator is still usable afterwards.
  std::vector<float> ok(count - static_cast<std::size_t>(comm.rank()), 1.0f);
  comm.allreduce(ok.data(), ok.size(), DType::float32, ReduceOp::sum);
  EXPECT_EQ(ok.back(), static_cast<float>(comm.size()));
}

TEST(Errors, RanksThatDisagreeOnTheRingAllGetAnError) {
  Communicator& comm = world(AllreduceAlgorithm::ring);
  if (comm.size() == 1) GTEST_SKIP() << "a single rank cannot disagree with itself";
  std::vector<double> buffer(5000, 1.0);
  const ReduceOp op = comm.rank() == 0 ? ReduceOp::sum : ReduceOp::max;
  try {
    comm.allreduce(buffer.data(), buffer.size(), DType::float64, op);
    ADD_FAILURE() << "no error for ops that differ between ranks";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ranks disagree about the op"), std::string::npos) << e.what();
  }
}

TEST(Errors, VerifyCatchesRanksThatDisagreeAboutADtype) {
  CommunicatorOptions options;
  options.verify = true;
  Communicator comm = Communicator::from_environment(options);
  if (comm.size() == 1) GTEST_SKIP() << "a single rank cannot disagree with itself";
  std::vector<std::int64_t> buffer(4, 1);
  const DType dt = comm.rank() == 0 ? DType::int64 : DType::float64;
  try {
    comm.allreduce(buffer.data(), 4, dt, ReduceOp::sum);
    ADD_FAILURE() << "no error for dtypes that differ between ranks";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ranks disagree about the dtype"), std::string::npos) << e.what();
  }
}

TEST(Errors, UnknownBackendNameIsAnInputErrorNamingTheChoices) {
  CommunicatorOptions options;
  options.backend = "gloo";
  try {
    Communicator::from_environment(options);
    ADD_FAILURE() << "no error for backend 'gloo'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    EXPECT_NE(std::string(e.what()).find("use auto, mpi or nccl"), std::string::npos) << e.what();
  }
}

TEST(Errors, NcclWithoutADeviceIsAnInputError) {
  CommunicatorOptions options;
  options.backend = "nccl";
  try {
    Communicator comm = Communicator::from_environment(options);
    if (comm.device_backend() != BackendKind::nccl) ADD_FAILURE() << "nccl accepted without a device";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    const std::string what = e.what();
    EXPECT_TRUE(what.find("no CUDA device") != std::string::npos ||
                what.find("built without CUDA and NCCL") != std::string::npos)
        << what;
  }
}

TEST(Errors, WorldSizeThatDisagreesWithTheLaunchIsAnInputError) {
  Communicator& comm = world();
  const std::string rank = std::to_string(comm.rank());
  setenv("RANK", rank.c_str(), 1);
  setenv("WORLD_SIZE", "99", 1);
  try {
    Communicator::from_environment();
    ADD_FAILURE() << "no error for WORLD_SIZE=99";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    EXPECT_NE(std::string(e.what()).find("WORLD_SIZE=99 but MPI started"), std::string::npos) << e.what();
  }
  unsetenv("RANK");
  unsetenv("WORLD_SIZE");
}

TEST(Environment, RanksFollowTheLaunchContractsRank) {
  Communicator& comm = world();
  // Reverse the order: the launch contract's RANK wins over MPI's.
  const std::string rank = std::to_string(comm.size() - 1 - comm.rank());
  const std::string size = std::to_string(comm.size());
  setenv("RANK", rank.c_str(), 1);
  setenv("WORLD_SIZE", size.c_str(), 1);
  Communicator reordered = Communicator::from_environment();
  unsetenv("RANK");
  unsetenv("WORLD_SIZE");
  EXPECT_EQ(reordered.rank(), comm.size() - 1 - comm.rank());
  int mine = comm.rank();
  std::vector<int> order(static_cast<std::size_t>(comm.size()));
  reordered.allgather(&mine, order.data(), 1, DType::int32);
  for (int r = 0; r < comm.size(); ++r) EXPECT_EQ(order[static_cast<std::size_t>(r)], comm.size() - 1 - r);
}

TEST(Errors, BroadcastFromARankThatDoesNotExistIsAnInputError) {
  Communicator& comm = world();
  int value = 0;
  EXPECT_THROW(comm.broadcast(&value, 1, DType::int32, comm.size()), Error);
}

}  // namespace
}  // namespace cohort::collectives
