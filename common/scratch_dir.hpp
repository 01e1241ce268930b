// common/scratch_dir.hpp — a scratch folder (a benchmark's) removed with everything in it
// when it goes out of scope, however the scope is left; a removal that fails leaves it.
#pragma once

#include <filesystem>
#include <system_error>
#include <utility>

namespace cohort {

class RemovedAtExit {
 public:
  explicit RemovedAtExit(std::filesystem::path dir) : dir_(std::move(dir)) {}
  ~RemovedAtExit() {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  // Leaves the folder where it is after all (an empty path removes nothing).
  void keep() { dir_.clear(); }
  RemovedAtExit(const RemovedAtExit&) = delete;
  RemovedAtExit& operator=(const RemovedAtExit&) = delete;

 private:
  std::filesystem::path dir_;
};

}  // namespace cohort
