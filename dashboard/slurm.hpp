// dashboard/slurm.hpp — the user's jobs as Slurm tells them (squeue for queued and running
// jobs, sacct for the last day's ended ones), asked at most once per interval however many
// pages want them: every page between two asks gets the same answer. Private to dashboard/.
#pragma once

#include <chrono>
#include <map>
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

  // Where Slurm writes `job`'s batch output (scontrol's StdOut=), asked at most once per
  // interval for each job however many of its pages are loaded, as jobs() is: a job page
  // left open reloads itself every few seconds. Empty with `error` saying why when the job
  // is not this user's, Slurm no longer knows it, or Slurm is not here.
  struct BatchOutput {
    std::string path, error;
  };
  BatchOutput batch_output(const std::string& job);

 private:
  json::Value ask() const;
  BatchOutput ask_batch_output(const std::string& job) const;

  const std::string user_;
  const std::chrono::milliseconds every_;
  mutable std::mutex mutex_;
  std::optional<std::chrono::steady_clock::time_point> asked_;
  json::Value answer_;
  int queries_ = 0;
  // Apart from the jobs list's, so that a job page's ask never waits for squeue and sacct.
  struct Asked {
    std::chrono::steady_clock::time_point at;
    BatchOutput answer;
  };
  std::mutex batch_mutex_;
  std::map<std::string, Asked> batch_;
};

}  // namespace cohort::dashboard
