#include "launcher/hostlist.hpp"

#include <gtest/gtest.h>

#include "common/error.hpp"

namespace cohort::launcher {
namespace {

using Hosts = std::vector<std::string>;

void expect_refused_naming_it(const std::string& bad) {
  try {
    expand_hostlist(bad);
    ADD_FAILURE() << bad << " was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
  }
}

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
    expect_refused_naming_it(bad);
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

TEST(Hostlist, ARangeAtTheTopOfUint64EndsAndOnePastItIsAnInputError) {
  EXPECT_EQ(expand_hostlist("n[18446744073709551615-18446744073709551615]"), (Hosts{"n18446744073709551615"}));
  EXPECT_EQ(expand_hostlist("n[18446744073709551614-18446744073709551615]"),
            (Hosts{"n18446744073709551614", "n18446744073709551615"}));
  try {
    expand_hostlist("n[18446744073709551615-18446744073709551616]");
    ADD_FAILURE() << "a bound past 2^64 was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    EXPECT_NE(std::string(e.what()).find("'18446744073709551616' is larger than 18446744073709551615"), std::string::npos)
        << e.what();
  }
}

// Counted before anything is expanded: twenty ranges of a million each (and products of
// bracket groups) are refused at once, naming the limit, rather than after a gigabyte.
TEST(Hostlist, MoreThan65536NamesAreRefusedBeforeTheyAreMade) {
  std::string twenty = "n[0-999999";
  for (int i = 1; i < 20; ++i) twenty += ",0-999999";
  twenty += "]";
  for (const std::string& e : {twenty, std::string("r[0-999]n[0-999]"), std::string("n[1-65537]"),
                               std::string("a[1-40000],b[1-40000]"), std::string("r[0-65535]n[0-1]")}) {
    try {
      expand_hostlist(e);
      ADD_FAILURE() << e << " was accepted";
    } catch (const Error& err) {
      EXPECT_EQ(err.kind(), ErrorKind::input);
      EXPECT_NE(std::string(err.what()).find("expands to more than 65536 names"), std::string::npos) << err.what();
    }
  }
  EXPECT_EQ(expand_hostlist("n[1-65536]").size(), 65536u);
  EXPECT_EQ(expand_hostlist("r[1-256]n[1-256]").size(), 65536u);
}

TEST(Hostlist, CompressKeepsNamesWithLongDigitRunsAndReadsBack) {
  const std::string long_digits = "n" + std::string(30, '9');
  const Hosts hosts{long_digits, long_digits, "m18446744073709551615", "m0", "x" + std::string(25, '0') + "1",
                    "x" + std::string(25, '0') + "2"};
  const std::string compressed = compress_hostlist(hosts);
  EXPECT_EQ(compressed, long_digits + "," + long_digits + ",m[18446744073709551615,0],x[" + std::string(25, '0') + "1-" +
                            std::string(25, '0') + "2]");
  // A number past 2^64 is written as is, and expanding that reads it back whole.
  EXPECT_EQ(expand_hostlist(compress_hostlist({"m18446744073709551615", "m0"})),
            (Hosts{"m18446744073709551615", "m0"}));
  EXPECT_EQ(expand_hostlist(compress_hostlist({hosts[4], hosts[5]})), (Hosts{hosts[4], hosts[5]}));
}

// A range takes its first number's padding when expanded, so only names written with that
// padding join it: n01 then n2 are two items, not the range 01-2 (which reads as n02).
TEST(Hostlist, CompressJoinsARangeOnlyOfNamesItsPaddingWrites) {
  for (const Hosts& hosts : {Hosts{"n11", "n01", "n2"}, Hosts{"n9", "n08", "n09", "n10"}, Hosts{"n10", "n09", "n010"}}) {
    EXPECT_EQ(expand_hostlist(compress_hostlist(hosts)), hosts) << compress_hostlist(hosts);
  }
  EXPECT_EQ(compress_hostlist({"n11", "n01", "n2"}), "n[11,01,2]");
}

// Slurm's own answers, which cohort's hostlists must give too: the vectors of Slurm's unit
// tests (testsuite/slurm_unit/common/hostlist), and what libslurm 22.05's
// slurm_hostlist_create and slurm_hostlist_ranged_string answer for the forms Slurm writes
// into SLURM_JOB_NODELIST and its kin.
TEST(HostlistAsSlurm, ExpandsAsSlurmDoes) {
  const std::vector<std::pair<std::string, Hosts>> vectors{
      // Slurm's unit tests
      {"host[1-3],host5", {"host1", "host2", "host3", "host5"}},
      {"two[1-2]", {"two1", "two2"}},
      // libslurm 22.05
      {"gpu-[08-10]", {"gpu-08", "gpu-09", "gpu-10"}},
      {"foo[9-11]", {"foo9", "foo10", "foo11"}},
      {"foo[00-02]", {"foo00", "foo01", "foo02"}},
      {"n[008-10]", {"n008", "n009", "n010"}},
      {"n[01-2]", {"n01", "n02"}},  // the lower bound's padding holds for the whole range
      {"n[1-02]", {"n1", "n2"}},
      {"n[01,2]", {"n01", "n2"}},
      {"n[1,1,1]", {"n1", "n1", "n1"}},  // duplicates kept
      {"r[1-2]n[1-2]", {"r1n1", "r1n2", "r2n1", "r2n2"}},
      {"foo[1-2]-[0-3]", {"foo1-0", "foo1-1", "foo1-2", "foo1-3", "foo2-0", "foo2-1", "foo2-2", "foo2-3"}},
      {"rack[1-2]-node[01-02]", {"rack1-node01", "rack1-node02", "rack2-node01", "rack2-node02"}},
      {"n[1-3,7],gpu-[01-02]", {"n1", "n2", "n3", "n7", "gpu-01", "gpu-02"}},
      {"node1", {"node1"}},
      {"", {}},
  };
  for (const auto& [expression, hosts] : vectors) EXPECT_EQ(expand_hostlist(expression), hosts) << expression;
}

TEST(HostlistAsSlurm, CompressesAsSlurmDoes) {
  const std::vector<std::pair<Hosts, std::string>> vectors{
      // Slurm's unit tests: names pushed in order, and the list after some are removed
      {{"a1", "a2", "a3", "b1", "c1"}, "a[1-3],b1,c1"},
      {{"b1", "b2", "b3", "c1", "d1", "d2", "d3", "d4", "d5", "e1"}, "b[1-3],c1,d[1-5],e1"},
      {{"b1", "b2", "b3", "d1", "d2", "d3", "d4", "d5", "e1"}, "b[1-3],d[1-5],e1"},
      {{"b1", "b2", "b3", "d1", "d3", "d4", "d5", "e1"}, "b[1-3],d[1,3-5],e1"},
      {{"b1", "b2", "b3", "d1", "d3", "d4", "e1"}, "b[1-3],d[1,3-4],e1"},
      {{"b1", "b2", "b3", "d1", "d3", "d4"}, "b[1-3],d[1,3-4]"},
      // libslurm 22.05
      {{"n1", "n2", "n3", "n7"}, "n[1-3,7]"},
      {{"gpu-08", "gpu-09", "gpu-10"}, "gpu-[08-10]"},
      {{"n9", "n10", "n11"}, "n[9-11]"},
      {{"c2", "c3", "c4", "c5", "c6", "c6"}, "c[2-6,6]"},
      {{"n1", "n1"}, "n[1,1]"},
      {{"n3", "n2", "n1"}, "n[3,2,1]"},  // order kept, never sorted
      {{"n1", "n2", "m1", "n3"}, "n[1-2],m1,n3"},
      {{"login", "n1"}, "login,n1"},
      {{"n1-ib", "n2-ib"}, "n1-ib,n2-ib"},
      {{"rack1-node01", "rack1-node02"}, "rack1-node[01-02]"},
      {{"n11", "n01", "n2"}, "n[11,01,2]"},
  };
  for (const auto& [hosts, expression] : vectors) {
    EXPECT_EQ(compress_hostlist(hosts), expression);
    EXPECT_EQ(expand_hostlist(expression), hosts) << expression;
  }
}

// Where a name's padding changes within a run Slurm writes one bracket ("n[9,08-10]") and
// cohort two ("n9,n[08-10]"): both read back as the names given, in Slurm and here.
TEST(HostlistAsSlurm, MixedPaddingReadsBackAsGivenThoughWrittenOtherwise) {
  for (const auto& [hosts, slurms] : std::vector<std::pair<Hosts, std::string>>{
           {{"n9", "n08", "n09", "n10"}, "n[9,08-10]"}, {{"n10", "n09", "n010"}, "n[10,09,010]"}}) {
    EXPECT_EQ(expand_hostlist(slurms), hosts) << slurms;
    EXPECT_EQ(expand_hostlist(compress_hostlist(hosts)), hosts) << compress_hostlist(hosts);
  }
}

// Where libslurm guesses at a malformed list ("a,,b" drops the empty name, "n[1-3" gives
// the one host "n]", "n[1-]" gives n1) or refuses it with a line on stderr alone ("n[]",
// "n[-1]"), cohort refuses it as bad input naming the expression: the lists Slurm writes
// itself never look like these.
TEST(HostlistAsSlurm, WhatSlurmGuessesAtIsAnInputErrorHere) {
  for (const char* bad : {"a,,b", "n[1-3", "n1-3]", "n[1-]", "n[]", "n[-1]"}) {
    expect_refused_naming_it(bad);
  }
}

TEST(TasksPerNode, ExpandsSlurmRepeatSyntax) {
  EXPECT_EQ(expand_tasks_per_node("2(x3),1"), (std::vector<int>{2, 2, 2, 1}));
  EXPECT_EQ(expand_tasks_per_node("4"), (std::vector<int>{4}));
  EXPECT_THROW(expand_tasks_per_node("2(x3"), Error);
  EXPECT_THROW(expand_tasks_per_node("two"), Error);
}

TEST(TasksPerNode, ACountPastTheLimitIsAnInputErrorNotAWrappedInt) {
  try {
    expand_tasks_per_node("4294967298");
    ADD_FAILURE() << "4294967298 tasks were accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    EXPECT_NE(std::string(e.what()).find("4294967298 tasks on one node (at most 65536)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cohort::launcher
