// launcher/run_dir.hpp — what a launch leaves in its run directory, and outcomes as words.
//
// A launch's run directory sits on a filesystem every node shares. Each attempt has its
// own folder: a rank's wrapper writes rank-R.status once, when its program has ended, for
// people reading the run afterwards (the supervisor hears it over TCP: agent_link.hpp);
// rank 0 writes the step id, read at teardown. Writes are atomic renames, so a reader
// never sees half a file. Private to the launcher.
#pragma once

#include <string>
#include <vector>

#include "common/fd.hpp"  // write_file_atomically: every file here is written whole
#include "launcher/supervisor.hpp"

namespace cohort::launcher {

std::string read_small_file(const std::string& path);  // "" when missing or unreadable

void write_outcome(const std::string& attempt_dir, const RankOutcome& outcome);

// Where a hung rank's stack is dumped, once: attempt-N/rank-R.stack.
std::string stack_file(const std::string& attempt_dir, int rank);

// Where a rank runs, written once as it starts (rank-R.placement) for people reading the
// run: its host and the plan's CPUs, GPUs, NICs and NUMA nodes as the contract gives them
// to the program ("" where nothing was planned).
struct RankPlacementRecord {
  int rank = 0;
  std::string host, cpus, gpus, nics, numa;
  long long started_ns = 0;
};
void write_placement(const std::string& attempt_dir, const RankPlacementRecord& placement);

// Why an attempt failed, in the supervisor's words ("rank 1 (node2) exited with 3 first"),
// written as it ends (attempt-N/ended): ranks torn down with it write no status of their own.
void write_ending(const std::string& attempt_dir, const std::string& why);

// The lines "KEY=VALUE" of a status or placement file, in order; other lines are skipped.
std::vector<std::pair<std::string, std::string>> key_values(const std::string& text);
// Outcomes reported so far, in rank order; and started-R markers. The supervisor once
// polled these every 100 ms: `cohort bench launch --simulate` keeps that poll as its baseline.
std::vector<RankOutcome> read_outcomes(const std::string& attempt_dir);
int count_started(const std::string& attempt_dir);

long long wall_clock_ns();

// "exited with 3", "killed by SIGKILL", "hung (no heartbeat)", "hung (stopped)",
// "killed in teardown".
std::string describe(const RankOutcome& outcome);
bool failed(const RankOutcome& outcome);

}  // namespace cohort::launcher
