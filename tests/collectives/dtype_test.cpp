// Element types and reductions, in one process (no MPI needed).
#include "collectives/dtype.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "collectives/resnet50.hpp"
#include "common/error.hpp"

namespace cohort::collectives::detail {
namespace {

TEST(Half, EveryFiniteValueRoundTripsThroughFloat) {
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const float f = half_to_float(static_cast<std::uint16_t>(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(float_to_half(f), h) << std::hex << h;
  }
}

TEST(Half, KnownValuesDecodeExactly) {
  EXPECT_EQ(half_to_float(0x3c00), 1.0f);
  EXPECT_EQ(half_to_float(0xc000), -2.0f);
  EXPECT_EQ(half_to_float(0x7bff), 65504.0f);
  EXPECT_EQ(half_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(half_to_float(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(half_to_float(0x7e00)));
}

TEST(Half, RoundsToNearestEven) {
  EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie, down to even
  EXPECT_EQ(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie, up to even
  EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3c01);
  EXPECT_EQ(float_to_half(65519.0f), 0x7bff);
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);  // rounds past the largest half: infinity
  EXPECT_EQ(float_to_half(-1e9f), 0xfc00);
}

TEST(Half, SubnormalsAndTheSmallestValuesRoundCorrectly) {
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0x0000);       // tie, to even zero
  EXPECT_EQ(float_to_half(3 * std::ldexp(1.0f, -26)), 0x0001);   // above the tie
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -14)), 0x0400);       // smallest normal
  EXPECT_EQ(float_to_half(std::ldexp(1023.0f, -24)), 0x03ff);    // largest subnormal
  EXPECT_EQ(float_to_half(-0.0f), 0x8000);
}

TEST(Half, NanStaysNan) {
  EXPECT_TRUE(std::isnan(half_to_float(float_to_half(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isnan(half_to_float(float_to_half(std::bit_cast<float>(0x7f800001u)))));
}

TEST(BFloat16, EveryFiniteValueRoundTripsThroughFloat) {
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const float f = bf16_to_float(static_cast<std::uint16_t>(b));
    if (std::isnan(f)) continue;
    EXPECT_EQ(float_to_bf16(f), b) << std::hex << b;
  }
}

TEST(BFloat16, RoundsToNearestEvenAndKeepsNan) {
  EXPECT_EQ(float_to_bf16(std::bit_cast<float>(0x3f808000u)), 0x3f80);  // tie, down to even
  EXPECT_EQ(float_to_bf16(std::bit_cast<float>(0x3f818000u)), 0x3f82);  // tie, up to even
  EXPECT_EQ(float_to_bf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::bit_cast<float>(0x7f800001u)))));
}

TEST(Reduce, IntegerSumsWrapAsInMpi) {
  std::int32_t a[1] = {std::numeric_limits<std::int32_t>::max()}, b[1] = {1}, out[1];
  const void* srcs[2] = {a, b};
  reduce(out, srcs, 2, 1, DType::int32, ReduceOp::sum, 2);
  EXPECT_EQ(out[0], std::numeric_limits<std::int32_t>::min());
  std::uint8_t x[1] = {200}, y[1] = {100}, z[1];
  const void* bytes[2] = {x, y};
  reduce(z, bytes, 2, 1, DType::uint8, ReduceOp::sum, 2);
  EXPECT_EQ(z[0], 44);
}

TEST(Reduce, HalfSumsAccumulateInFloatAndRoundOnce) {
  // 2048 + 1 + 1: f16 cannot hold 2049, so adding one at a time in f16 stays at 2048.
  const std::uint16_t a[1] = {float_to_half(2048.0f)}, b[1] = {float_to_half(1.0f)}, c[1] = {float_to_half(1.0f)};
  std::uint16_t out[1];
  const void* srcs[3] = {a, b, c};
  reduce(out, srcs, 3, 1, DType::float16, ReduceOp::sum, 3);
  EXPECT_EQ(half_to_float(out[0]), 2050.0f);
}

TEST(Reduce, AverageOfIntegersTruncatesTowardZero) {
  std::int64_t a[2] = {-3, 3}, b[2] = {0, 0}, out[2];
  const void* srcs[2] = {a, b};
  reduce(out, srcs, 2, 2, DType::int64, ReduceOp::avg, 2);
  EXPECT_EQ(out[0], -1);
  EXPECT_EQ(out[1], 1);
}

TEST(Names, UnknownDtypeOrOpIsAnInputErrorListingTheChoices) {
  EXPECT_EQ(parse_dtype("bf16", collective_dtypes()), DType::bfloat16);
  EXPECT_EQ(parse_dtype("half", collective_dtypes()), DType::float16);
  EXPECT_EQ(parse_op("avg"), ReduceOp::avg);
  try {
    parse_dtype("f8", collective_dtypes());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    EXPECT_NE(std::string(e.what()).find("use float32, float64, float16, bfloat16, int32, int64 or uint8"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(parse_op("mean"), Error);
}

TEST(Names, ATypeCollectivesDoNotHandleIsAnInputErrorListingThoseTheyDo) {
  try {
    parse_dtype("int16", collective_dtypes());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    EXPECT_NE(std::string(e.what()).find("'int16' is not accepted here (use float32,"), std::string::npos) << e.what();
  }
  try {
    require_collective_dtype("allreduce", DType::bool8);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    EXPECT_EQ(std::string(e.what()),
              "allreduce: collectives do not handle bool (use float32, float64, float16, bfloat16, int32, int64 or "
              "uint8)");
  }
  EXPECT_NO_THROW(require_collective_dtype("allreduce", DType::bfloat16));
}

TEST(Names, TablesSpellTypesAsNcclTestsDoes) {
  EXPECT_EQ(nccl_tests_name(DType::float32), "float");
  EXPECT_EQ(nccl_tests_name(DType::float64), "double");
  EXPECT_EQ(nccl_tests_name(DType::float16), "half");
  EXPECT_EQ(nccl_tests_name(DType::bfloat16), "bfloat16");
  EXPECT_EQ(nccl_tests_name(DType::int32), "int32");
  EXPECT_EQ(nccl_tests_name(DType::uint8), "uint8");
}

TEST(ResNet50, HasTorchvisionsParameterTensorsAndCount) {
  const auto params = resnet50_parameters();
  std::size_t total = 0;
  for (const auto& p : params) total += p.count();
  EXPECT_EQ(params.size(), 161u);
  EXPECT_EQ(total, 25557032u);
  EXPECT_EQ(params.front().name, "conv1.weight");
  EXPECT_EQ(params.back().name, "fc.bias");
}

}  // namespace
}  // namespace cohort::collectives::detail
