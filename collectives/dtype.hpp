// collectives/dtype.hpp — element types: 16-bit float conversion and element-wise reduction.
#pragma once

#include <cstddef>
#include <cstdint>

#include "collectives/communicator.hpp"

namespace cohort::detail {

// IEEE binary16 and bfloat16 from and to binary32, rounding to nearest even; NaN stays NaN,
// overflow becomes infinity, binary16 subnormals are kept.
float half_to_float(std::uint16_t h);
std::uint16_t float_to_half(float f);
float bf16_to_float(std::uint16_t b);
std::uint16_t float_to_bf16(float f);

// dst[i] = srcs[0][i] op srcs[1][i] op … for i < count. dst may be srcs[0]. f16 and bf16
// accumulate in f32 and are rounded once; avg divides the sum by `ranks`.
void reduce(void* dst, const void* const* srcs, int nsrcs, std::size_t count, DataType dtype,
            ReduceOp op, int ranks);

// buffer[i] /= ranks, the last step of an average computed as a sum.
void divide(void* buffer, std::size_t count, DataType dtype, int ranks);

// Element-wise conversion between any two types (used by buckets that accumulate 16-bit
// floats in f32). Same types copy.
void convert(const void* src, DataType from, void* dst, DataType to, std::size_t count);

// One element as double, for checks and reports.
double element_as_double(const void* buffer, std::size_t index, DataType dtype);
// Store `value` (rounded to the type) as element `index`.
void store_from_double(void* buffer, std::size_t index, DataType dtype, double value);

}  // namespace cohort::detail
