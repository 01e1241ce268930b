// Gradient buckets on every rank of `mpirun -n N`.
#include "collectives/bucketing.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "collectives/reference.hpp"
#include "common/error.hpp"

namespace cohort::collectives {
namespace {

Communicator& world() {
  static Communicator comm = Communicator::from_environment();
  return comm;
}

struct Grad {
  DType dtype;
  std::size_t count;
  std::vector<std::byte> data;
};

// A mix of sizes and types, like a model's weights, biases and norms.
std::vector<Grad> make_grads(int rank) {
  std::vector<Grad> grads;
  const std::pair<DType, std::size_t> shapes[] = {
      {DType::float32, 1000}, {DType::float32, 7},    {DType::float32, 50000}, {DType::float16, 333},
      {DType::float16, 3001}, {DType::bfloat16, 64},  {DType::float32, 1},     {DType::float64, 4097},
      {DType::float32, 0},    {DType::bfloat16, 20000}};
  for (const auto& [dt, count] : shapes) grads.push_back({dt, count, detail::filled(rank, count, dt, ReduceOp::sum)});
  return grads;
}

TEST(Buckets, TensorsFillBucketsUpToTheSizeAndTypeChangesStartANewOne) {
  Communicator& comm = world();
  std::vector<float> a(100), b(100), c(300);
  std::vector<std::uint16_t> h(10);
  BucketOptions options;
  options.bucket_bytes = 1000;
  GradientBuckets buckets(comm, options);
  buckets.add(a.data(), a.size(), DType::float32);  // 400 B
  buckets.add(b.data(), b.size(), DType::float32);  // 800 B: same bucket
  buckets.add(c.data(), c.size(), DType::float32);  // 1200 B alone: its own, larger bucket
  buckets.add(h.data(), h.size(), DType::float16);  // f32 accumulation: fits after c? no, new
  for (std::size_t id = 0; id < 4; ++id) buckets.mark_ready(id);
  buckets.wait();
  EXPECT_EQ(buckets.bucket_count(), 3u);
  EXPECT_EQ(buckets.largest_bucket_bytes(), 1200u);
}

TEST(Buckets, ReducedGradientsMatchTheReferenceWhateverOrderTheyBecomeReady) {
  Communicator& comm = world();
  auto grads = make_grads(comm.rank());
  BucketOptions options;
  options.bucket_bytes = 64 * 1024;
  GradientBuckets buckets(comm, options);
  for (auto& g : grads) buckets.add(g.data.data(), g.count, g.dtype);
  EXPECT_EQ(buckets.tensor_count(), grads.size());
  for (int step = 0; step < 3; ++step) {
    for (std::size_t k = 0; k < grads.size(); ++k) {
      // Refilled in place: the buckets hold pointers to these buffers.
      const auto fresh = detail::filled(comm.rank(), grads[k].count, grads[k].dtype, ReduceOp::sum);
      std::copy(fresh.begin(), fresh.end(), grads[k].data.begin());
    }
    // Ranks mark in different orders; the buckets still start in the same order everywhere.
    std::vector<std::size_t> order(grads.size());
    std::iota(order.begin(), order.end(), 0);
    if ((comm.rank() + step) % 2) std::reverse(order.begin(), order.end());
    for (std::size_t id : order) buckets.mark_ready(id);
    buckets.wait();
    for (const auto& g : grads) {
      EXPECT_EQ(detail::count_wrong(g.data.data(), g.count, comm.size(), g.dtype, ReduceOp::sum), 0u)
          << to_string(g.dtype) << " × " << g.count << " step " << step;
    }
  }
  EXPECT_GT(buckets.bucket_count(), 2u);
}

TEST(Buckets, AveragingDividesBySizeAndLargeBucketsTakeTheNodeLocalPath) {
  Communicator& comm = world();
  std::vector<float> big(1 << 20), small(5);
  std::vector<std::uint16_t> half(70001);
  auto fill = [&] {
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<float>(detail::input_value(comm.rank(), i, DType::float32, ReduceOp::avg));
    for (std::size_t i = 0; i < small.size(); ++i) small[i] = static_cast<float>(detail::input_value(comm.rank(), i, DType::float32, ReduceOp::avg));
    for (std::size_t i = 0; i < half.size(); ++i) detail::store_from_double(half.data(), i, DType::float16, detail::input_value(comm.rank(), i, DType::float16, ReduceOp::avg));
  };
  fill();
  BucketOptions options;
  options.average = true;
  GradientBuckets buckets(comm, options);
  const auto b = buckets.add(big.data(), big.size(), DType::float32);
  const auto s = buckets.add(small.data(), small.size(), DType::float32);
  const auto h = buckets.add(half.data(), half.size(), DType::float16);
  buckets.mark_ready(h);
  buckets.mark_ready(s);
  buckets.mark_ready(b);
  buckets.wait();
  EXPECT_EQ(detail::count_wrong(big.data(), big.size(), comm.size(), DType::float32, ReduceOp::avg), 0u);
  EXPECT_EQ(detail::count_wrong(small.data(), small.size(), comm.size(), DType::float32, ReduceOp::avg), 0u);
  EXPECT_EQ(detail::count_wrong(half.data(), half.size(), comm.size(), DType::float16, ReduceOp::avg), 0u);
}

TEST(Buckets, GradientsLivingInTheirBucketsAreReducedInPlace) {
  Communicator& comm = world();
  BucketOptions options;
  options.bucket_bytes = 4096;
  GradientBuckets buckets(comm, options);
  const std::size_t counts[] = {100, 2000, 1, 300};
  std::vector<std::size_t> ids;
  for (std::size_t count : counts) ids.push_back(buckets.add_view(count, DType::float32));
  EXPECT_THROW(buckets.add_view(5, DType::float16), Error);  // f16 is widened: cannot be a view
  for (int step = 0; step < 2; ++step) {
    for (std::size_t k = 0; k < ids.size(); ++k) {
      auto* g = static_cast<float*>(buckets.data(ids[k]));
      for (std::size_t i = 0; i < counts[k]; ++i) {
        g[i] = static_cast<float>(detail::input_value(comm.rank(), i, DType::float32, ReduceOp::sum));
      }
      buckets.mark_ready(ids[k]);
    }
    buckets.wait();
    for (std::size_t k = 0; k < ids.size(); ++k) {
      EXPECT_EQ(detail::count_wrong(buckets.data(ids[k]), counts[k], comm.size(), DType::float32, ReduceOp::sum), 0u)
          << "tensor " << k << " step " << step;
    }
  }
}

TEST(Buckets, WaitBeforeEveryTensorIsReadyIsAnErrorNamingTheTensor) {
  Communicator& comm = world();
  std::vector<float> a(10), b(10);
  BucketOptions options;
  options.bucket_bytes = 40;
  GradientBuckets buckets(comm, options);
  buckets.add(a.data(), a.size(), DType::float32);
  buckets.add(b.data(), b.size(), DType::float32);
  buckets.mark_ready(0);
  try {
    buckets.wait();
    ADD_FAILURE() << "wait() with tensor 1 not ready";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("first is id 1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(buckets.mark_ready(0), Error);  // twice in one step
  EXPECT_THROW(buckets.mark_ready(7), Error);  // never registered
  buckets.mark_ready(1);
  buckets.wait();
}

TEST(Buckets, DeviceBucketsWithoutADeviceAreAnInputError) {
  if (world().device() >= 0) GTEST_SKIP() << "this rank has a CUDA device: device buckets work here";
  BucketOptions options;
  options.device = true;
  GradientBuckets buckets(world(), options);
  try {
    buckets.add_view(16, DType::float32);
    buckets.data(0);
    ADD_FAILURE() << "device buckets were made without a device";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input) << e.what();
  }
}

}  // namespace
}  // namespace cohort::collectives
