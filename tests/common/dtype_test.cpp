// common/dtype: one element-type vocabulary, NumPy's names.
#include "common/dtype.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "common/error.hpp"

namespace cohort {
namespace {

TEST(DType, EveryTypeReadsBackFromItsNumpyName) {
  for (DType d : all_dtypes()) EXPECT_EQ(parse_dtype(to_string(d)), d) << to_string(d);
  EXPECT_EQ(all_dtypes().size(), 13u);
}

TEST(DType, NamesAndSizesAreNumpys) {
  const std::vector<std::pair<DType, std::pair<std::string, std::size_t>>> expected{
      {DType::float16, {"float16", 2}}, {DType::bfloat16, {"bfloat16", 2}}, {DType::float32, {"float32", 4}},
      {DType::float64, {"float64", 8}}, {DType::int8, {"int8", 1}},         {DType::int16, {"int16", 2}},
      {DType::int32, {"int32", 4}},     {DType::int64, {"int64", 8}},       {DType::uint8, {"uint8", 1}},
      {DType::uint16, {"uint16", 2}},   {DType::uint32, {"uint32", 4}},     {DType::uint64, {"uint64", 8}},
      {DType::bool8, {"bool", 1}},
  };
  for (const auto& [d, name_size] : expected) {
    EXPECT_EQ(to_string(d), name_size.first);
    EXPECT_EQ(size_of(d), name_size.second) << name_size.first;
  }
}

// The spellings `cohort bench collectives --dtype` has always taken.
TEST(DType, ShortFormsPeopleTypeAreAccepted) {
  const std::vector<std::pair<std::string, DType>> spellings{
      {"f32", DType::float32},  {"fp32", DType::float32},  {"float", DType::float32},    {"f64", DType::float64},
      {"fp64", DType::float64}, {"double", DType::float64}, {"f16", DType::float16},    {"fp16", DType::float16},
      {"half", DType::float16}, {"bf16", DType::bfloat16}, {"bfloat16", DType::bfloat16}, {"i32", DType::int32},
      {"int32", DType::int32},  {"i64", DType::int64},     {"int64", DType::int64},     {"u8", DType::uint8},
      {"uint8", DType::uint8},  {"bool", DType::bool8},
  };
  for (const auto& [text, d] : spellings) EXPECT_EQ(parse_dtype(text), d) << text;
}

TEST(DType, AnUnknownNameIsAnInputErrorNamingItAndListingTheChoices) {
  for (const char* text : {"float8", "", "Float32", "bool8"}) {
    try {
      parse_dtype(text);
      ADD_FAILURE() << text;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::input);
      EXPECT_EQ(std::string(e.what()), "unknown dtype '" + std::string(text) +
                                           "' (use float16, bfloat16, float32, float64, int8, int16, int32, int64, "
                                           "uint8, uint16, uint32, uint64 or bool)");
    }
  }
}

TEST(DType, ATypeOutsideTheAcceptedOnesIsAnInputErrorListingThem) {
  const DType floats[] = {DType::float32, DType::float64};
  EXPECT_EQ(parse_dtype("double", floats), DType::float64);
  try {
    parse_dtype("i8", floats);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    EXPECT_EQ(std::string(e.what()), "dtype 'i8' is not accepted here (use float32 or float64)");
  }
  EXPECT_EQ(dtype_list(floats), "float32 or float64");
  EXPECT_EQ(dtype_list({}), "");
}

}  // namespace
}  // namespace cohort
