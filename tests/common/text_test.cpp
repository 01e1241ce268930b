// Lists and sizes as people type them, lines out of streamed output, small files read whole,
// and the environment.
#include "common/text.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "common/environment.hpp"
#include "common/error.hpp"
#include "tests/common/temp_dir.hpp"

namespace cohort {
namespace {

TEST(Text, JoinPutsTheSeparatorBetweenFormattedItems) {
  EXPECT_EQ(join(std::vector<int>{0, 2, 3}, ",", [](int i) { return std::to_string(i); }), "0,2,3");
  EXPECT_EQ(join(std::vector<std::string>{"mlx5_0", "mlx5_1"}, ","), "mlx5_0,mlx5_1");
  EXPECT_EQ(join(std::vector<std::string>{}, ","), "");
}

TEST(Text, SplitKeepsEmptyPiecesSoCallersCanRejectThem) {
  EXPECT_TRUE(split("", ',').empty());
  EXPECT_EQ(split("a", ','), (std::vector<std::string_view>{"a"}));
  EXPECT_EQ(split("a,,b", ','), (std::vector<std::string_view>{"a", "", "b"}));
  EXPECT_EQ(split("a,", ','), (std::vector<std::string_view>{"a", ""}));
}

TEST(LineSplitter, HandsOverWholeLinesHoweverTheOutputArrives) {
  const std::string text = "alpha\nbeta\n\ngamma";
  // Every way of cutting the text into two pieces gives the same lines.
  for (std::size_t cut = 0; cut <= text.size(); ++cut) {
    LineSplitter lines;
    std::vector<std::string> got;
    auto take = [&](std::string_view line) { got.emplace_back(line); };
    lines.feed(std::string_view(text).substr(0, cut), take);
    lines.feed(std::string_view(text).substr(cut), take);
    EXPECT_EQ(got, (std::vector<std::string>{"alpha", "beta", ""})) << "cut at " << cut;
    lines.finish(take);
    EXPECT_EQ(got.back(), "gamma") << "the last line lacks its newline";
    lines.finish(take);
    EXPECT_EQ(got.size(), 4u) << "finish hands the last line over once";
  }
}

TEST(Text, LowerTakesAsciiLettersToLowerCase) {
  EXPECT_EQ(lower("PyTorchJob"), "pytorchjob");
  EXPECT_EQ(lower("MedianStop-2"), "medianstop-2");
  EXPECT_EQ(lower(""), "");
}

TEST(Environment, EnvOrTakesAnEmptyVariableAsNotGiven) {
  ::setenv("COHORT_ENV_OR_PROBE", "value", 1);
  EXPECT_EQ(env_or("COHORT_ENV_OR_PROBE", "fallback"), "value");
  ::setenv("COHORT_ENV_OR_PROBE", "", 1);
  EXPECT_EQ(env_or("COHORT_ENV_OR_PROBE", "fallback"), "fallback");
  ::unsetenv("COHORT_ENV_OR_PROBE");
  EXPECT_EQ(env_or("COHORT_ENV_OR_PROBE", "fallback"), "fallback");
  EXPECT_EQ(env_or("COHORT_ENV_OR_PROBE"), "");
}

TEST(Environment, HostNameIsGethostnames) {
  char name[256] = {};
  ASSERT_EQ(::gethostname(name, sizeof name - 1), 0);
  EXPECT_EQ(host_name(), name);
}

TEST(Text, ByteSizesTakeBinaryMultiplesInTheUsualSpellings) {
  EXPECT_EQ(parse_byte_size("65536"), 65536u);
  EXPECT_EQ(parse_byte_size("8B"), 8u);
  for (const char* k : {"64K", "64KB", "64KiB"}) EXPECT_EQ(parse_byte_size(k), 64u << 10) << k;
  EXPECT_EQ(parse_byte_size("4M"), 4u << 20);
  EXPECT_EQ(parse_byte_size("1GiB"), 1u << 30);
  EXPECT_EQ(parse_byte_size("0"), 0u);
}

TEST(Text, AnythingElseIsNotAByteSize) {
  for (const char* bad : {"", "-1", "+4", "K", "4T", "4 M", "4m", "4MiBs", "4iB", "1.5G", "18446744073709551616",
                          "17179869184G"}) {
    EXPECT_FALSE(parse_byte_size(bad)) << bad;
  }
}

TEST(Text, IntegersAreDecimalAndWithinTheirRange) {
  EXPECT_EQ(parse_integer("42", 1, 100), 42);
  EXPECT_EQ(parse_integer("-3", -5, 5), -3);
  for (const char* bad : {"", "-", "abc", "4x", " 4", "+4", "1e3", "101", "0", "9999999999999999999"}) {
    EXPECT_FALSE(parse_integer(bad, 1, 100)) << bad;
  }
}

}  // namespace
}  // namespace cohort
