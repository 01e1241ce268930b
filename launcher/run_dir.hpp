// launcher/run_dir.hpp — the files through which ranks and the supervisor talk.
//
// A launch's run directory sits on a filesystem every node shares. Each attempt has its
// own folder: a rank's wrapper writes started-R when the program starts and rank-R.status
// when it ends; rank 0 writes the step id. Writes are atomic renames, so a reader never
// sees half a file. Private to the launcher.
#pragma once

#include <string>
#include <vector>

#include "common/fd.hpp"  // write_file_atomically: every file here is written whole
#include "launcher/supervisor.hpp"

namespace cohort::launcher {

std::string read_small_file(const std::string& path);  // "" when missing or unreadable

void write_outcome(const std::string& attempt_dir, const RankOutcome& outcome);
// Outcomes reported so far, in rank order.
std::vector<RankOutcome> read_outcomes(const std::string& attempt_dir);
int count_started(const std::string& attempt_dir);

long long wall_clock_ns();

// "exited with 3", "killed by SIGKILL", "hung (no heartbeat)", "hung (stopped)",
// "killed in teardown".
std::string describe(const RankOutcome& outcome);
bool failed(const RankOutcome& outcome);

}  // namespace cohort::launcher
