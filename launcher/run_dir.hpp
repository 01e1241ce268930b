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
