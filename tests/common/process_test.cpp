#include "common/process.hpp"

#include <gtest/gtest.h>

#include <csignal>

#include "common/error.hpp"

namespace cohort {
namespace {

TEST(RunProcess, CollectsStdoutStderrAndExitStatus) {
  auto r = run_process({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  EXPECT_FALSE(r.ok());
}

TEST(RunProcess, PassesInputAndExtraEnvironment) {
  RunOptions options;
  options.env = {"COHORT_PROBE=seen"};
  options.input = "from stdin\n";
  auto r = run_process({"sh", "-c", "cat; printf %s \"$COHORT_PROBE\""}, options);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.out, "from stdin\nseen");
}

TEST(RunProcess, LargeOutputOnBothStreamsDoesNotDeadlock) {
  // More than a pipe buffer on each stream at once.
  auto r = run_process({"sh", "-c", "head -c 300000 /dev/zero; head -c 300000 /dev/zero >&2"});
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.out.size(), 300000u);
  EXPECT_EQ(r.err.size(), 300000u);
}

TEST(RunProcess, ReportsTheSignalThatKilledTheChild) {
  auto r = run_process({"sh", "-c", "kill -TERM $$"});
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_EQ(r.term_signal, SIGTERM);
}

TEST(RunProcess, TimeoutKillsTheChild) {
  // exec: the program that outlives the timeout is the child itself, not a grandchild.
  RunOptions options;
  options.timeout = std::chrono::milliseconds(200);
  auto r = run_process({"sh", "-c", "exec sleep 60"}, options);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.term_signal, SIGKILL);
}

TEST(RunProcess, MissingProgramIsAnErrorNamingIt) {
  try {
    run_process({"cohort-no-such-program"});
    FAIL() << "expected cohort::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cohort-no-such-program"), std::string::npos);
  }
}

}  // namespace
}  // namespace cohort
