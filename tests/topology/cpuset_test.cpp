// CpuSet and index lists: the list syntax Linux, Slurm and COHORT_CPUS use.
#include <gtest/gtest.h>

#include "common/error.hpp"
#include "topology/topology.hpp"

namespace cohort::topology {
namespace {

TEST(CpuSet, FormatsAscendingWithRangesCollapsed) {
  EXPECT_EQ((CpuSet{8, 0, 1, 2, 3}).to_string(), "0-3,8");
  EXPECT_EQ((CpuSet{5}).to_string(), "5");
  EXPECT_EQ((CpuSet{1, 3, 5}).to_string(), "1,3,5");
  EXPECT_EQ(CpuSet{}.to_string(), "");
  EXPECT_EQ(CpuSet::range(62, 66).to_string(), "62-66");
}

TEST(CpuSet, ParsesWhatItFormats) {
  for (const char* text : {"0-3,8", "0", "", "1,3,5", "0-127", "63-64,200-201"}) {
    EXPECT_EQ(CpuSet::parse(text).to_string(), text);
  }
  EXPECT_EQ(CpuSet::parse("8,0-3,2").to_string(), "0-3,8");
}

TEST(CpuSet, MalformedListsAreInputErrorsNamingTheInput) {
  for (const char* text : {"0-x", "3-1", ",", "1,,2", "-1", "a", "1-", "99999999"}) {
    try {
      CpuSet::parse(text, std::string("--cpus ") + text);
      ADD_FAILURE() << "accepted '" << text << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::input) << text;
      EXPECT_EQ(std::string(e.what()).rfind(std::string("--cpus ") + text + ": ", 0), 0u) << e.what();
    }
  }
}

TEST(CpuSet, BackwardsRangeSaysHowToWriteIt) {
  try {
    CpuSet::parse("7-4", "--cpus 7-4");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "--cpus 7-4: range 7-4 runs backwards (write 4-7)");
  }
}

TEST(CpuSet, SetOperationsWorkAcrossWordBoundaries) {
  CpuSet a{0, 63, 64, 130};
  CpuSet b{63, 64, 65};
  EXPECT_EQ((a & b).to_string(), "63-64");
  EXPECT_EQ((a | b).to_string(), "0,63-65,130");
  EXPECT_EQ((a - b).to_string(), "0,130");
  EXPECT_TRUE(a.intersects(b));
  EXPECT_FALSE((a - b).intersects(b));
  EXPECT_TRUE((a & b).is_subset_of(a));
  EXPECT_FALSE(a.is_subset_of(b));
  EXPECT_EQ(a.count(), 4);
  EXPECT_EQ(a.first(), 0);
  EXPECT_EQ(CpuSet{}.first(), -1);
  EXPECT_TRUE(a.contains(130));
  EXPECT_FALSE(a.contains(129));
  EXPECT_FALSE(a.contains(-1));
}

TEST(CpuSet, EqualityIgnoresHowTheSetWasBuilt) {
  CpuSet grown{1, 200};
  grown.erase(200);
  EXPECT_EQ(grown, CpuSet{1});
  EXPECT_EQ(CpuSet{200} - CpuSet{200}, CpuSet{});
  EXPECT_TRUE((CpuSet{200} & CpuSet{1}).empty());
}

TEST(IndexList, ParsesToAscendingDistinctIndices) {
  EXPECT_EQ(parse_index_list("3,1-2,2", "--gpus"), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(parse_index_list("", "--gpus"), std::vector<int>{});
  EXPECT_EQ(format_index_list({0, 1, 2, 3, 6}), "0-3,6");
  EXPECT_THROW(parse_index_list("0,x", "--gpus 0,x"), Error);
}

}  // namespace
TEST(IndexList, ManyLongRangesAreRefusedBeforeAnyIsExpanded) {
  // A 2 KB value that would name 2^20 indices a hundred times over (a GPU list a user can
  // export into a step): refused, not expanded into gigabytes.
  std::string list = "0-1048576";
  while (list.size() < 2048) list += ",0-1048576";
  for (auto parse : {+[](const std::string& l) { parse_index_list(l, "SLURM_STEP_GPUS"); },
                     +[](const std::string& l) { CpuSet::parse(l, "--cpus"); }}) {
    try {
      parse(list);
      ADD_FAILURE() << "a list naming 2^20 indices many times over was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::input);
      EXPECT_NE(std::string(e.what()).find("names more than 1048577 indices"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(parse_index_list("0-1048576", "one long range").size(), 1048577u);
}

}  // namespace cohort::topology
