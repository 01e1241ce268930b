// launcher/run_report.hpp — what a launch's run directory says, for readers outside the
// launcher (the dashboard): each attempt, and in it each rank's host, placement, state and
// heartbeat. It only reads, and reads what the ranks write whole (atomic renames), so a run
// that is still going is read as safely as one that has ended.
//
//   launcher::RunReport run = launcher::read_run_dir("/scratch/me/.cohort/runs/job-812", now);
//   for (const auto& a : run.attempts) std::cout << a.number << ": " << a.why_ended << "\n";
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace cohort::launcher {

struct RankReport {
  int rank = 0;
  std::string host;                    // where it ran ("" until it started)
  std::string cpus, gpus, nics, numa;  // its placement, as the contract gave it
  // "starting", "running", "exited with 0", "killed by SIGKILL", "hung (no heartbeat)",
  // "killed in teardown", …
  std::string state;
  bool failed = false;
  // Seconds since the rank last beat, while it runs and has beaten at least once.
  std::optional<double> heartbeat_age;
  bool beats = false;  // it runs under hang detection (it has a heartbeat)
  std::string stack_file;  // its stack, dumped when it hung (attempt-N/rank-R.stack); "" if none
};

struct AttemptReport {
  int number = 0;  // attempt-N: restarts and requeues before it
  std::vector<RankReport> ranks = {};
  std::string why_ended = {};  // the first rank to fail, "rank 1 on node2 exited with 3"; "" if none failed
};

struct RunReport {
  std::string dir;
  std::vector<AttemptReport> attempts = {};  // oldest first; the last one is the current one
  bool checkpoint_requested = false;    // preemption asked the ranks to checkpoint
};

// Throws cohort::Error naming `dir` when it is not there or not a directory. `now` is the
// wall clock in seconds since the epoch, for heartbeat ages.
RunReport read_run_dir(const std::string& dir, double now);

// Seconds since the newest beat of any rank of the newest attempt: what a list of launches
// shows of each, at a cost bounded however large the gang (the run directory's listing and
// at most `max_entries` entries of the attempt's). Nothing when no rank has beaten yet, the
// directory is not there, or none was found within the bound.
std::optional<double> newest_heartbeat_age(const std::string& dir, double now, std::size_t max_entries = 4096);

}  // namespace cohort::launcher
