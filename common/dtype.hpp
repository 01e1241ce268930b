// common/dtype.hpp — element types, named as NumPy names them: one vocabulary for every
// component that stores, sends or serves tensors.
//
//   cohort::DType t = cohort::parse_dtype("bf16");   // DType::bfloat16
//   cohort::to_string(t);                            // "bfloat16"
//   cohort::size_of(t);                              // 2
//
// What a component does with a type (its MPI, NCCL or HDF5 type, its reduction kernel) is
// that component's, as a function over DType; not every component handles every type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace cohort {

// Stored and sent little-endian. float16 is IEEE binary16, bfloat16 the top half of an IEEE
// binary32; both are held as 16-bit words. bool8 is one byte, 0 or 1 (NumPy's "bool").
enum class DType : std::uint8_t {
  float16,
  bfloat16,
  float32,
  float64,
  int8,
  int16,
  int32,
  int64,
  uint8,
  uint16,
  uint32,
  uint64,
  bool8,
};

// NumPy's name: "float32", "bfloat16", "bool".
std::string_view to_string(DType dtype);
// Bytes per element.
std::size_t size_of(DType dtype);
// Every type, in the order of the enum.
std::span<const DType> all_dtypes();
// NumPy's names of `dtypes` as a list for messages and help: "float32, float64 or uint8".
std::string dtype_list(std::span<const DType> dtypes);

// The type `text` names: NumPy's name, or a short form people type ("f32", "fp16", "half",
// "float", "double", "bf16", "i64", "u8", …). Throws cohort::input_error naming `text` and
// listing NumPy's names of `accepted` when `text` names none of them.
DType parse_dtype(std::string_view text, std::span<const DType> accepted = all_dtypes());

}  // namespace cohort
