// cli/commands.hpp — the table of `cohort` subcommands.
//
// Each component owns its command's logic and options; the CLI only finds the entry
// by name. Adding a command is one row in commands.cpp.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cohort::cli {

struct Command {
  std::string_view name;     // as typed: `cohort <name> …`
  std::string_view summary;  // one line for `cohort help`
  std::string_view example;  // shown by `cohort help <name>`
  // Receives the arguments after the command name; returns the exit status.
  // Throws cohort::Error for bad input or failure.
  int (*run)(const std::vector<std::string>& args);
};

std::span<const Command> commands();
const Command* find_command(std::string_view name);

}  // namespace cohort::cli
