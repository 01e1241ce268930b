// serve/tensor.hpp — tensors as the Open Inference Protocol (KServe V2) names them, held in
// cohort's element types.
//
//   DType t = cohort::serve::parse_datatype("FP32");  // DType::float32
//   cohort::serve::datatype_name(DType::int64);        // "INT64"
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/dtype.hpp"

namespace cohort::serve {

// The V2 name of a type: "BOOL", "UINT8", …, "FP16", "BF16", "FP32", "FP64".
std::string_view datatype_name(DType dtype);
// The type a V2 name gives; nothing for a name V2 does not have, or one cohort cannot hold
// (BYTES).
std::optional<DType> find_datatype(std::string_view name);
// As find_datatype, throwing an input error "WHERE: datatype 'X' is not one of BOOL, …".
DType parse_datatype(std::string_view name, const std::string& where);

using Shape = std::vector<std::int64_t>;

// Elements in a shape (1 for a scalar); throws an input error for a negative dimension or
// a count past 2^40.
std::int64_t element_count(const Shape& shape);
// "[2, 3]".
std::string shape_text(const Shape& shape);

// A named tensor, its elements packed little-endian in row-major order.
struct Tensor {
  std::string name;
  DType dtype = DType::float32;
  Shape shape;
  std::vector<std::byte> data;
};

// What a model declares of one input or output. A dimension of -1 is variable. With
// batching, `dims` leave out the batch dimension, as Triton's config.pbtxt does.
struct TensorSpec {
  std::string name;
  DType dtype = DType::float32;
  Shape dims;
  bool any_shape = false;  // nothing is known of the shape (a model file served without a config)
};

// Whether `shape` is one `spec` allows, with a leading batch dimension of 1..max_batch
// when max_batch > 0; why not otherwise.
std::optional<std::string> shape_mismatch(const TensorSpec& spec, const Shape& shape, int max_batch);

// IEEE binary16 and bfloat16 from and to float, rounding to nearest even.
std::uint16_t to_half(float value);
float from_half(std::uint16_t bits);
std::uint16_t to_bfloat16(float value);
float from_bfloat16(std::uint16_t bits);

}  // namespace cohort::serve
