#include "common/json.hpp"

#include <gtest/gtest.h>

#include <limits>

#include "common/error.hpp"

namespace cohort::json {
namespace {

std::string error_of(std::string_view text) {
  try {
    parse(text, "doc.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Json, RoundTripsEveryTypeAndKeepsKeyOrder) {
  Value v = Value::object();
  v.set("zeta", 1);
  v.set("alpha", Array{Value(true), Value(nullptr), Value(2.5), Value("x")});
  v.set("nested", Object{{"k", Value(-7)}});
  std::string text = write(v);
  EXPECT_EQ(text, R"({"zeta":1,"alpha":[true,null,2.5,"x"],"nested":{"k":-7}})");
  EXPECT_EQ(parse(text), v);
  EXPECT_EQ(parse(write(v, 2)), v);
}

TEST(Json, IntegersStayExactAtTheLimitsOfInt64) {
  auto max = std::numeric_limits<std::int64_t>::max();
  auto min = std::numeric_limits<std::int64_t>::min();
  Value v = parse("[" + std::to_string(max) + "," + std::to_string(min) + "]");
  EXPECT_EQ(v.as_array()[0].as_int(), max);
  EXPECT_EQ(v.as_array()[1].as_int(), min);
  EXPECT_TRUE(parse("1e3").as_int() == 1000);
  EXPECT_FALSE(parse("1.0").is_int());
}

TEST(Json, DoublesReadBackBitForBit) {
  for (double d : {0.1, 1.0 / 3.0, 1e-300, 6.02214076e23, -0.0}) {
    EXPECT_EQ(parse(write(Value(d))).as_double(), d);
    EXPECT_FALSE(parse(write(Value(d))).is_int());
  }
}

TEST(Json, StringsEscapeAndUnescapeIncludingSurrogatePairs) {
  std::string s = "quote\" backslash\\ newline\n tab\t bell\x07 é";
  EXPECT_EQ(parse(write(Value(s))).as_string(), s);
  EXPECT_EQ(parse(R"("\u00e9\ud83d\ude00\/")").as_string(), "é\xF0\x9F\x98\x80/");
  const std::string nul("a\0b", 3);
  EXPECT_EQ(write(Value(nul)), R"("a\u0000b")");
  EXPECT_EQ(parse(write(Value(nul))).as_string(), nul);
}

TEST(Json, ErrorsNameTheSourceLineAndColumn) {
  EXPECT_EQ(error_of("{\n  \"a\": 1,\n}"), "doc.json:3:1: expected a string as object key");
  EXPECT_EQ(error_of("[1 2]"), "doc.json:1:4: expected ',' or ']' in array");
  EXPECT_EQ(error_of("{\"a\":1,\"a\":2}"), "doc.json:1:11: duplicate key \"a\"");
  EXPECT_NE(error_of("\"abc"), "");
  EXPECT_NE(error_of("01"), "");
  EXPECT_NE(error_of("NaN"), "");
  EXPECT_NE(error_of("[1,]"), "");
  EXPECT_NE(error_of("\"\\ud800\""), "");
  EXPECT_NE(error_of("\"\\udc00\""), "");
  EXPECT_NE(error_of("[\"\\ud800\\u0041\"]"), "");
  EXPECT_NE(error_of(std::string("1\0 2", 4)), "");
  EXPECT_NE(error_of(std::string("\"a\0b\"", 5)), "");
  EXPECT_NE(error_of("1 2"), "");
  EXPECT_NE(error_of(std::string(1000, '[')), "");
}

// An object's keys are checked for duplicates in linear time: 400 000 keys read within the
// test's time bound (they took minutes when each key was compared with all before it).
TEST(Json, AnObjectOfManyKeysIsReadWithinTheTestsBound) {
  std::string text = "{";
  for (int i = 0; i < 400000; ++i) text += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + std::to_string(i);
  text += "}";
  json::Value v = json::parse(text, "big.json");
  ASSERT_EQ(v.as_object().size(), 400000u);
  EXPECT_EQ(v.as_object().back().second.as_int(), 399999);
  EXPECT_NE(error_of(text.substr(0, text.size() - 1) + ",\"k7\":0}").find("duplicate key \"k7\""), std::string::npos);
}

TEST(Json, TypedAccessorsSayWhatWasExpected) {
  Value v = parse(R"({"n":"x"})");
  try {
    v.at("n").as_int();
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "JSON value is string, expected integer");
  }
  EXPECT_THROW(v.at("missing"), Error);
  EXPECT_EQ(v.find("missing"), nullptr);
  EXPECT_THROW(Value{std::numeric_limits<double>::infinity()}, Error);
  EXPECT_THROW(Value{std::numeric_limits<std::uint64_t>::max()}, Error);
}

}  // namespace
}  // namespace cohort::json
