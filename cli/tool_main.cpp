// The entry point of a command built as its own executable (see cli/commands.hpp).
// COHORT_TOOL_NAME, COHORT_TOOL_HEADER and COHORT_TOOL_ENTRY are set per tool by CMake.
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include COHORT_TOOL_HEADER

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return cohort::cli::run_guarded(COHORT_TOOL_NAME, &COHORT_TOOL_ENTRY, args);
}
