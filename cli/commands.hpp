// cli/commands.hpp — the table of `cohort` subcommands.
//
// Each component owns its command's logic and options; the CLI only finds the entry by
// name. Commands whose libraries are heavy to load (HDF5, MPI, CUDA) are separate
// executables beside `cohort` (cohort-ckpt, cohort-bench), which `cohort` runs in its own
// place: `cohort launch`, which starts every rank of a job, then loads none of them.
// Adding a command is one row in commands.cpp (and, for a tool, one line in CMakeLists).
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cohort::cli {

struct Command {
  std::string_view name;     // as typed: `cohort <name> …`
  std::string_view summary;  // one line for `cohort help`
  std::string_view example;  // shown by `cohort help`
  // In-process entry: receives the arguments after the command name; returns the exit
  // status; throws cohort::Error for bad input or failure. Null for a separate tool.
  int (*run)(const std::vector<std::string>& args) = nullptr;
  std::string_view tool;     // the executable beside `cohort` that runs this command
};

std::span<const Command> commands();
const Command* find_command(std::string_view name);

// Runs `body`, turning a cohort::Error into one line "cohort: <name>: <message>" on stderr
// and its exit status (2 for bad input, 1 for failure).
int run_guarded(std::string_view name, int (*body)(const std::vector<std::string>&),
                const std::vector<std::string>& args);

}  // namespace cohort::cli
