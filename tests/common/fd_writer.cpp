// fd_writer PATH CONTENT: write_file_atomically(PATH, CONTENT), reporting an error as a
// command does (one line, exit 1 or 2). The unprivileged writer of fd_test's read-only
// directory test, which root could not try in its own process.
#include <cstdio>

#include "common/error.hpp"
#include "common/fd.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: fd_writer PATH CONTENT\n");
    return 2;
  }
  try {
    cohort::write_file_atomically(argv[1], argv[2]);
  } catch (const cohort::Error& e) {
    std::fprintf(stderr, "fd_writer: %s\n", e.what());
    return e.exit_code();
  }
  return 0;
}
