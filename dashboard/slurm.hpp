// dashboard/slurm.hpp — the user's jobs as Slurm tells them (squeue for queued and running
// jobs, sacct for the last day's ended ones), asked at most once per interval however many
// pages want them: every page between two asks gets the same answer. Private to dashboard/.
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>

#include "common/json.hpp"

namespace cohort::dashboard {

class SlurmCache {
 public:
  SlurmCache(std::string user, std::chrono::milliseconds every) : user_(std::move(user)), every_(every) {}

  // {available, asked (seconds since the epoch), jobs: [{job, name, state, elapsed, nodes,
  // reason}], errors: [...]}; available false where squeue is not installed.
  json::Value jobs();
  int queries() const;

  // Where Slurm writes `job`'s batch output (scontrol's StdOut=), asked now: a job's page
  // wants it once, not every few seconds. Empty with `error` saying why when the job is not
  // this user's, Slurm no longer knows it, or Slurm is not here.
  struct BatchOutput {
    std::string path, error;
  };
  BatchOutput batch_output(const std::string& job) const;

 private:
  json::Value ask() const;

  const std::string user_;
  const std::chrono::milliseconds every_;
  mutable std::mutex mutex_;
  std::optional<std::chrono::steady_clock::time_point> asked_;
  json::Value answer_;
  int queries_ = 0;
};

}  // namespace cohort::dashboard
