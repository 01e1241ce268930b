#include "common/dtype.hpp"

#include <algorithm>
#include <array>
#include <string>

#include "common/error.hpp"

namespace cohort {

namespace {

struct Spelling {
  DType dtype;
  std::string_view name;  // NumPy's
  std::size_t size;
  std::array<std::string_view, 3> short_forms;  // what people type besides the name; "" for none
};

// One row per type, in the order of the enum. The short forms are those of nccl-tests and
// PyTorch ("half", "fp16") and the usual abbreviations ("f32", "i64").
constexpr std::array<Spelling, 13> kSpellings{{
    {DType::float16, "float16", 2, {"f16", "fp16", "half"}},
    {DType::bfloat16, "bfloat16", 2, {"bf16"}},
    {DType::float32, "float32", 4, {"f32", "fp32", "float"}},
    {DType::float64, "float64", 8, {"f64", "fp64", "double"}},
    {DType::int8, "int8", 1, {"i8"}},
    {DType::int16, "int16", 2, {"i16"}},
    {DType::int32, "int32", 4, {"i32"}},
    {DType::int64, "int64", 8, {"i64"}},
    {DType::uint8, "uint8", 1, {"u8"}},
    {DType::uint16, "uint16", 2, {"u16"}},
    {DType::uint32, "uint32", 4, {"u32"}},
    {DType::uint64, "uint64", 8, {"u64"}},
    {DType::bool8, "bool", 1, {}},
}};

constexpr std::array<DType, kSpellings.size()> kAll = [] {
  std::array<DType, kSpellings.size()> out{};
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = kSpellings[i].dtype;
  return out;
}();

// Whether `text` is the name or a short form of `s`.
bool names(const Spelling& s, std::string_view text) {
  if (text.empty()) return false;
  return s.name == text || std::find(s.short_forms.begin(), s.short_forms.end(), text) != s.short_forms.end();
}

}  // namespace

std::string_view to_string(DType dtype) {
  const auto index = static_cast<std::size_t>(dtype);
  return index < kSpellings.size() ? kSpellings[index].name : "unknown";
}

std::size_t size_of(DType dtype) {
  const auto index = static_cast<std::size_t>(dtype);
  return index < kSpellings.size() ? kSpellings[index].size : 0;
}

std::span<const DType> all_dtypes() { return kAll; }

std::string dtype_list(std::span<const DType> dtypes) {
  std::string out;
  for (std::size_t i = 0; i < dtypes.size(); ++i) {
    if (i > 0) out += i + 1 == dtypes.size() ? " or " : ", ";
    out += to_string(dtypes[i]);
  }
  return out;
}

DType parse_dtype(std::string_view text, std::span<const DType> accepted) {
  for (const auto& s : kSpellings) {
    if (!names(s, text)) continue;
    if (std::find(accepted.begin(), accepted.end(), s.dtype) != accepted.end()) return s.dtype;
    throw input_error("dtype '" + std::string(text) + "' is not accepted here (use " + dtype_list(accepted) + ")");
  }
  throw input_error("unknown dtype '" + std::string(text) + "' (use " + dtype_list(accepted) + ")");
}

}  // namespace cohort
