// common/fd: whole-file reads and writes.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/process.hpp"
#include "tests/common/temp_dir.hpp"

namespace cohort {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

TEST(Fd, WriteFileAtomicallyLeavesNoTemporaryBehind) {
  TempDir d;
  write_file_atomically(d / "f", "one");
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
  fs::create_symlink(d / "victim", d / (".f.tmp." + std::to_string(::getpid())));
  write_file_atomically(d / "f", "new");
  EXPECT_EQ(read_file(d / "victim").value_or(""), "private");
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(d / "f")));
  EXPECT_EQ(read_file(d / "f").value_or(""), "new");
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Fd, AnAtomicFileIsThereWithItsContentOnlyOnceCommitted) {
  TempDir d;
  {
    AtomicFile file(d / "f");
    file.write("half");
    file.write(" and whole");
    EXPECT_FALSE(fs::exists(d / "f"));
    file.commit();
  }
  EXPECT_EQ(read_text(d / "f"), "half and whole");
  EXPECT_EQ(names_in(d.path()), std::vector<std::string>{"f"});
  EXPECT_EQ(fs::status(d / "f").permissions() & fs::perms::owner_write, fs::perms::owner_write);
}

TEST(Fd, AnAtomicFileDroppedUncommittedLeavesTheOldFileAndNoTemporary) {
  TempDir d;
  write_file_atomically(d / "f", "old");
  {
    AtomicFile file(d / "f");
    file.write("new");
  }
  EXPECT_EQ(read_text(d / "f"), "old");
  EXPECT_EQ(names_in(d.path()), std::vector<std::string>{"f"});
}

// Root ignores directory permissions: the write is tried as nobody (setpriv) through a
// small writer program, as tests/checkpoint does.
TEST(Fd, AWriteRefusedByAReadOnlyDirectoryNamesThePathAndKeepsTheOldFile) {
  TempDir d;
  fs::create_directory(d / "ro");
  write_file_atomically(d / "ro" / "f", "old");
  ::chmod((d / "ro").c_str(), 0555);
  const std::string target = (d / "ro" / "f").string();
  std::string error;
  if (::geteuid() == 0) {
    ::chmod(d.path().c_str(), 0755);
    auto r = run_process({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", COHORT_FD_WRITER, target,
                          "new"});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    error = r.err;
  } else {
    try {
      write_file_atomically(target, "new");
      ADD_FAILURE() << "wrote into a read-only directory";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::failure);
      error = e.what();
    }
  }
  EXPECT_NE(error.find("cannot write " + target + ": " + std::strerror(EACCES)), std::string::npos) << error;
  EXPECT_EQ(read_text(target), "old");
  EXPECT_EQ(names_in(d / "ro"), std::vector<std::string>{"f"});
  ::chmod((d / "ro").c_str(), 0755);
}

TEST(Fd, ReadTextRefusesWhatIsNoRegularFile) {
  TempDir d;
  std::ofstream(d / "f") << "text";
  fs::create_symlink(d / "f", d / "link");
  ASSERT_EQ(::mkfifo((d / "fifo").c_str(), 0644), 0);
  EXPECT_EQ(read_text(d / "f"), "text");
  for (const char* name : {"link", "fifo", "."}) {
    try {
      read_text(d / name);
      ADD_FAILURE() << name;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find((d / name).string()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("regular files only"), std::string::npos) << e.what();
    }
  }
}

TEST(ReadText, ReadsAFileTheUserNamedWhole) {
  ::cohort::testing::TempDir dir("cohort-text");
  const std::string path = (dir / "spec.yaml").string();
  std::ofstream(path) << "kind: TFJob\n";
  EXPECT_EQ(read_text(path, {.user_file = true}), "kind: TFJob\n");
  std::ofstream(path, std::ios::trunc);
  EXPECT_EQ(read_text(path, {.user_file = true}), "");
}

TEST(ReadText, WhatTheUserNamedAndCannotBeReadIsAnInputErrorNamingThePath) {
  ::cohort::testing::TempDir dir("cohort-text");
  const std::string fifo = (dir / "fifo").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::ofstream(dir / "big") << std::string(100, 'x');
  struct Case {
    std::string path;
    std::string message;
    std::uint64_t max_bytes = std::uint64_t{1} << 30;
  };
  for (const auto& c : std::vector<Case>{
           {(dir / "missing").string(), (dir / "missing").string() + ": cannot read it (does it exist?)"},
           {dir.path().string(), dir.path().string() + " is a directory, not a file"},
           {fifo, fifo + " is not a regular file"},  // and no wait for a writer
           {(dir / "big").string(), (dir / "big").string() + " is 100 bytes, more than the 99 it may hold", 99},
       }) {
    try {
      read_text(c.path, {.max_bytes = c.max_bytes, .user_file = true});
      ADD_FAILURE() << c.path << " was read";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::input);
      EXPECT_EQ(std::string(e.what()), c.message);
    }
  }
}

}  // namespace
}  // namespace cohort
