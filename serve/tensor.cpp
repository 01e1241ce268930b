#include "serve/tensor.hpp"

#include <array>
#include <bit>
#include <cstring>
#include <utility>

#include "common/error.hpp"

namespace cohort::serve {
namespace {

// V2's names of the types cohort holds; BYTES (strings) is the one V2 type left out.
constexpr std::array<std::pair<std::string_view, DType>, 13> kDatatypes{{
    {"BOOL", DType::bool8}, {"UINT8", DType::uint8}, {"UINT16", DType::uint16}, {"UINT32", DType::uint32},
    {"UINT64", DType::uint64}, {"INT8", DType::int8}, {"INT16", DType::int16}, {"INT32", DType::int32},
    {"INT64", DType::int64}, {"FP16", DType::float16}, {"BF16", DType::bfloat16}, {"FP32", DType::float32},
    {"FP64", DType::float64},
}};

constexpr std::int64_t kMaxElements = std::int64_t{1} << 40;

}  // namespace

std::string_view datatype_name(DType dtype) {
  for (const auto& [name, t] : kDatatypes) {
    if (t == dtype) return name;
  }
  return "?";
}

std::optional<DType> find_datatype(std::string_view name) {
  for (const auto& [n, t] : kDatatypes) {
    if (n == name) return t;
  }
  return std::nullopt;
}

DType parse_datatype(std::string_view name, const std::string& where) {
  if (auto t = find_datatype(name)) return *t;
  std::string known;
  for (const auto& [n, t] : kDatatypes) known += (known.empty() ? "" : ", ") + std::string(n);
  std::string why = name == "BYTES" ? " (BYTES tensors are not served)" : "";
  throw input_error(where + ": datatype '" + std::string(name) + "' is not one of " + known + why);
}

std::int64_t element_count(const Shape& shape) {
  std::int64_t n = 1;
  for (auto d : shape) {
    if (d < 0) throw input_error("shape " + shape_text(shape) + " has a negative dimension");
    if (d != 0 && n > kMaxElements / d) throw input_error("shape " + shape_text(shape) + " is too large");
    n *= d;
  }
  return n;
}

std::string shape_text(const Shape& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

std::optional<std::string> shape_mismatch(const TensorSpec& spec, const Shape& shape, int max_batch) {
  if (spec.any_shape) return std::nullopt;
  Shape expected = spec.dims;
  if (max_batch > 0) {
    if (shape.empty()) return "has no batch dimension";
    if (shape[0] < 1 || shape[0] > max_batch) {
      return "batch " + std::to_string(shape[0]) + " is not 1.." + std::to_string(max_batch);
    }
    expected.insert(expected.begin(), shape[0]);
  }
  bool same = expected.size() == shape.size();
  for (std::size_t i = 0; same && i < shape.size(); ++i) same = expected[i] == -1 || expected[i] == shape[i];
  if (same) return std::nullopt;
  if (max_batch > 0) expected[0] = -1;
  return "shape " + shape_text(shape) + " does not match " + shape_text(expected);
}

std::uint16_t to_bfloat16(float value) {
  auto bits = std::bit_cast<std::uint32_t>(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40);  // NaN stays NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>(bits >> 16);
}

float from_bfloat16(std::uint16_t bits) { return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16); }

std::uint16_t to_half(float value) {
  const auto bits = std::bit_cast<std::uint32_t>(value);
  const std::uint32_t sign = (bits >> 16) & 0x8000u;
  const std::uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);  // NaN
  if (magnitude >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // overflows to infinity
  if (magnitude < 0x38800000u) {
    // Subnormal or zero: add as floats so that the hardware rounds to nearest even.
    const float rounded = std::bit_cast<float>(magnitude) + 0.5f;
    return static_cast<std::uint16_t>(sign | (std::bit_cast<std::uint32_t>(rounded) - 0x3f000000u));
  }
  std::uint32_t m = magnitude - 0x38000000u;  // rebias the exponent from 127 to 15
  m += 0xfffu + ((m >> 13) & 1u);
  return static_cast<std::uint16_t>(sign | (m >> 13));
}

float from_half(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  const std::uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {
    const float v = static_cast<float>(mantissa) * (1.0f / 16777216.0f);  // mantissa * 2^-24
    return sign ? -v : v;
  }
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

}  // namespace cohort::serve
