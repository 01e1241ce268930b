#include "checkpoint/crc32c.hpp"

#include <array>
#include <cstring>

namespace cohort::checkpoint {
namespace {

constexpr std::uint32_t kPoly = 0x82F63B78u;  // Castagnoli, bit-reversed

using Tables = std::array<std::array<std::uint32_t, 256>, 8>;

constexpr Tables make_tables() {
  Tables t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    t[0][i] = c;
  }
  for (std::uint32_t i = 0; i < 256; ++i) {
    for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
  }
  return t;
}

constexpr Tables kTables = make_tables();

std::uint32_t crc_table(std::uint32_t c, const unsigned char* p, std::size_t n) {
  while (n >= 8) {
    std::uint64_t word;
    std::memcpy(&word, p, 8);
    word ^= c;
    c = kTables[7][word & 0xFF] ^ kTables[6][(word >> 8) & 0xFF] ^ kTables[5][(word >> 16) & 0xFF] ^
        kTables[4][(word >> 24) & 0xFF] ^ kTables[3][(word >> 32) & 0xFF] ^
        kTables[2][(word >> 40) & 0xFF] ^ kTables[1][(word >> 48) & 0xFF] ^ kTables[0][word >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ kTables[0][(c ^ *p++) & 0xFF];
  return c;
}

// GF(2) matrix helpers, after zlib's crc32_combine: a 32x32 matrix as 32 column vectors.
std::uint32_t gf2_times(const std::uint32_t* mat, std::uint32_t vec) {
  std::uint32_t sum = 0;
  for (int i = 0; vec; vec >>= 1, ++i) {
    if (vec & 1) sum ^= mat[i];
  }
  return sum;
}

void gf2_square(std::uint32_t* square, const std::uint32_t* mat) {
  for (int n = 0; n < 32; ++n) square[n] = gf2_times(mat, mat[n]);
}

// The operator that appends `bytes` zero bytes to a CRC register.
std::array<std::uint32_t, 32> zeros_operator(std::uint64_t bytes) {
  std::array<std::uint32_t, 32> even{}, odd{}, result{};
  odd[0] = kPoly;  // one zero bit
  std::uint32_t row = 1;
  for (int n = 1; n < 32; ++n) {
    odd[n] = row;
    row <<= 1;
  }
  gf2_square(even.data(), odd.data());  // two zero bits
  gf2_square(odd.data(), even.data());  // four zero bits
  for (int n = 0; n < 32; ++n) result[n] = 1u << n;  // identity
  bool first = true;
  do {
    gf2_square(even.data(), odd.data());
    if (bytes & 1) {
      if (first) {
        result = even;
        first = false;
      } else {
        std::array<std::uint32_t, 32> next{};
        for (int n = 0; n < 32; ++n) next[n] = gf2_times(even.data(), result[n]);
        result = next;
      }
    }
    bytes >>= 1;
    if (bytes == 0) break;
    gf2_square(odd.data(), even.data());
    if (bytes & 1) {
      if (first) {
        result = odd;
        first = false;
      } else {
        std::array<std::uint32_t, 32> next{};
        for (int n = 0; n < 32; ++n) next[n] = gf2_times(odd.data(), result[n]);
        result = next;
      }
    }
    bytes >>= 1;
  } while (bytes != 0);
  return result;
}

// Table form of a zeros operator: four lookups shift a register past that many zeros.
struct Shift {
  std::array<std::array<std::uint32_t, 256>, 4> table;
  explicit Shift(std::uint64_t bytes) {
    auto op = zeros_operator(bytes);
    for (int k = 0; k < 4; ++k) {
      for (std::uint32_t b = 0; b < 256; ++b) table[k][b] = gf2_times(op.data(), b << (8 * k));
    }
  }
  std::uint32_t operator()(std::uint32_t c) const {
    return table[0][c & 0xFF] ^ table[1][(c >> 8) & 0xFF] ^ table[2][(c >> 16) & 0xFF] ^ table[3][c >> 24];
  }
};

#if defined(__x86_64__)
// The crc32 instruction has a latency of three cycles and a throughput of one per cycle:
// three independent streams over thirds of a block keep it busy, and the three registers
// are then joined by shifting past the bytes that follow each.
constexpr std::size_t kStride = 8192;

__attribute__((target("sse4.2"))) std::uint32_t crc_hw(std::uint32_t c, const unsigned char* p,
                                                       std::size_t n) {
  static const Shift shift(kStride);
  std::uint64_t c0 = c;
  while (n >= 3 * kStride) {
    std::uint64_t c1 = 0, c2 = 0;
    const unsigned char* end = p + kStride;
    do {
      std::uint64_t w0, w1, w2;
      std::memcpy(&w0, p, 8);
      std::memcpy(&w1, p + kStride, 8);
      std::memcpy(&w2, p + 2 * kStride, 8);
      c0 = __builtin_ia32_crc32di(c0, w0);
      c1 = __builtin_ia32_crc32di(c1, w1);
      c2 = __builtin_ia32_crc32di(c2, w2);
      p += 8;
    } while (p < end);
    c0 = shift(static_cast<std::uint32_t>(c0)) ^ c1;
    c0 = shift(static_cast<std::uint32_t>(c0)) ^ c2;
    p += 2 * kStride;
    n -= 3 * kStride;
  }
  while (n >= 8) {
    std::uint64_t word;
    std::memcpy(&word, p, 8);
    c0 = __builtin_ia32_crc32di(c0, word);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<std::uint32_t>(c0);
  while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}

bool have_hw() {
  static const bool yes = __builtin_cpu_supports("sse4.2");
  return yes;
}
#endif

}  // namespace

std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t size) {
  auto* p = static_cast<const unsigned char*>(data);
  std::uint32_t c = ~crc;
#if defined(__x86_64__)
  if (have_hw()) return ~crc_hw(c, p, size);
#endif
  return ~crc_table(c, p, size);
}

std::uint32_t crc32c_combine(std::uint32_t crc_a, std::uint32_t crc_b, std::uint64_t size_b) {
  if (size_b == 0) return crc_a;
  // crc_a with size_b zero bytes appended, then b's own CRC over them.
  return gf2_times(zeros_operator(size_b).data(), crc_a) ^ crc_b;
}

}  // namespace cohort::checkpoint
