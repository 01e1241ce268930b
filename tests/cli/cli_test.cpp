// The `cohort` executable as users meet it: exit codes, help and errors.
#include <gtest/gtest.h>

#include <cstdlib>

#include "common/process.hpp"

namespace cohort {
namespace {

ProcessResult cohort(std::vector<std::string> args) {
  const char* bin = std::getenv("COHORT_BIN");
  args.insert(args.begin(), bin ? bin : "cohort");
  return run_process(args);
}

TEST(Cli, VersionPrintsTheProjectVersion) {
  auto r = cohort({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("cohort 0.", 0), 0u) << r.out;
  EXPECT_EQ(cohort({"version"}).out, r.out);
}

TEST(Cli, HelpListsCommandsWithAnExample) {
  auto r = cohort({"help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("usage: cohort"), std::string::npos);
  EXPECT_NE(r.out.find("example:"), std::string::npos);
  EXPECT_EQ(cohort({"--help"}).out, r.out);
}

TEST(Cli, NoCommandIsAUsageError) {
  auto r = cohort({});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("usage: cohort"), std::string::npos);
  EXPECT_TRUE(r.out.empty());
}

TEST(Cli, UnknownCommandIsAUsageErrorNamingIt) {
  auto r = cohort({"frobnicate", "--x"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown command 'frobnicate'"), std::string::npos) << r.err;
}

TEST(Cli, UnknownGlobalOptionIsAUsageError) {
  auto r = cohort({"--frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("frobnicate"), std::string::npos) << r.err;
}

TEST(Cli, HelpForAnUnknownCommandSaysSoOnOneLine) {
  auto r = cohort({"help", "frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "cohort: help: unknown command 'frobnicate' (see 'cohort help')\n");
}

TEST(Cli, AnUnknownBenchmarkBaselineIsAUsageErrorNamingTheChoices) {
  auto r = cohort({"bench", "collectives", "--baseline", "gloo"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--baseline gloo: unknown baseline (use mpi for host buffers, nccl for device ones)"),
            std::string::npos)
      << r.err;
}

TEST(Cli, ANonNumericSweepBenchmarkCountIsAUsageErrorNamingIt) {
  auto r = cohort({"bench", "sweep", "--trials", "abc"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--trials abc: expected a whole number"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace cohort
