// serve/serve_command.hpp — `cohort serve`: an Open Inference Protocol (KServe V2) server
// for TorchScript models.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace cohort::serve {

int serve_command(const std::vector<std::string>& args);

// The token a server asks for: the file's first line. A missing file is created 0600 (its
// folder 0700) with a new random token; a file others may read is an input error.
std::string read_or_create_token(const std::filesystem::path& file);
// $XDG_CONFIG_HOME/cohort/serve-token, else ~/.config/cohort/serve-token.
std::filesystem::path default_token_file();

}  // namespace cohort::serve
