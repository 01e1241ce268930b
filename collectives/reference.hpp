// collectives/reference.hpp — inputs every rank can compute for every other rank, and
// the results a collective must produce from them.
//
// Private to collectives/ (namespace detail): users include communicator.hpp and bucketing.hpp.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "collectives/communicator.hpp"
#include "collectives/dtype.hpp"

namespace cohort::collectives::detail {

inline bool is_integer(DType dt) {
  return dt == DType::int32 || dt == DType::int64 || dt == DType::uint8;
}

// Small values, so that sums and products over a few ranks are exact in every type.
inline double input_value(int rank, std::size_t i, DType dt, ReduceOp op) {
  if (op == ReduceOp::prod) {
    const int v = static_cast<int>((i + static_cast<std::size_t>(rank)) % 5);
    return dt == DType::uint8 ? v % 4 : v - 2;
  }
  const int v = static_cast<int>((i * 7 + static_cast<std::size_t>(rank) * 3) % 11);
  return dt == DType::uint8 ? v : v - 5;
}

inline double reduce_reference(std::size_t i, int ranks, DType dt, ReduceOp op) {
  double acc = input_value(0, i, dt, op);
  for (int r = 1; r < ranks; ++r) {
    const double v = input_value(r, i, dt, op);
    switch (op) {
      case ReduceOp::sum:
      case ReduceOp::avg: acc += v; break;
      case ReduceOp::prod: acc *= v; break;
      case ReduceOp::min: acc = std::min(acc, v); break;
      case ReduceOp::max: acc = std::max(acc, v); break;
    }
  }
  if (op == ReduceOp::avg) acc = is_integer(dt) ? std::trunc(acc / ranks) : acc / ranks;
  return acc;
}

inline std::vector<std::byte> filled(int rank, std::size_t count, DType dt, ReduceOp op) {
  std::vector<std::byte> buffer(count * size_of(dt) + 1);
  for (std::size_t i = 0; i < count; ++i) store_from_double(buffer.data(), i, dt, input_value(rank, i, dt, op));
  return buffer;
}

inline double tolerance(DType dt, double want) {
  const double scale = std::max(1.0, std::abs(want));
  switch (dt) {
    case DType::float16:
    case DType::bfloat16: return 1e-2 * scale;
    case DType::float32: return 1e-6 * scale;
    default: return 0;
  }
}

// The number of elements of `buffer` that differ from the reference (nccl-tests' #wrong).
inline std::size_t count_wrong(const void* buffer, std::size_t count, int ranks, DType dt, ReduceOp op,
                               std::size_t first_index = 0) {
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const double want = reduce_reference(first_index + i, ranks, dt, op);
    const double got = element_as_double(buffer, i, dt);
    if (!(std::abs(got - want) <= tolerance(dt, want))) ++wrong;
  }
  return wrong;
}

// The first few elements that differ, "i=17 got 3 want 4; …", for failure messages.
inline std::string first_wrong(const void* buffer, std::size_t count, int ranks, DType dt, ReduceOp op,
                               std::size_t first_index = 0, std::size_t most = 4) {
  std::string out;
  for (std::size_t i = 0, shown = 0; i < count && shown < most; ++i) {
    const double want = reduce_reference(first_index + i, ranks, dt, op);
    const double got = element_as_double(buffer, i, dt);
    if (std::abs(got - want) <= tolerance(dt, want)) continue;
    out += (shown++ ? "; i=" : "i=") + std::to_string(first_index + i) + " got " + std::to_string(got) + " want " +
           std::to_string(want);
  }
  return out;
}

inline std::string describe(DType dt, ReduceOp op, std::size_t count, bool in_place) {
  return std::string(to_string(dt)) + " " + std::string(to_string(op)) + " count " + std::to_string(count) +
         (in_place ? " in place" : " out of place");
}

}  // namespace cohort::collectives::detail
