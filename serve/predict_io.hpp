// serve/predict_io.hpp — private to serve/: the arrays batch prediction reads and writes,
// an HDF5 dataset or a .npy file, row by row.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "serve/tensor.hpp"

namespace cohort::serve::detail {

namespace fs = std::filesystem;

// An array whose first dimension counts rows.
struct ArrayInfo {
  DType dtype = DType::float32;
  Shape shape;  // rows first
  std::int64_t rows() const { return shape.empty() ? 0 : shape[0]; }
  // Bytes of one row.
  std::size_t row_bytes() const;
};

class InputArray {
 public:
  virtual ~InputArray() = default;
  const ArrayInfo& info() const { return info_; }
  // "in.h5:/features" or "in.npy", for messages.
  const std::string& name() const { return name_; }
  // The dataset's path in an HDF5 file ("/features"); empty for a .npy file.
  const std::string& dataset() const { return dataset_; }
  // Rows [first, first + count) into `out`, packed little-endian in C order.
  virtual void read_rows(std::int64_t first, std::int64_t count, std::byte* out) = 0;

 protected:
  ArrayInfo info_;
  std::string name_;
  std::string dataset_;
};

// `file` ending in .npy is read as NumPy's format, anything else as HDF5: `dataset` names
// the dataset, or, empty, the file must hold exactly one. Input errors name the file and
// what to give instead.
std::unique_ptr<InputArray> open_input(const fs::path& file, const std::string& dataset);

// An array written whole or not at all: appended row after row, it appears at its path on
// commit(); dropped before, it leaves nothing behind.
class OutputArray {
 public:
  virtual ~OutputArray() = default;
  virtual void append(const std::byte* data, std::int64_t rows) = 0;
  virtual void commit() = 0;
};

// `file` ending in .npy is written as NumPy's format, anything else as an HDF5 file of the
// one dataset `dataset` (groups in its path are created).
std::unique_ptr<OutputArray> create_output(const fs::path& file, const std::string& dataset, const ArrayInfo& info);

bool is_npy(const fs::path& file);

}  // namespace cohort::serve::detail
