// common/progress.hpp — a progress line for long work, on stderr when it is a terminal.
//
//   Progress progress("ckpt verify", total_bytes);
//   for (…) progress.advance(chunk_bytes);   // "cohort: ckpt verify: 3.2 of 10.0 GiB (32%)"
//
// Silent when stderr is not a terminal (logs, pipes, tests), redrawn at most a few times a
// second, and wiped when the work ends, so the command's own output is left as it was.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace cohort {

class Progress {
 public:
  Progress(std::string what, std::uint64_t total_bytes);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void advance(std::uint64_t bytes);

 private:
  void draw();

  std::string what_;
  std::uint64_t total_ = 0;
  std::uint64_t done_ = 0;
  bool enabled_ = false;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace cohort
