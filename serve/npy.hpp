// serve/npy.hpp — NumPy's .npy format (numpy.lib.format, versions 1.0, 2.0 and 3.0): the
// header that says an array's element type, byte order and shape, read and written.
//
//   NpyHeader h = parse_npy_header(first_bytes, "x.npy");  // h.dtype, h.shape, h.data_offset
//   std::string head = npy_header(DType::float32, {100, 4});  // then the data, packed
//
// Arrays in C order only: a Fortran-order array is refused, naming the file and the fix.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/dtype.hpp"
#include "serve/tensor.hpp"

namespace cohort::serve {

struct NpyHeader {
  DType dtype = DType::float32;
  bool big_endian = false;        // the data's byte order: swap each element when set
  Shape shape;                    // () for a scalar
  std::uint64_t data_offset = 0;  // where the data starts in the file
};

// Bytes of the file's start enough to hold any header this reads: the 10 bytes before a
// header's length, and a header of at most 1 MiB (NumPy writes a few hundred bytes).
inline constexpr std::size_t kNpyMaxPrefix = 12 + (std::size_t{1} << 20);

// Reads the header at the start of `bytes` (the file's first bytes, all of it when shorter
// than kNpyMaxPrefix). Throws an input error naming `source` for anything that is not a
// C-order .npy of a type cohort holds (bool, int8..int64, uint8..uint64, float16..float64).
NpyHeader parse_npy_header(std::string_view bytes, const std::string& source);

// The header of a little-endian, C-order array: version 1.0 unless the header needs 2.0,
// padded so that the data starts at a multiple of 64 bytes, as NumPy writes it.
std::string npy_header(DType dtype, const Shape& shape);

// Reverses the bytes of each element of `size` bytes in place.
void swap_bytes(std::byte* data, std::size_t bytes, std::size_t size);

}  // namespace cohort::serve
