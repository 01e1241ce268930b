// common/fd: whole-file reads and writes.
#include <gtest/gtest.h>
#include <unistd.h>

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

// Another user who can write to the directory may plant a link at the temporary name a
// writer would pick; the writer must neither follow it nor leave it in place of the file.
TEST(Fd, WriteFileAtomicallyNeverWritesThroughALinkAtItsTemporaryName) {
  TempDir d;
  std::ofstream(d / "victim") << "private";
  fs::create_symlink(d / "victim", d / ("f.tmp." + std::to_string(::getpid())));
  write_file_atomically(d / "f", "new", Durability::fsync);
  EXPECT_EQ(read_file(d / "victim").value_or(""), "private");
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(d / "f")));
  EXPECT_EQ(read_file(d / "f").value_or(""), "new");
}

}  // namespace
}  // namespace cohort
