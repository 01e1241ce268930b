#include "checkpoint/crc32c.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace cohort::checkpoint {
namespace {

// Bit by bit, straight from the definition, to check the fast paths against.
std::uint32_t reference(const unsigned char* p, size_t n) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return ~c;
}

TEST(Crc32c, MatchesTheStandardCheckValue) {
  const std::string check = "123456789";
  EXPECT_EQ(crc32c(0, check.data(), check.size()), 0xE3069283u);
  EXPECT_EQ(crc32c(0, nullptr, 0), 0u);
}

TEST(Crc32c, AgreesWithTheDefinitionAtEveryLengthAndAlignment) {
  std::mt19937 gen(7);
  std::vector<unsigned char> data(300);
  for (auto& b : data) b = static_cast<unsigned char>(gen());
  for (size_t start = 0; start < 9; ++start) {
    for (size_t n = 0; n + start <= data.size(); n += 7) {
      EXPECT_EQ(crc32c(0, data.data() + start, n), reference(data.data() + start, n)) << start << " " << n;
    }
  }
}

TEST(Crc32c, LongBuffersTakingTheInterleavedPathAgreeWithTheDefinition) {
  std::vector<unsigned char> data(200000);
  std::mt19937 gen(3);
  for (auto& b : data) b = static_cast<unsigned char>(gen());
  for (size_t start : {size_t{0}, size_t{3}}) {
    for (size_t n : {size_t{24575}, size_t{24576}, size_t{24577}, size_t{3 * 24576 + 13}, data.size() - start}) {
      EXPECT_EQ(crc32c(0, data.data() + start, n), reference(data.data() + start, n)) << start << " " << n;
    }
  }
}

TEST(Crc32c, ExtendingInPiecesEqualsOneCall) {
  std::string text = "the quick brown fox jumps over the lazy dog";
  std::uint32_t crc = crc32c(0, text.data(), 10);
  crc = crc32c(crc, text.data() + 10, text.size() - 10);
  EXPECT_EQ(crc, crc32c(0, text.data(), text.size()));
}

TEST(Crc32c, CombiningPartsEqualsTheWhole) {
  std::vector<unsigned char> data(100000);
  std::mt19937 gen(11);
  for (auto& b : data) b = static_cast<unsigned char>(gen());
  const std::uint32_t whole = crc32c(0, data.data(), data.size());
  for (size_t cut : {size_t{0}, size_t{1}, size_t{8}, size_t{4097}, size_t{99999}, data.size()}) {
    std::uint32_t a = crc32c(0, data.data(), cut);
    std::uint32_t b = crc32c(0, data.data() + cut, data.size() - cut);
    EXPECT_EQ(crc32c_combine(a, b, data.size() - cut), whole) << cut;
  }
  // Three parts, as three ranks' shards.
  std::uint32_t c = 0;
  for (size_t at : {size_t{0}, size_t{30000}, size_t{70000}}) {
    size_t end = at == 70000 ? data.size() : (at == 0 ? 30000 : 70000);
    c = crc32c_combine(c, crc32c(0, data.data() + at, end - at), end - at);
  }
  EXPECT_EQ(c, whole);
}

}  // namespace
}  // namespace cohort::checkpoint
