// common/fd: whole-file reads and writes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "common/fd.hpp"
#include "tests/common/temp_dir.hpp"

namespace cohort {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

TEST(Fd, WriteFileAtomicallyLeavesNoTemporaryBehind) {
  TempDir d;
  write_file_atomically(d / "f", "one", Durability::fsync);
  write_file_atomically(d / "f", "two");
  std::ifstream in(d / "f");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "two");
  EXPECT_EQ(std::distance(fs::directory_iterator(d.path()), fs::directory_iterator()), 1);
}

TEST(Fd, AFailedWriteLeavesTheOldFileAndNoTemporary) {
  TempDir d;
  write_file_atomically(d / "f", "old");
  // The target is a directory: the rename fails after the temporary was written.
  fs::create_directory(d / "dir");
  std::ofstream(d / "dir" / "x") << "x";
  EXPECT_THROW(write_file_atomically(d / "dir", "new"), Error);
  EXPECT_EQ(read_file(d / "f").value_or(""), "old");
  EXPECT_EQ(std::distance(fs::directory_iterator(d.path()), fs::directory_iterator()), 2);
}

}  // namespace
}  // namespace cohort
