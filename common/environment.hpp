// common/environment.hpp — what this process learns from where it runs: its environment
// variables and the name of its host.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <string>

namespace cohort {

// The variable's value, or `fallback` when it is unset or empty: Slurm and the launcher
// leave a variable empty where they have nothing to say, so empty means "not given".
inline std::string env_or(const std::string& name, const std::string& fallback = {}) {
  const char* value = std::getenv(name.c_str());
  return value && *value ? std::string(value) : fallback;
}

// This host's name as gethostname gives it; empty when it cannot.
inline std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return {};
  return name;
}

}  // namespace cohort
