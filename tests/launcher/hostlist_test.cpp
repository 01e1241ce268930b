#include "launcher/hostlist.hpp"

#include <gtest/gtest.h>

#include "common/error.hpp"

namespace cohort::launcher {
namespace {

using Hosts = std::vector<std::string>;

TEST(Hostlist, ExpandsRangesAndListsInOrder) {
  EXPECT_EQ(expand_hostlist("n[1-3,7]"), (Hosts{"n1", "n2", "n3", "n7"}));
  EXPECT_EQ(expand_hostlist("a,b"), (Hosts{"a", "b"}));
  EXPECT_EQ(expand_hostlist("node1"), (Hosts{"node1"}));
  EXPECT_EQ(expand_hostlist(""), Hosts{});
}

TEST(Hostlist, KeepsZeroPadding) {
  EXPECT_EQ(expand_hostlist("gpu-[08-10]"), (Hosts{"gpu-08", "gpu-09", "gpu-10"}));
  EXPECT_EQ(expand_hostlist("n[1-3,7],gpu-[01-02]"), (Hosts{"n1", "n2", "n3", "n7", "gpu-01", "gpu-02"}));
}

TEST(Hostlist, SeveralBracketGroupsMultiply) {
  EXPECT_EQ(expand_hostlist("r[1-2]n[1-2]"), (Hosts{"r1n1", "r1n2", "r2n1", "r2n2"}));
  EXPECT_EQ(expand_hostlist("r[1-2]-ib"), (Hosts{"r1-ib", "r2-ib"}));
}

TEST(Hostlist, MalformedExpressionsAreInputErrorsNamingThem) {
  for (const char* bad : {"n[1-3", "n1-3]", "n[3-1]", "n[a-b]", "n[[1]]", "a,,b", "n[1-99999999]"}) {
    try {
      expand_hostlist(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::input);
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

TEST(Hostlist, CompressIsTheInverseOfExpand) {
  EXPECT_EQ(compress_hostlist({"n1", "n2", "n3", "n7"}), "n[1-3,7]");
  EXPECT_EQ(compress_hostlist({"gpu-08", "gpu-09", "gpu-10"}), "gpu-[08-10]");
  EXPECT_EQ(compress_hostlist({"login", "n1"}), "login,n1");
  EXPECT_EQ(compress_hostlist({}), "");
  for (const char* e : {"n[1-3,7],gpu-[01-04]", "a,b[1-2],c"}) {
    EXPECT_EQ(expand_hostlist(compress_hostlist(expand_hostlist(e))), expand_hostlist(e)) << e;
  }
}

TEST(TasksPerNode, ExpandsSlurmRepeatSyntax) {
  EXPECT_EQ(expand_tasks_per_node("2(x3),1"), (std::vector<int>{2, 2, 2, 1}));
  EXPECT_EQ(expand_tasks_per_node("4"), (std::vector<int>{4}));
  EXPECT_THROW(expand_tasks_per_node("2(x3"), Error);
  EXPECT_THROW(expand_tasks_per_node("two"), Error);
}

}  // namespace
}  // namespace cohort::launcher
