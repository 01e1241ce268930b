// launcher/launch_command.hpp — `cohort launch`, the command.
#pragma once

#include <string>
#include <vector>

namespace cohort::launcher {

// `cohort launch [options] -- command …`; returns the exit status (see --help).
int launch_command(const std::vector<std::string>& args);

// "USR1", "SIGUSR1" or "10" to the signal number; throws input_error naming `option`.
int parse_signal(const std::string& option, const std::string& text);

}  // namespace cohort::launcher
