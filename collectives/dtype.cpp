#include "collectives/dtype.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>

#include "common/error.hpp"

namespace cohort::collectives {

namespace {

constexpr DType kCollectiveDTypes[] = {DType::float32, DType::float64, DType::float16, DType::bfloat16,
                                       DType::int32,   DType::int64,   DType::uint8};

}  // namespace

std::span<const DType> collective_dtypes() { return kCollectiveDTypes; }

std::string_view to_string(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::avg: return "avg";
    case ReduceOp::min: return "min";
    case ReduceOp::max: return "max";
    case ReduceOp::prod: return "prod";
  }
  return "?";
}

std::string_view to_string(BackendKind backend) { return backend == BackendKind::nccl ? "nccl" : "mpi"; }

ReduceOp parse_op(std::string_view text) {
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg, ReduceOp::min, ReduceOp::max, ReduceOp::prod}) {
    if (to_string(op) == text) return op;
  }
  throw input_error("unknown reduction '" + std::string(text) + "' (use sum, avg, min, max or prod)");
}

namespace detail {

void require_collective_dtype(const char* what, DType dtype) {
  const auto supported = collective_dtypes();
  if (std::find(supported.begin(), supported.end(), dtype) != supported.end()) return;
  throw input_error(std::string(what) + ": collectives do not handle " + std::string(to_string(dtype)) + " (use " +
                    dtype_list(supported) + ")");
}

std::string_view nccl_tests_name(DType dtype) {
  switch (dtype) {
    case DType::float32: return "float";
    case DType::float64: return "double";
    case DType::float16: return "half";
    default: return to_string(dtype);
  }
}

namespace {

// Decoding a binary16 is a table lookup: 256 KiB, built once, faster than the bit work on
// every element of a large reduction.
const std::array<float, 65536>& half_table() {
  static const auto table = [] {
    auto t = std::make_unique<std::array<float, 65536>>();
    for (std::uint32_t h = 0; h < 65536; ++h) {
      const std::uint32_t sign = (h & 0x8000u) << 16;
      const std::uint32_t exponent = (h >> 10) & 0x1fu;
      const std::uint32_t mantissa = h & 0x3ffu;
      float value;
      if (exponent == 0) {
        value = std::ldexp(static_cast<float>(mantissa), -24);
        if (sign) value = -value;
      } else if (exponent == 31) {
        value = std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
      } else {
        value = std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
      }
      (*t)[h] = value;
    }
    return t;
  }();
  return *table;
}

}  // namespace

float half_to_float(std::uint16_t h) { return half_table()[h]; }

std::uint16_t float_to_half(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) {  // infinity, or NaN kept quiet with its top payload bits
    return static_cast<std::uint16_t>(sign | 0x7c00u |
                                      (absx > 0x7f800000u ? 0x200u | ((absx >> 13) & 0x3ffu) : 0u));
  }
  if (absx >= 0x47800000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // ≥ 2^16
  const std::uint32_t exponent = absx >> 23;
  if (exponent < 113) {  // below 2^-14: a binary16 subnormal, or zero
    if (exponent < 102) return static_cast<std::uint16_t>(sign);
    const std::uint32_t mantissa = (absx & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126 - exponent;
    std::uint32_t m = mantissa >> shift;
    const std::uint32_t rest = mantissa & ((1u << shift) - 1);
    const std::uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (m & 1u))) ++m;
    return static_cast<std::uint16_t>(sign | m);
  }
  std::uint32_t h = ((exponent - 112) << 10) | ((absx & 0x7fffffu) >> 13);
  const std::uint32_t rest = absx & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry may reach infinity
  return static_cast<std::uint16_t>(sign | std::min(h, 0x7c00u));
}

float bf16_to_float(std::uint16_t b) { return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16); }

std::uint16_t float_to_bf16(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);
  return static_cast<std::uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

namespace {

template <class T>
struct Native {
  using raw = T;
  using acc = T;
  static acc load(raw v) { return v; }
  static raw store(acc v) { return v; }
};
struct Half {
  using raw = std::uint16_t;
  using acc = float;
  static acc load(raw v) { return half_to_float(v); }
  static raw store(acc v) { return float_to_half(v); }
};
struct BFloat {
  using raw = std::uint16_t;
  using acc = float;
  static acc load(raw v) { return bf16_to_float(v); }
  static raw store(acc v) { return float_to_bf16(v); }
};

// Integer sums and products wrap, as they do in MPI and NCCL; computing them unsigned keeps
// the wrap defined.
template <class A>
A add(A a, A b) {
  if constexpr (std::is_integral_v<A>) {
    using U = std::make_unsigned_t<A>;
    return static_cast<A>(static_cast<U>(static_cast<U>(a) + static_cast<U>(b)));
  } else {
    return a + b;
  }
}
template <class A>
A mul(A a, A b) {
  if constexpr (std::is_integral_v<A>) {
    using U = std::conditional_t<(sizeof(A) < sizeof(unsigned)), unsigned, std::make_unsigned_t<A>>;
    return static_cast<A>(static_cast<U>(a) * static_cast<U>(b));
  } else {
    return a * b;
  }
}

constexpr std::size_t kBlock = 1024;

template <class Tr, ReduceOp Op>
void reduce_typed(void* dst, const void* const* srcs, int nsrcs, std::size_t count, int ranks) {
  using Raw = typename Tr::raw;
  using Acc = typename Tr::acc;
  Acc acc[kBlock];
  for (std::size_t base = 0; base < count; base += kBlock) {
    const std::size_t len = std::min(kBlock, count - base);
    const Raw* first = static_cast<const Raw*>(srcs[0]) + base;
    for (std::size_t j = 0; j < len; ++j) acc[j] = Tr::load(first[j]);
    for (int k = 1; k < nsrcs; ++k) {
      const Raw* s = static_cast<const Raw*>(srcs[k]) + base;
      for (std::size_t j = 0; j < len; ++j) {
        const Acc v = Tr::load(s[j]);
        if constexpr (Op == ReduceOp::sum || Op == ReduceOp::avg) acc[j] = add(acc[j], v);
        else if constexpr (Op == ReduceOp::prod) acc[j] = mul(acc[j], v);
        else if constexpr (Op == ReduceOp::min) acc[j] = v < acc[j] ? v : acc[j];
        else acc[j] = acc[j] < v ? v : acc[j];
      }
    }
    if constexpr (Op == ReduceOp::avg) {
      const Acc n = static_cast<Acc>(ranks);
      for (std::size_t j = 0; j < len; ++j) acc[j] = static_cast<Acc>(acc[j] / n);
    }
    Raw* d = static_cast<Raw*>(dst) + base;
    for (std::size_t j = 0; j < len; ++j) d[j] = Tr::store(acc[j]);
  }
}

template <class Tr>
void reduce_op(void* dst, const void* const* srcs, int nsrcs, std::size_t count, ReduceOp op,
               int ranks) {
  switch (op) {
    case ReduceOp::sum: return reduce_typed<Tr, ReduceOp::sum>(dst, srcs, nsrcs, count, ranks);
    case ReduceOp::avg: return reduce_typed<Tr, ReduceOp::avg>(dst, srcs, nsrcs, count, ranks);
    case ReduceOp::min: return reduce_typed<Tr, ReduceOp::min>(dst, srcs, nsrcs, count, ranks);
    case ReduceOp::max: return reduce_typed<Tr, ReduceOp::max>(dst, srcs, nsrcs, count, ranks);
    case ReduceOp::prod: return reduce_typed<Tr, ReduceOp::prod>(dst, srcs, nsrcs, count, ranks);
  }
}

// Calls f with the traits type of dtype.
template <class F>
void with_traits(DType dtype, F&& f) {
  switch (dtype) {
    case DType::float32: return f(Native<float>{});
    case DType::float64: return f(Native<double>{});
    case DType::float16: return f(Half{});
    case DType::bfloat16: return f(BFloat{});
    case DType::int32: return f(Native<std::int32_t>{});
    case DType::int64: return f(Native<std::int64_t>{});
    case DType::uint8: return f(Native<std::uint8_t>{});
    default: require_collective_dtype("reduce", dtype);  // throws: the entry points let none through
  }
}

}  // namespace

void reduce(void* dst, const void* const* srcs, int nsrcs, std::size_t count, DType dtype,
            ReduceOp op, int ranks) {
  with_traits(dtype, [&](auto tr) { reduce_op<decltype(tr)>(dst, srcs, nsrcs, count, op, ranks); });
}

void divide(void* buffer, std::size_t count, DType dtype, int ranks) {
  const void* srcs[1] = {buffer};
  reduce(buffer, srcs, 1, count, dtype, ReduceOp::avg, ranks);
}

void convert(const void* src, DType from, void* dst, DType to, std::size_t count) {
  if (from == to) {
    if (count) std::memmove(dst, src, count * size_of(from));
    return;
  }
  const bool from16 = from == DType::float16 || from == DType::bfloat16;
  const bool to16 = to == DType::float16 || to == DType::bfloat16;
  if (from16 && to == DType::float32) {
    const auto* s = static_cast<const std::uint16_t*>(src);
    auto* d = static_cast<float*>(dst);
    if (from == DType::float16) {
      const auto& table = half_table();
      for (std::size_t i = 0; i < count; ++i) d[i] = table[s[i]];
    } else {
      for (std::size_t i = 0; i < count; ++i) d[i] = bf16_to_float(s[i]);
    }
    return;
  }
  if (from == DType::float32 && to16) {
    const auto* s = static_cast<const float*>(src);
    auto* d = static_cast<std::uint16_t*>(dst);
    if (to == DType::float16) {
      for (std::size_t i = 0; i < count; ++i) d[i] = float_to_half(s[i]);
    } else {
      for (std::size_t i = 0; i < count; ++i) d[i] = float_to_bf16(s[i]);
    }
    return;
  }
  throw Error("convert: " + std::string(to_string(from)) + " to " + std::string(to_string(to)) +
              " is not supported (only 16-bit floats to and from float)");
}

double element_as_double(const void* buffer, std::size_t index, DType dtype) {
  double out = 0;
  with_traits(dtype, [&](auto tr) {
    using Tr = decltype(tr);
    out = static_cast<double>(Tr::load(static_cast<const typename Tr::raw*>(buffer)[index]));
  });
  return out;
}

void store_from_double(void* buffer, std::size_t index, DType dtype, double value) {
  with_traits(dtype, [&](auto tr) {
    using Tr = decltype(tr);
    static_cast<typename Tr::raw*>(buffer)[index] = Tr::store(static_cast<typename Tr::acc>(value));
  });
}

}  // namespace detail
}  // namespace cohort::collectives
