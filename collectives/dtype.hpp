// collectives/dtype.hpp — what collectives do with element types: 16-bit float conversion
// and element-wise reduction, over cohort::DType.
//
// Private to collectives/ (namespace detail): users include communicator.hpp and bucketing.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "collectives/communicator.hpp"

namespace cohort::collectives::detail {

// Throws an input error "<what>: collectives do not handle int16 (use …)" unless `dtype` is
// one of collective_dtypes(). Every entry point checks, so that the kernels see no other.
void require_collective_dtype(const char* what, DType dtype);

// The type as nccl-tests' tables spell it ("float", "half", "bfloat16", "int32"), which the
// benchmark's table keeps so that the two read alike.
std::string_view nccl_tests_name(DType dtype);

// IEEE binary16 and bfloat16 from and to binary32, rounding to nearest even; NaN stays NaN,
// overflow becomes infinity, binary16 subnormals are kept.
float half_to_float(std::uint16_t h);
std::uint16_t float_to_half(float f);
float bf16_to_float(std::uint16_t b);
std::uint16_t float_to_bf16(float f);

// dst[i] = srcs[0][i] op srcs[1][i] op … for i < count. dst may be srcs[0]. float16 and
// bfloat16 accumulate in float32 and are rounded once; avg divides the sum by `ranks`.
void reduce(void* dst, const void* const* srcs, int nsrcs, std::size_t count, DType dtype,
            ReduceOp op, int ranks);

// buffer[i] /= ranks, the last step of an average computed as a sum.
void divide(void* buffer, std::size_t count, DType dtype, int ranks);

// Element-wise conversion between any two types (used by buckets that accumulate 16-bit
// floats in float32). Same types copy.
void convert(const void* src, DType from, void* dst, DType to, std::size_t count);

// One element as double, for checks and reports.
double element_as_double(const void* buffer, std::size_t index, DType dtype);
// Store `value` (rounded to the type) as element `index`.
void store_from_double(void* buffer, std::size_t index, DType dtype, double value);

}  // namespace cohort::collectives::detail
