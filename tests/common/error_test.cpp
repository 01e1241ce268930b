#include "common/error.hpp"

#include <gtest/gtest.h>

#include <cerrno>

namespace cohort {
namespace {

TEST(Error, InputErrorsExitWithUsageStatus) {
  Error e = input_error("--ranks 0: must be at least 1");
  EXPECT_EQ(e.kind(), ErrorKind::input);
  EXPECT_EQ(e.exit_code(), 2);
  EXPECT_STREQ(e.what(), "--ranks 0: must be at least 1");
}

TEST(Error, FailuresExitWithStatusOne) {
  Error e("checkpoint step 40 is corrupt");
  EXPECT_EQ(e.kind(), ErrorKind::failure);
  EXPECT_EQ(e.exit_code(), 1);
}

TEST(Error, SystemMessageNamesTheCallAndTheReason) {
  EXPECT_EQ(system_message("open /nope", ENOENT), "open /nope: No such file or directory");
}

}  // namespace
}  // namespace cohort
