// common/environment.hpp — what this process learns from where it runs: its environment
// variables and the name of its host.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>

#include "common/error.hpp"
#include "common/text.hpp"

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

// Whether an MPI launcher (mpirun, srun --mpi=pmix, Hydra) started this process: it then
// knows the ranks even before MPI_Init. Ranks that torchrun, `cohort launch` without MPI or
// a plain srun started have only the launch contract.
inline bool started_by_mpi_launcher() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"}) {
    if (std::getenv(name)) return true;
  }
  return false;
}

// The launch contract's RANK and WORLD_SIZE, checked; nothing when neither is set.
inline std::optional<std::pair<int, int>> contract_ranks() {
  auto read = [](const char* name) -> std::optional<long long> {
    const std::string text = env_or(name);
    if (text.empty()) return std::nullopt;
    const auto value = parse_integer(text, -(1LL << 40), 1LL << 40);
    if (!value) throw input_error(std::string(name) + "=" + text + ": expected a whole number");
    return value;
  };
  const auto rank = read("RANK");
  const auto size = read("WORLD_SIZE");
  if (!rank && !size) return std::nullopt;
  if (!rank || !size) {
    throw input_error(std::string(rank ? "WORLD_SIZE" : "RANK") + " is not set but " + (rank ? "RANK" : "WORLD_SIZE") +
                      " is: the launch contract sets both (cohort launch, srun --cohort)");
  }
  if (*size < 1 || *size > (1 << 24)) {
    throw input_error("WORLD_SIZE=" + std::to_string(*size) + ": expected 1 to 16777216 ranks");
  }
  if (*rank < 0 || *rank >= *size) {
    throw input_error("RANK=" + std::to_string(*rank) + " is outside 0.." + std::to_string(*size - 1) +
                      " (WORLD_SIZE=" + std::to_string(*size) + ")");
  }
  return std::pair{static_cast<int>(*rank), static_cast<int>(*size)};
}

}  // namespace cohort
