// tuner/journal.hpp — the experiment's record on the shared filesystem; no server.
//
// An experiment directory holds (docs/tuner.md describes it for users):
//
//   experiment.yaml     the spec, as given (written once, by an atomic rename)
//   journal.jsonl       one JSON record per line, only ever appended
//   journal.lock        the lock every writer takes (flock, exclusive) around its append
//   sweep.sbatch        the array job's script, when submitted (atomic rename)
//   trials/<id>/        each trial's stdout.log and stderr.log
//   slurm/              the array tasks' own output
//
// A writer holds journal.lock while it reads the journal, decides and appends, so claims
// are serialised across every task of an array: two tasks never claim the same trial, and
// a task that starts after the last trial was claimed finds nothing to do. Each record is
// one write(2) of a whole line followed by fsync. A record cut short by a crash is a line
// the reader skips (a later writer first ends it with a newline), so a crashed runner
// loses only its own record.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/json.hpp"
#include "tuner/experiment.hpp"

namespace cohort::tuner {

// Katib's trial conditions; Killed: stopped from outside (scancel, Ctrl-C) and not counted
// against maxTrialCount.
enum class TrialState { running, succeeded, failed, early_stopped, killed };
enum class ExperimentState { running, succeeded, failed };

const char* to_string(TrialState state);       // "Running", "Succeeded", "EarlyStopped", …
const char* to_string(ExperimentState state);  // "Running", "Succeeded", "Failed"

struct Trial {
  int id = 0;
  Assignment parameters;
  TrialState state = TrialState::running;
  std::string reason;                                   // why it failed or stopped
  std::optional<double> objective;                      // the objective metric's value
  std::vector<std::pair<std::string, double>> metrics;  // every metric, objective first
  std::vector<std::pair<long long, double>> curve;      // objective at each step reported
  std::vector<std::string> reports;                     // lines from `cohort sweep report`
  double started = 0, ended = 0;                        // seconds since the epoch
  std::string job;                                      // Slurm job id ("812_3"); empty locally
  std::string host;
  long pid = 0;
  int exit_code = 0;
};

// The experiment as its journal tells it.
struct JournalState {
  std::uint64_t seed = 0;
  bool initialised = false;
  std::string name;           // the experiment's name when the directory was created
  std::vector<Trial> trials;  // by id: trials[i].id == i
  ExperimentState state = ExperimentState::running;
  std::string reason;         // why the experiment ended
  std::string array_job;      // the submitted array job's id
  int damaged_records = 0;    // lines cut short by a crash, skipped

  const Trial* find(int id) const;
  Trial* find(int id);
  // Trials that count against maxTrialCount: all but Killed.
  int counted() const;
  int count(TrialState state) const;
  // The best Succeeded trial, if any.
  const Trial* best(const Objective& objective) const;
};

class Journal {
 public:
  explicit Journal(std::filesystem::path dir);

  const std::filesystem::path& dir() const { return dir_; }

  // Reads every complete record. Needs no lock: records are whole lines, appended.
  JournalState read() const;

  // Bytes in the journal now: it changes with every record appended, so a reader can tell
  // whether what it read before is still the whole story.
  std::uintmax_t size() const;

  // Runs `work` holding the journal's lock, with the journal as it stands; what `work`
  // passes to `append` is written, in order, before the lock is released.
  using Append = std::function<void(json::Value record)>;
  void transact(const std::function<void(const JournalState& state, const Append& append)>& work);

  // One record, under the lock.
  void append(json::Value record);

 private:
  std::filesystem::path dir_;
};

// Applies one record to the state (the journal's records in order rebuild it).
void apply_record(JournalState& state, const json::Value& record);

// The state a journal's text tells: each complete line is a record, applied in order; a
// line that is no JSON, or a record of the wrong shape, counts as damaged and is skipped.
// Text after the last newline is a record still being written, and is left for later.
JournalState parse_journal(std::string_view text);

// Records the metrics in `line` ("loss=0.3 accuracy=0.9", Katib's StdOut format) for a
// running trial; what `cohort sweep report` and trial code written in C++ call.
void report_metrics(const std::filesystem::path& dir, int trial, const std::string& line);

}  // namespace cohort::tuner
