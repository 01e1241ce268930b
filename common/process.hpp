// common/process.hpp — run a child program and collect what it printed.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace cohort {

struct ProcessResult {
  int exit_code = -1;    // exit status, or -1 when the child was killed by a signal
  int term_signal = 0;   // the signal that ended it, 0 when it exited
  std::string out;       // everything written to stdout
  std::string err;       // everything written to stderr
  bool timed_out = false;

  bool ok() const { return exit_code == 0; }
};

struct RunOptions {
  // Extra variables, "NAME=VALUE", added to (and overriding) the inherited environment.
  std::vector<std::string> env;
  std::string input;                             // written to the child's stdin, then closed
  std::optional<std::chrono::milliseconds> timeout;  // on expiry the child gets SIGKILL
};

// The inherited environment with `overrides` ("NAME=VALUE") added or replacing, as
// execve wants it.
std::vector<std::string> environment_with(const std::vector<std::string>& overrides);

// Sets NAME=VALUE in an environment of "NAME=VALUE" entries, replacing any entry for NAME.
void set_variable(std::vector<std::string>& env, const std::string& name, const std::string& value);

// `strings` as the null-terminated array of C strings that exec and posix_spawn take;
// valid while `strings` lives unchanged.
std::vector<char*> c_strings(std::vector<std::string>& strings);

// `word` quoted for a POSIX shell, only when it needs it: "a b" gives 'a b'.
std::string shell_quote(const std::string& word);

// Runs argv[0] (looked up on PATH) with argv, waits for it, and returns its output.
// Throws cohort::Error when the program cannot be started at all.
ProcessResult run_process(const std::vector<std::string>& argv, const RunOptions& options = {});

}  // namespace cohort
