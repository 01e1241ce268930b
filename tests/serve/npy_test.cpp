// NumPy's .npy header, read and written, without a model: every version, both byte orders,
// and the headers cohort refuses. NumPy itself reads and writes cohort's files in
// predict_test.py.
#include <gtest/gtest.h>

#include <string>

#include "common/error.hpp"
#include "serve/npy.hpp"

namespace cohort::serve {
namespace {

// A header as NumPy lays it out: magic, version, length (2 bytes in 1.0, 4 after), dict.
std::string header(int major, const std::string& dict) {
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  const std::size_t length = dict.size() + 1;
  for (int i = 0; i < (major == 1 ? 2 : 4); ++i) out += static_cast<char>((length >> (8 * i)) & 0xff);
  return out + dict + "\n";
}

std::string refusal(const std::string& bytes) {
  try {
    parse_npy_header(bytes, "x.npy");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    return e.what();
  }
  return "accepted";
}

TEST(Npy, WrittenHeaderReadsBackAlignedTo64Bytes) {
  for (const Shape& shape : {Shape{}, Shape{7}, Shape{1000, 4}, Shape{2, 3, 5}}) {
    const std::string h = npy_header(DType::float32, shape);
    EXPECT_EQ(h.size() % 64, 0u);
    const NpyHeader read = parse_npy_header(h, "x.npy");
    EXPECT_EQ(read.dtype, DType::float32);
    EXPECT_FALSE(read.big_endian);
    EXPECT_EQ(read.shape, shape);
    EXPECT_EQ(read.data_offset, h.size());
  }
  EXPECT_NE(npy_header(DType::int64, {3}).find("'shape': (3,)"), std::string::npos);
  EXPECT_NE(npy_header(DType::bool8, {3}).find("'descr': '|b1'"), std::string::npos);
}

TEST(Npy, ReadsVersionsOneTwoAndThree) {
  const std::string dict = "{'descr': '<i8', 'fortran_order': False, 'shape': (3, 2), }";
  for (int major : {1, 2, 3}) {
    const NpyHeader h = parse_npy_header(header(major, dict), "x.npy");
    EXPECT_EQ(h.dtype, DType::int64);
    EXPECT_EQ(h.shape, (Shape{3, 2}));
    EXPECT_EQ(h.data_offset, (major == 1 ? 10u : 12u) + dict.size() + 1);
  }
}

TEST(Npy, BigEndianIsMarkedForSwappingAndSingleBytesNever) {
  auto h = parse_npy_header(header(1, "{'descr': '>f8', 'fortran_order': False, 'shape': (4,), }"), "x.npy");
  EXPECT_EQ(h.dtype, DType::float64);
  EXPECT_TRUE(h.big_endian);
  h = parse_npy_header(header(1, "{\"descr\": \"|u1\", \"fortran_order\": False, \"shape\": (4L,)}"), "x.npy");
  EXPECT_EQ(h.dtype, DType::uint8);
  EXPECT_FALSE(h.big_endian);
  std::byte data[4] = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
  swap_bytes(data, 4, 2);
  EXPECT_EQ(data[0], std::byte{2});
  EXPECT_EQ(data[3], std::byte{3});
}

TEST(Npy, RefusesWhatItCannotReadNamingTheFileAndTheFix) {
  EXPECT_NE(refusal(header(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }")).find("ascontiguousarray"),
            std::string::npos);
  EXPECT_NE(refusal(header(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }")).find("descr '<c8'"),
            std::string::npos);
  EXPECT_NE(refusal(header(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }")).find("x.npy"),
            std::string::npos);
  EXPECT_NE(refusal(header(1, "{'descr': '<f4', 'shape': (3,), }")).find("lacks"), std::string::npos);
  EXPECT_NE(refusal(header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}")).find("key 'x'"),
            std::string::npos);
  EXPECT_NE(refusal(header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-3,), }")).find("shape"),
            std::string::npos);
  EXPECT_NE(refusal("PK\x03\x04 a zip file").find("not a .npy file"), std::string::npos);
  EXPECT_NE(refusal(header(4, "{}")).find("version 4.0"), std::string::npos);
  EXPECT_NE(refusal(header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }").substr(0, 30)).find("cut short"),
            std::string::npos);
}

}  // namespace
}  // namespace cohort::serve
