#include "serve/npy.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <optional>
#include <tuple>
#include <utility>

#include "common/error.hpp"
#include "common/text.hpp"

namespace cohort::serve {
namespace {

constexpr std::string_view kMagic = "\x93NUMPY";
constexpr std::size_t kAlign = 64;

// NumPy's type codes: kind letter and size after the byte-order mark ('<' '>' '|' '=').
constexpr std::array<std::pair<std::string_view, DType>, 12> kCodes{{
    {"b1", DType::bool8}, {"i1", DType::int8}, {"i2", DType::int16}, {"i4", DType::int32}, {"i8", DType::int64},
    {"u1", DType::uint8}, {"u2", DType::uint16}, {"u4", DType::uint32}, {"u8", DType::uint64},
    {"f2", DType::float16}, {"f4", DType::float32}, {"f8", DType::float64},
}};

// The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }.
// Only what NumPy writes there is read: quoted strings, True/False and tuples of integers.
class DictReader {
 public:
  DictReader(std::string_view text, const std::string& source) : text_(text), source_(source) {}

  NpyHeader read() {
    NpyHeader h;
    bool has_descr = false, has_order = false, has_shape = false;
    expect('{');
    while (!peek('}')) {
      const std::string key = quoted();
      expect(':');
      if (key == "descr") {
        std::tie(h.dtype, h.big_endian) = descr(quoted());
        has_descr = true;
      } else if (key == "fortran_order") {
        if (word() == "True") {
          fail("fortran_order is True: cohort reads arrays in C order; save numpy.ascontiguousarray(a) instead");
        }
        has_order = true;
      } else if (key == "shape") {
        h.shape = tuple();
        has_shape = true;
      } else {
        fail("key '" + key + "' is not one of descr, fortran_order, shape");
      }
      if (!peek('}')) expect(',');
    }
    expect('}');
    skip_space();
    if (at_ != text_.size()) fail("text after the closing brace");
    if (!has_descr || !has_order || !has_shape) fail("lacks one of descr, fortran_order, shape");
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    std::string_view shown = text_.substr(0, 120);
    while (!shown.empty() && (shown.back() == ' ' || shown.back() == '\n')) shown.remove_suffix(1);
    throw input_error(source_ + ": .npy header: " + why + " (header: " + std::string(shown) + ")");
  }
  void skip_space() {
    while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\n' || text_[at_] == '\t')) ++at_;
  }
  bool peek(char c) {
    skip_space();
    return at_ < text_.size() && text_[at_] == c;
  }
  void expect(char c) {
    if (!peek(c)) fail(std::string("expected '") + c + "' at offset " + std::to_string(at_));
    ++at_;
  }
  std::string quoted() {
    skip_space();
    if (at_ >= text_.size() || (text_[at_] != '\'' && text_[at_] != '"')) {
      fail("expected a quoted string at offset " + std::to_string(at_));
    }
    const char quote = text_[at_++];
    const auto end = text_.find(quote, at_);
    if (end == std::string_view::npos) fail("a string is not closed");
    std::string out(text_.substr(at_, end - at_));
    at_ = end + 1;
    return out;
  }
  std::string word() {
    skip_space();
    const auto start = at_;
    while (at_ < text_.size() && std::isalnum(static_cast<unsigned char>(text_[at_]))) ++at_;
    return std::string(text_.substr(start, at_ - start));
  }
  Shape tuple() {
    expect('(');
    Shape shape;
    while (!peek(')')) {
      std::string digits = word();
      if (!digits.empty() && digits.back() == 'L') digits.pop_back();  // Python 2's long
      const auto dim = parse_integer(digits, 0, std::int64_t{1} << 40);
      if (!dim) fail("shape: '" + digits + "' is not a dimension");
      shape.push_back(*dim);
      if (!peek(')')) expect(',');
    }
    expect(')');
    return shape;
  }
  std::pair<DType, bool> descr(const std::string& d) const {
    if (d.size() == 3 && (d[0] == '<' || d[0] == '>' || d[0] == '|' || d[0] == '=')) {
      for (const auto& [code, dtype] : kCodes) {
        if (d.substr(1) == code) return {dtype, d[0] == '>' && size_of(dtype) > 1};
      }
    }
    fail("descr '" + d + "' is not a type cohort reads (bool, int8..int64, uint8..uint64, float16..float64); "
         "convert the array, e.g. a.astype('float32')");
  }

  std::string_view text_;
  const std::string& source_;
  std::size_t at_ = 0;
};

std::uint32_t little_endian(std::string_view bytes) {
  std::uint32_t v = 0;
  for (std::size_t i = bytes.size(); i-- > 0;) v = (v << 8) | static_cast<unsigned char>(bytes[i]);
  return v;
}

}  // namespace

NpyHeader parse_npy_header(std::string_view bytes, const std::string& source) {
  if (!bytes.starts_with(kMagic) || bytes.size() < 10) {
    throw input_error(source + ": not a .npy file (it does not start with NumPy's magic \\x93NUMPY); "
                      "write one with numpy.save");
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  const int minor = static_cast<unsigned char>(bytes[7]);
  if (major < 1 || major > 3 || minor != 0) {
    throw input_error(source + ": .npy version " + std::to_string(major) + "." + std::to_string(minor) +
                      " is not one of 1.0, 2.0, 3.0");
  }
  const std::size_t length_bytes = major == 1 ? 2 : 4;
  if (bytes.size() < 8 + length_bytes) throw input_error(source + ": .npy header is cut short");
  const std::uint64_t length = little_endian(bytes.substr(8, length_bytes));
  const std::uint64_t offset = 8 + length_bytes + length;
  if (offset > kNpyMaxPrefix) throw input_error(source + ": .npy header of " + std::to_string(length) + " bytes is too long");
  if (offset > bytes.size()) throw input_error(source + ": .npy header is cut short (the file ends inside it)");
  NpyHeader h = DictReader(bytes.substr(8 + length_bytes, length), source).read();
  h.data_offset = offset;
  return h;
}

std::string npy_header(DType dtype, const Shape& shape) {
  std::string code;
  for (const auto& [c, d] : kCodes) {
    if (d == dtype) code = (size_of(d) == 1 ? "|" : "<") + std::string(c);
  }
  if (code.empty()) throw input_error(std::string(to_string(dtype)) + " has no .npy type; write HDF5 instead");
  // Python's tuples: (), (3,), (3, 4).
  std::string dims = join(shape, ", ", [](std::int64_t d) { return std::to_string(d); });
  if (shape.size() == 1) dims += ",";
  std::string dict = "{'descr': '" + code + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  const bool v1 = 10 + dict.size() + kAlign <= 65535;
  const std::size_t prefix = v1 ? 10 : 12;
  dict.append((kAlign - (prefix + dict.size() + 1) % kAlign) % kAlign, ' ');
  dict += '\n';
  std::string out(kMagic);
  out += static_cast<char>(v1 ? 1 : 2);
  out += '\0';
  for (std::size_t i = 0; i < prefix - 8; ++i) out += static_cast<char>((dict.size() >> (8 * i)) & 0xff);
  return out + dict;
}

void swap_bytes(std::byte* data, std::size_t bytes, std::size_t size) {
  if (size < 2) return;
  for (std::size_t at = 0; at + size <= bytes; at += size) std::reverse(data + at, data + at + size);
}

}  // namespace cohort::serve
