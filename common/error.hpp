// common/error.hpp — the one exception type cohort's libraries throw.
#pragma once

#include <stdexcept>
#include <string>

namespace cohort {

// What a command does with an error: bad input is the caller's to fix (exit 2);
// a failure is the work's (exit 1).
enum class ErrorKind { input, failure };

// Messages name what was wrong, where, and what would be right:
//   "--gpus 0,9: GPU 9 is not on this node (it has GPUs 0-7)"
class Error : public std::runtime_error {
 public:
  explicit Error(std::string message, ErrorKind kind = ErrorKind::failure)
      : std::runtime_error(std::move(message)), kind_(kind) {}

  ErrorKind kind() const noexcept { return kind_; }
  // The exit status a command reports for this error: 2 for input, 1 for failure.
  int exit_code() const noexcept { return kind_ == ErrorKind::input ? 2 : 1; }

 private:
  ErrorKind kind_;
};

// Shorthand for the common case of rejecting what the user gave.
inline Error input_error(std::string message) { return Error(std::move(message), ErrorKind::input); }

// "strerror(errno)" with the call that failed, for system-call failures.
std::string system_message(const std::string& what, int errnum);

}  // namespace cohort
