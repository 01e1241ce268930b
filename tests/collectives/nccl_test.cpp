// The NCCL backend on device buffers, run on one rank and on two. Every test skips, saying
// why, where this machine lacks the devices for the run: one rank needs one GPU, two ranks
// need two (NCCL refuses two ranks of one communicator on one device). On one rank an
// allreduce is a copy, so the tests that check reductions say so and skip there.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>
#include <memory>

#include "collectives/bucketing.hpp"
#include "collectives/communicator.hpp"
#include "collectives/nccl_backend.hpp"
#include "collectives/reference.hpp"
#include "common/error.hpp"

namespace cohort::collectives {
namespace {

constexpr DType kTypes[] = {DType::float32, DType::float64, DType::float16, DType::bfloat16,
                               DType::int32, DType::int64, DType::uint8};
constexpr ReduceOp kOps[] = {ReduceOp::sum, ReduceOp::avg, ReduceOp::min, ReduceOp::max, ReduceOp::prod};

// Ranks of this launch, read before any communicator exists: the skip must be decided
// without creating one, the same way on every rank.
int launched_ranks() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "WORLD_SIZE"}) {
    if (const char* text = std::getenv(name)) return std::atoi(text);
  }
  return 1;
}

class Nccl : public ::testing::Test {
 protected:
  void SetUp() override {
    const int devices = detail::cuda_device_count();
    if (devices == 0) GTEST_SKIP() << "no CUDA device is visible: the NCCL backend needs one";
    if (devices < launched_ranks()) {
      GTEST_SKIP() << launched_ranks() << " ranks need " << launched_ranks() << " CUDA devices and this machine has "
                   << devices << " (NCCL refuses two ranks of one communicator on one device): NOT CHECKED";
    }
  }
  static Communicator& comm() {
    static Communicator c = Communicator::from_environment();
    return c;
  }
  // On one rank every reduction is a copy of the input: a test of reductions proves nothing.
  static bool reductions_checkable() { return comm().size() >= 2; }
};

#define SKIP_UNLESS_REDUCTIONS_CHECKABLE()                                                          \
  if (!reductions_checkable())                                                                       \
  GTEST_SKIP() << "one rank: an allreduce is a copy, so reductions were NOT CHECKED here; they are " \
                  "checked by collectives.nccl.2ranks on a machine with two GPUs"

TEST_F(Nccl, DeviceBuffersChooseTheNcclBackend) {
  EXPECT_EQ(comm().device_backend(), BackendKind::nccl);
  EXPECT_GE(comm().device(), 0);
}

TEST_F(Nccl, AllreduceOfEveryOpAndDtypeOnDeviceBuffersMatchesTheReference) {
  SKIP_UNLESS_REDUCTIONS_CHECKABLE();
  const int device = comm().device();
  for (DType dt : kTypes) {
    for (ReduceOp op : kOps) {
      for (std::size_t count : {std::size_t{0}, std::size_t{1}, std::size_t{1001}, std::size_t{1000003}}) {
        const std::size_t bytes = count * size_of(dt);
        detail::DeviceBuffer send(bytes, device), recv(bytes, device);
        auto input = detail::filled(comm().rank(), count, dt, op);
        send.upload(input.data(), bytes);
        comm().allreduce(send.data(), recv.data(), count, dt, op);
        std::vector<std::byte> got(bytes + 1);
        recv.download(got.data(), bytes);
        EXPECT_EQ(detail::count_wrong(got.data(), count, comm().size(), dt, op), 0u)
            << detail::describe(dt, op, count, false) << ": "
            << detail::first_wrong(got.data(), count, comm().size(), dt, op);
        comm().allreduce(send.data(), count, dt, op);  // in place
        send.download(got.data(), bytes);
        EXPECT_EQ(detail::count_wrong(got.data(), count, comm().size(), dt, op), 0u)
            << detail::describe(dt, op, count, true) << ": "
            << detail::first_wrong(got.data(), count, comm().size(), dt, op);
      }
    }
  }
}

TEST_F(Nccl, NonBlockingOperationsCompleteThroughTheirRequest) {
  SKIP_UNLESS_REDUCTIONS_CHECKABLE();
  const std::size_t count = 1 << 22;
  detail::DeviceBuffer buffer(count * 4, comm().device());
  auto input = detail::filled(comm().rank(), count, DType::float32, ReduceOp::max);
  buffer.upload(input.data(), count * 4);
  Request request = comm().iallreduce(buffer.data(), count, DType::float32, ReduceOp::max);
  while (!request.test()) {
  }
  request.wait();
  std::vector<std::byte> got(count * 4 + 1);
  buffer.download(got.data(), count * 4);
  EXPECT_EQ(detail::count_wrong(got.data(), count, comm().size(), DType::float32, ReduceOp::max), 0u);
}

TEST_F(Nccl, BroadcastAllgatherAndReduceScatterWorkOnDeviceBuffers) {
  SKIP_UNLESS_REDUCTIONS_CHECKABLE();
  const int n = comm().size();
  const std::size_t count = 4099;
  detail::DeviceBuffer a(count * 4 * static_cast<std::size_t>(n), comm().device());
  detail::DeviceBuffer b(count * 4 * static_cast<std::size_t>(n), comm().device());
  auto input = detail::filled(comm().rank(), count * static_cast<std::size_t>(n), DType::int32, ReduceOp::sum);
  a.upload(input.data(), count * 4 * static_cast<std::size_t>(n));
  comm().reduce_scatter(a.data(), b.data(), count, DType::int32, ReduceOp::sum);
  std::vector<std::byte> got(count * 4 * static_cast<std::size_t>(n) + 1);
  b.download(got.data(), count * 4);
  EXPECT_EQ(detail::count_wrong(got.data(), count, n, DType::int32, ReduceOp::sum,
                                static_cast<std::size_t>(comm().rank()) * count), 0u);
  comm().allgather(a.data(), b.data(), count, DType::int32);
  b.download(got.data(), count * 4);
  EXPECT_EQ(std::memcmp(got.data(), input.data(), count * 4), 0);
  comm().ibroadcast(a.data(), count, DType::int32, 0).wait();
  a.download(got.data(), count * 4);
  EXPECT_EQ(std::memcmp(got.data(), input.data(), count * 4), 0);
  comm().barrier();
}

TEST_F(Nccl, HostBufferWithTheNcclBackendIsAnInputError) {
  CommunicatorOptions options;
  options.backend = "nccl";
  Communicator nccl = Communicator::from_environment(options);
  float host[4] = {};
  try {
    nccl.allreduce(host, 4, DType::float32, ReduceOp::sum);
    ADD_FAILURE() << "host buffer accepted by the nccl backend";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    EXPECT_NE(std::string(e.what()).find("host memory and the backend is nccl"), std::string::npos) << e.what();
  }
}

TEST_F(Nccl, DeviceBufferWithTheMpiBackendIsAnInputError) {
  CommunicatorOptions options;
  options.backend = "mpi";
  Communicator mpi = Communicator::from_environment(options);
  detail::DeviceBuffer buffer(16, comm().device());
  EXPECT_THROW(mpi.allreduce(buffer.data(), 4, DType::float32, ReduceOp::sum), Error);
}

TEST_F(Nccl, OneDeviceAndOneHostBufferIsAnInputError) {
  detail::DeviceBuffer device(16, comm().device());
  float host[4] = {};
  for (const auto& [send, recv] : {std::pair<void*, void*>{device.data(), host}, {host, device.data()}}) {
    try {
      comm().allreduce(send, recv, 4, DType::float32, ReduceOp::sum);
      ADD_FAILURE() << "a device and a host buffer were accepted together";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::input);
      EXPECT_NE(std::string(e.what()).find("one buffer is CUDA device memory and the other host memory"),
                std::string::npos)
          << e.what();
    }
  }
}

TEST_F(Nccl, ABufferOnAnotherDeviceIsAnInputError) {
  if (detail::cuda_device_count() < 2) GTEST_SKIP() << "needs two CUDA devices";
  const int other = (comm().device() + 1) % detail::cuda_device_count();
  detail::DeviceBuffer buffer(16, other);
  try {
    comm().allreduce(buffer.data(), 4, DType::float32, ReduceOp::sum);
    ADD_FAILURE() << "a buffer on device " << other << " was accepted by a communicator on device " << comm().device();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    EXPECT_NE(std::string(e.what()).find("allocate it on device " + std::to_string(comm().device())),
              std::string::npos)
        << e.what();
  }
}

TEST_F(Nccl, CollectivesRunAfterTheCallersWorkOnTheDefaultStream) {
  // 64 MiB: the memset is still running on the default stream when the call is made.
  const std::size_t count = std::size_t{64} << 20;
  detail::DeviceBuffer buffer(count, comm().device());
  ASSERT_EQ(cudaMemsetAsync(buffer.data(), 1, count, cudaStreamLegacy), cudaSuccess);
  comm().allreduce(buffer.data(), count, DType::uint8, ReduceOp::sum);
  std::vector<std::uint8_t> got(count);
  buffer.download(got.data(), count);
  const auto want = static_cast<std::uint8_t>(comm().size());
  EXPECT_EQ(std::count(got.begin(), got.end(), want), static_cast<std::ptrdiff_t>(count))
      << "an element of the allreduce did not see the default stream's memset";
}

TEST_F(Nccl, GradientsInDeviceMemoryAreReducedInDeviceBuckets) {
  SKIP_UNLESS_REDUCTIONS_CHECKABLE();
  const std::pair<DType, std::size_t> shapes[] = {{DType::float32, 1000}, {DType::float16, 3001},
                                                     {DType::bfloat16, 64},  {DType::float32, 0},
                                                     {DType::float64, 4097}, {DType::float32, 50000}};
  std::vector<std::unique_ptr<detail::DeviceBuffer>> grads;
  BucketOptions options;
  options.bucket_bytes = 64 * 1024;
  GradientBuckets buckets(comm(), options);
  for (const auto& [dt, count] : shapes) {
    grads.push_back(std::make_unique<detail::DeviceBuffer>(count * size_of(dt), comm().device()));
    buckets.add(grads.back()->data(), count, dt);
  }
  const std::size_t view = buckets.add_view(777, DType::float16);  // device buckets keep 16-bit types
  for (int step = 0; step < 2; ++step) {
    for (std::size_t k = 0; k < grads.size(); ++k) {
      const auto& [dt, count] = shapes[k];
      const auto input = detail::filled(comm().rank(), count, dt, ReduceOp::sum);
      grads[k]->upload(input.data(), count * size_of(dt));
      buckets.mark_ready(k);
    }
    const auto input = detail::filled(comm().rank(), 777, DType::float16, ReduceOp::sum);
    ASSERT_EQ(cudaMemcpy(buckets.data(view), input.data(), 777 * 2, cudaMemcpyHostToDevice), cudaSuccess);
    buckets.mark_ready(view);
    buckets.wait();
    for (std::size_t k = 0; k < grads.size(); ++k) {
      const auto& [dt, count] = shapes[k];
      std::vector<std::byte> got(count * size_of(dt) + 1);
      grads[k]->download(got.data(), count * size_of(dt));
      EXPECT_EQ(detail::count_wrong(got.data(), count, comm().size(), dt, ReduceOp::sum), 0u)
          << to_string(dt) << " × " << count << " step " << step;
    }
    std::vector<std::byte> got(777 * 2 + 1);
    ASSERT_EQ(cudaMemcpy(got.data(), buckets.data(view), 777 * 2, cudaMemcpyDeviceToHost), cudaSuccess);
    EXPECT_EQ(detail::count_wrong(got.data(), 777, comm().size(), DType::float16, ReduceOp::sum), 0u);
  }
  float host[4] = {};
  GradientBuckets mixed(comm());
  mixed.add(grads[0]->data(), 4, DType::float32);
  EXPECT_THROW(mixed.add(host, 4, DType::float32), Error);
}

TEST_F(Nccl, ACollectiveThatAPeerNeverJoinsEndsInAnErrorNotAHang) {
  SKIP_UNLESS_REDUCTIONS_CHECKABLE();
  // Read when the communicator is made: a short wait, so the test ends soon after it.
  ::setenv("COHORT_COLLECTIVES_TIMEOUT", "5", 1);
  CommunicatorOptions options;
  options.backend = "nccl";
  Communicator nccl = Communicator::from_environment(options);
  ::unsetenv("COHORT_COLLECTIVES_TIMEOUT");
  detail::DeviceBuffer buffer(1 << 20, nccl.device());
  if (nccl.rank() == 0) {
    // Rank 1 never joins: rank 0 must give up with the reason, and refuse later calls.
    try {
      nccl.allreduce(buffer.data(), (1 << 20) / 4, DType::float32, ReduceOp::sum);
      ADD_FAILURE() << "an allreduce that rank 1 never joined completed";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("did not complete within 5 s"), std::string::npos) << e.what();
    }
    EXPECT_THROW(nccl.allreduce(buffer.data(), 4, DType::float32, ReduceOp::sum), Error);
  }
  comm().barrier();  // the host path: rank 1 waits here while rank 0 times out
}

TEST_F(Nccl, RanksThatMetOverTcpReduceDeviceBuffersAndRefuseHostOnes) {
  if (launched_ranks() != 1) GTEST_SKIP() << "meets as a world of one rank; run on one rank";
  // One rank: NCCL refuses two ranks on one device, and the machines with a GPU have one.
  ::setenv("RANK", "0", 1);
  ::setenv("WORLD_SIZE", "1", 1);
  CommunicatorOptions options;
  options.bootstrap = "tcp";
  Communicator tcp = Communicator::from_environment(options);
  ::unsetenv("RANK");
  ::unsetenv("WORLD_SIZE");
  EXPECT_EQ(tcp.mpi_comm(), MPI_COMM_NULL);
  const std::size_t count = 1000003;
  detail::DeviceBuffer buffer(count * 4, tcp.device());
  auto input = detail::filled(0, count, DType::float32, ReduceOp::sum);
  buffer.upload(input.data(), count * 4);
  tcp.allreduce(buffer.data(), count, DType::float32, ReduceOp::sum);
  tcp.barrier();
  tcp.ibarrier().wait();
  std::vector<std::byte> got(count * 4 + 1);
  buffer.download(got.data(), count * 4);
  EXPECT_EQ(detail::count_wrong(got.data(), count, 1, DType::float32, ReduceOp::sum), 0u);
  float host[4] = {};
  try {
    tcp.allreduce(host, 4, DType::float32, ReduceOp::sum);
    ADD_FAILURE() << "a host buffer was accepted without MPI";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    EXPECT_NE(std::string(e.what()).find("serves CUDA device buffers only"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cohort::collectives
