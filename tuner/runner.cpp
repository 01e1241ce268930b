#include "tuner/runner.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>

#include "common/environment.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/process.hpp"
#include "common/slurm.hpp"
#include "common/text.hpp"
#include "tuner/lineage_record.hpp"
#include "tuner/metrics.hpp"
#include "tuner/sampler.hpp"
#include "tuner/stopper.hpp"

namespace cohort::tuner {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::vector<Observation> history_of(const JournalState& state, const Experiment& experiment) {
  std::vector<Observation> out;
  for (const auto& t : state.trials) {
    if (t.state == TrialState::killed) continue;
    Observation o;
    o.trial = t.id;
    o.point = to_point(experiment, t.parameters);
    o.finished = t.state == TrialState::succeeded && t.objective.has_value();
    o.objective = t.objective.value_or(0);
    o.curve = t.curve;
    out.push_back(std::move(o));
  }
  return out;
}

struct Finish {
  ExperimentState state;
  std::string reason;
};

std::optional<Finish> finish_condition(const JournalState& state, const Experiment& experiment) {
  if (state.state != ExperimentState::running) return std::nullopt;
  if (experiment.objective.goal) {
    for (const auto& t : state.trials) {
      if (t.state == TrialState::succeeded && t.objective && experiment.objective.reached(*t.objective)) {
        return Finish{ExperimentState::succeeded, "GoalReached: trial " + std::to_string(t.id) + " reached " +
                                                      experiment.objective.metric + "=" + format_number(*t.objective) +
                                                      " (goal " + format_number(*experiment.objective.goal) + ")"};
      }
    }
  }
  int failed = state.count(TrialState::failed);
  if (experiment.max_failed_trial_count && failed > *experiment.max_failed_trial_count) {
    return Finish{ExperimentState::failed, "MaxFailedTrialsReached: " + std::to_string(failed) +
                                               " trials failed, more than maxFailedTrialCount (" +
                                               std::to_string(*experiment.max_failed_trial_count) + ")"};
  }
  if (state.counted() >= trial_budget(experiment) && state.count(TrialState::running) == 0) {
    return Finish{ExperimentState::succeeded, "MaxTrialsReached: all " + std::to_string(state.counted()) + " trials ended"};
  }
  return std::nullopt;
}

json::Value finish_record(const Finish& f) {
  json::Value r = json::Value::object();
  r.set("type", "finish");
  r.set("state", to_string(f.state));
  r.set("reason", f.reason);
  return r;
}

// The trial as a child in a process group of its own, so that stopping it stops whatever
// it started. stdout and stderr come back through pipes: Katib reads a container's whole
// log, and Python's logging, which Katib's own trial code reports through, writes stderr.
Process spawn_trial(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  SpawnOptions o;
  o.environment = env;
  o.in = Stream::null();
  o.out = Stream::pipe();
  o.err = Stream::pipe();
  o.own_process_group = true;
  sigset_t none;
  sigemptyset(&none);
  o.signal_mask = none;
  o.default_signals = {SIGTERM, SIGINT, SIGPIPE};
  return spawn(argv, o);
}

std::string describe_exit(int status, const fs::path& trial_dir) {
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "exit status " + std::to_string(WEXITSTATUS(status)) + " (see " + (trial_dir / "stderr.log").string() + ")";
}

}  // namespace

Experiment open_experiment_dir(const fs::path& dir) {
  fs::path spec = dir / "experiment.yaml";
  if (!fs::exists(spec)) {
    throw input_error(dir.string() + ": not an experiment directory (no experiment.yaml); start one with "
                                     "'cohort sweep run' or 'cohort sweep submit'");
  }
  Experiment experiment = parse_experiment(read_text(spec, {.user_file = true}), spec.string());
  // Without metadata.name the name came from the file the user gave, not from this copy.
  std::string name = Journal(dir).read().name;
  if (!name.empty()) experiment.name = name;
  return experiment;
}

Experiment init_experiment_dir(const fs::path& spec_path, const fs::path& dir) {
  std::string text = read_text(spec_path, {.user_file = true});
  Experiment experiment = parse_experiment(text, spec_path.string());
  // Private whatever the umask: the journal, trial logs and the array's output are the
  // user's, and the journal steers every task of the array.
  try {
    make_directories((dir / "trials").string(), 0700);
    make_directories((dir / "slurm").string(), 0700);
  } catch (const Error& e) {
    throw input_error(dir.string() + ": cannot create the experiment directory: " + e.what());
  }
  fs::path copy = dir / "experiment.yaml";
  if (fs::exists(copy)) {
    if (read_text(copy, {.user_file = true}) != text) {
      throw input_error(dir.string() + " holds another experiment (its experiment.yaml differs from " +
                        spec_path.string() + "); give another --dir, or continue that one with 'cohort sweep resume " +
                        dir.string() + "'");
    }
  } else {
    write_file_atomically(copy, text);
  }
  Journal journal(dir);
  journal.transact([&](const JournalState& state, const Journal::Append& append) {
    if (state.initialised) return;
    json::Value r = json::Value::object();
    r.set("type", "experiment");
    r.set("name", experiment.name);
    // A string: JSON readers lose 64-bit integers.
    r.set("seed", std::to_string(experiment_seed(experiment)));
    append(std::move(r));
  });
  return experiment;
}

int trial_budget(const Experiment& experiment) {
  long long budget = experiment.max_trial_count.value_or(1);
  if (auto capacity = find_algorithm(experiment.algorithm)->capacity(experiment)) budget = std::min(budget, *capacity);
  return static_cast<int>(budget);
}

std::optional<int> claim_trial(Journal& journal, const Experiment& experiment, const std::string& job) {
  std::optional<int> claimed;
  journal.transact([&](const JournalState& state, const Journal::Append& append) {
    if (!state.initialised) throw Error(journal.dir().string() + ": the journal has no experiment record");
    if (state.state != ExperimentState::running) return;
    auto finish_if_idle = [&](const std::string& reason) {
      if (state.count(TrialState::running) == 0) {
        if (auto f = finish_condition(state, experiment)) append(finish_record(*f));
        else append(finish_record({ExperimentState::succeeded, reason}));
      }
    };
    if (state.counted() >= trial_budget(experiment)) {
      finish_if_idle("MaxTrialsReached: all " + std::to_string(state.counted()) + " trials ended");
      return;
    }
    int id = static_cast<int>(state.trials.size());
    auto point = make_sampler(experiment, state.seed)->suggest(id, history_of(state, experiment));
    if (!point) {
      finish_if_idle("SearchSpaceExhausted: every point of the space was tried");
      return;
    }
    json::Value params = json::Value::object();
    for (auto& [name, value] : to_assignment(experiment, *point)) params.set(name, value);
    json::Value r = json::Value::object();
    r.set("type", "claim");
    r.set("trial", id);
    r.set("parameters", std::move(params));
    r.set("host", host_name());
    r.set("pid", static_cast<long>(::getpid()));
    if (!job.empty()) r.set("job", job);
    append(std::move(r));
    claimed = id;
  });
  return claimed;
}

namespace {

// A claimed trial being run: what each of its phases works with.
struct RunningTrial {
  Journal& journal;
  const Experiment& experiment;
  int id;
  fs::path dir;  // <experiment>/trials/<id>, absolute
  Assignment parameters;
  std::vector<std::string> env;  // what the trial's environment adds
  MetricCollector metrics;
  fs::path metrics_file;  // a File collector's file; empty: the output is read
};

// The trial's directory, and its parameters and environment from the journal.
RunningTrial prepare_trial(Journal& journal, const Experiment& experiment, int id) {
  const fs::path dir = fs::absolute(journal.dir());
  RunningTrial trial{journal, experiment, id, dir / "trials" / std::to_string(id), {}, {},
                     MetricCollector(experiment.objective, experiment.metrics), {}};
  make_directories(trial.dir.string(), 0700);
  if (!experiment.metrics.file.empty()) {
    // Each Katib trial has a file system of its own; here a file left by an earlier trial
    // would count for this one.
    trial.metrics_file = trial.dir / experiment.metrics.file;
    std::error_code ignored;
    fs::remove(trial.metrics_file, ignored);
    make_directories(trial.metrics_file.parent_path().string(), 0700);
  }
  {
    JournalState state = journal.read();
    const Trial* t = state.find(id);
    if (!t) throw Error(dir.string() + ": the journal has no trial " + std::to_string(id));
    trial.parameters = t->parameters;
  }
  trial.env = experiment.environment_for(trial.parameters);
  trial.env.push_back("COHORT_TRIAL_ID=" + std::to_string(id));
  trial.env.push_back("COHORT_SWEEP_DIR=" + dir.string());
  trial.env.push_back("COHORT_TRIAL_DIR=" + trial.dir.string());
  if (!trial.metrics_file.empty()) trial.env.push_back("COHORT_METRICS_FILE=" + trial.metrics_file.string());
  return trial;
}

// The trial's stdout in stdout.log, written a piece at a time. The output is kept as far as
// the disk allows; a log that cannot be written is given up rather than failing a trial
// that ran.
class OutputLog {
 public:
  explicit OutputLog(fs::path path)
      : path_(std::move(path)), fd_(::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) {}

  void add(std::string_view line) {
    pending_.append(line);
    pending_ += '\n';
  }
  void flush() {
    if (fd_ && !pending_.empty()) {
      try {
        write_all(fd_.get(), pending_, path_.string());
      } catch (const Error&) {
        fd_.reset();
      }
    }
    pending_.clear();
  }

 private:
  fs::path path_;
  Fd fd_;
  std::string pending_;
};

// Stops the trial's process group: SIGTERM first, then SIGKILL if it is still there ten
// seconds on.
class GroupStop {
 public:
  explicit GroupStop(Process& child) : child_(child) {}
  void begin() {
    child_.signal_group(SIGTERM);
    deadline_ = Clock::now() + std::chrono::seconds(10);
  }
  // Called at least every 200 ms while the trial runs.
  void tick() {
    if (deadline_ && Clock::now() > *deadline_) {
      child_.signal_group(SIGKILL);
      deadline_.reset();
    }
  }

 private:
  Process& child_;
  std::optional<Clock::time_point> deadline_;
};

// The succeeded trials' curves, for the stopper; read again only when the journal has grown
// since.
CompletedCurves completed_curves(Journal& journal) {
  struct Cache {
    std::vector<Curve> curves;
    std::optional<std::uintmax_t> at;
  };
  return [&journal, cache = std::make_shared<Cache>()]() -> const std::vector<Curve>& {
    if (const auto size = journal.size(); size != cache->at) {
      cache->curves.clear();
      for (const auto& t : journal.read().trials) {
        if (t.state == TrialState::succeeded) cache->curves.push_back(t.curve);
      }
      cache->at = size;
    }
    return cache->curves;
  };
}

// A File collector's file, read as the trial writes it; it need not exist yet.
class MetricsFile {
 public:
  explicit MetricsFile(fs::path path) : path_(std::move(path)) {}

  template <class Take>
  void read(Take&& take) {
    if (path_.empty()) return;
    if (!fd_) fd_ = Fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    char chunk[65536];
    ssize_t n;
    while (fd_ && (n = ::read(fd_.get(), chunk, sizeof chunk)) > 0) lines_.feed(std::string_view(chunk, static_cast<size_t>(n)), take);
  }
  template <class Take>
  void finish(Take&& take) {
    read(take);
    lines_.finish(take);
  }

 private:
  fs::path path_;
  Fd fd_;
  LineSplitter lines_;
};

// Reads the trial's stdout and stderr until it closes both: each line is kept in its log and
// handed to `take`; `tick` runs before every wait for more, at least every 200 ms.
template <class Take, class Tick>
void read_output(Process& child, OutputLog& out_log, OutputLog& err_log, Take&& take, Tick&& tick) {
  struct Source {
    Fd& fd;
    OutputLog& log;
    LineSplitter lines;
  };
  Source sources[] = {{child.out(), out_log, {}}, {child.err(), err_log, {}}};
  while (sources[0].fd || sources[1].fd) {
    tick();
    pollfd p[2];
    for (int i = 0; i < 2; ++i) p[i] = {sources[i].fd ? sources[i].fd.get() : -1, POLLIN, 0};
    int ready = ::poll(p, 2, 200);
    if (ready < 0 && errno != EINTR) throw Error(system_message("poll", errno));
    for (int i = 0; ready > 0 && i < 2; ++i) {
      Source& source = sources[i];
      if (!source.fd || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      auto line = [&](std::string_view text) {
        source.log.add(text);
        take(text);
      };
      char chunk[65536];
      ssize_t n = ::read(source.fd.get(), chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        source.fd.reset();
        source.lines.finish(line);
      } else {
        source.lines.feed(std::string_view(chunk, static_cast<size_t>(n)), line);
      }
      source.log.flush();
    }
  }
}

bool died_of_a_signal(const std::optional<int>& status) {
  return status && WIFSIGNALED(*status) && (WTERMSIG(*status) == SIGTERM || WTERMSIG(*status) == SIGKILL);
}

// Whether Slurm is cancelling the job `job` (scancel, an array cancelled whole).
bool job_cancelled(const std::string& job) {
  try {
    RunOptions o;
    o.timeout = std::chrono::seconds(10);
    const auto r = run_process({"scontrol", "show", "job", job, "-o"}, o);
    return r.ok() && r.out.find("JobState=CANCELLED") != std::string::npos;
  } catch (const Error&) {
    return false;
  }
}

// Whether a trial that has ended was stopped from outside. Inside a Slurm job, scancel and
// slurmd signal every process of the step one after another: a trial that died of that
// signal before its runner got its own was stopped from outside too, not a failure of its
// own. The runner's signal may come while it asks Slurm about the job (and end that query,
// which runs in the same step), or a moment after; so it is looked for again after the query,
// and waited for briefly when Slurm does not say the job is cancelled (`scancel --signal`).
bool stopped_from_outside(const std::optional<int>& status, const std::atomic<bool>& stop) {
  if (stop.load()) return true;
  const std::string job = env_or("SLURM_JOB_ID");
  if (job.empty() || !died_of_a_signal(status)) return false;
  if (job_cancelled(job) || stop.load()) return true;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (!stop.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return stop.load();
}

// What running a trial came to.
struct RunResult {
  std::string failure;        // why it could not start; empty when it started
  std::optional<int> status;  // its wait status, when it started
  bool killed = false;        // stopped from outside
  std::string early_reason;   // why its stopper stopped it
};

// Watches the started trial to its end: its output goes to the log and to the metrics, the
// stopper is asked after each intermediate value, and `stop` set from outside stops it too.
RunResult watch_trial(RunningTrial& trial, Process& child, OutputLog& log, OutputLog& err_log, const std::atomic<bool>& stop) {
  RunResult result;
  const std::unique_ptr<Stopper> stopper = make_stopper(trial.experiment);
  const CompletedCurves completed = completed_curves(trial.journal);
  GroupStop group(child);
  auto take = [&](std::string_view line) {
    if (!trial.metrics.feed(line) || !stopper || !result.early_reason.empty() || result.killed) return;
    if (auto why = stopper->should_stop(trial.metrics.curve(), completed)) {
      result.early_reason = *why;
      group.begin();
    }
  };
  // A File collector reads only its file, as Katib's does; the output is only logged.
  MetricsFile file(trial.metrics_file);
  const bool from_output = trial.metrics_file.empty();
  auto tick = [&] {
    file.read(take);
    if (stop.load() && !result.killed && result.early_reason.empty()) {
      result.killed = true;
      group.begin();
    }
    group.tick();
  };
  read_output(child, log, err_log, [&](std::string_view line) {
    if (!from_output) return;
    if (!trial.experiment.metrics_from_rank_0) return take(line);
    // srun labels each line with its task, padded to the widest: rank 0's are the primary's.
    const auto at = line.find_first_not_of(' ');
    if (at != std::string_view::npos && line.substr(at).starts_with("0: ")) take(line.substr(at + 3));
  }, tick);
  file.finish(take);
  // Whatever the trial left running in its group goes with it.
  result.status = child.wait_and_kill_group();
  if (result.early_reason.empty() && stopped_from_outside(result.status, stop)) result.killed = true;
  return result;
}

// Starts the trial and watches it to its end.
RunResult start_and_watch(RunningTrial& trial, const std::atomic<bool>& stop) {
  OutputLog log(trial.dir / "stdout.log");
  OutputLog err_log(trial.dir / "stderr.log");
  std::optional<Process> child;
  try {
    const auto argv = trial.experiment.command_for(trial.parameters);
    child.emplace(spawn_trial(argv, environment_with(trial.env)));
  } catch (const Error& e) {
    RunResult result;
    result.failure = e.what();
    return result;
  }
  return watch_trial(trial, *child, log, err_log, stop);
}

// Lines reported with `cohort sweep report` count after the trial's stdout.
void collect_reports(RunningTrial& trial) {
  JournalState state = trial.journal.read();
  if (const Trial* t = state.find(trial.id)) {
    for (const auto& line : t->reports) trial.metrics.feed(line);
  }
}

struct Ending {
  TrialState state = TrialState::succeeded;
  std::string reason;
};

// How the trial ended, the first of: it could not start, it was stopped from outside or
// early, it exited other than 0, it reported no objective.
Ending finish_trial(const RunningTrial& trial, const RunResult& result) {
  if (!result.failure.empty()) return {TrialState::failed, result.failure};
  if (result.killed) return {TrialState::killed, "stopped from outside (a signal to its runner)"};
  if (!result.early_reason.empty()) return {TrialState::early_stopped, result.early_reason};
  const int status = result.status.value_or(0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return {TrialState::failed, describe_exit(status, trial.dir)};
  const std::string& metric = trial.experiment.objective.metric;
  if (!trial.metrics.value(metric)) {
    const auto& seen = trial.metrics.names_seen();
    const std::string where = trial.metrics_file.empty() ? "on stdout or stderr" : "in " + trial.metrics_file.string();
    return {TrialState::failed, "the trial reported no value of its objective metric '" + metric + "'" +
                                    (seen.empty() ? std::string(" (it reported no metric at all)")
                                                  : " (it reported: " + join(seen, ", ") + ")") +
                                    "; print '" + metric + "=<value>' " + where + ", or run 'cohort sweep report " + metric +
                                    "=<value>'"};
  }
  return {};
}

json::Value end_record(const RunningTrial& trial, const RunResult& result, const Ending& ending) {
  json::Value record = json::Value::object();
  record.set("type", "end");
  record.set("trial", trial.id);
  record.set("state", to_string(ending.state));
  if (!ending.reason.empty()) record.set("reason", ending.reason);
  if (auto objective = trial.metrics.value(trial.experiment.objective.metric)) record.set("objective", *objective);
  json::Value m = json::Value::object();
  for (const auto& [name, v] : trial.metrics.final_metrics()) m.set(name, v);
  record.set("metrics", std::move(m));
  json::Value curve = json::Value::array();
  for (const auto& [s, v] : trial.metrics.curve()) curve.push(json::Value(json::Array{json::Value(s), json::Value(v)}));
  record.set("curve", std::move(curve));
  if (const auto status = result.status) {
    record.set("exit", WIFEXITED(*status) ? WEXITSTATUS(*status) : 128 + WTERMSIG(*status));
  }
  return record;
}

// Appends the trial's end, and the experiment's when this trial ended it.
TrialOutcome record_end(RunningTrial& trial, const json::Value& record, TrialState state) {
  TrialOutcome outcome;
  outcome.state = state;
  trial.journal.transact([&](const JournalState& now, const Journal::Append& append) {
    JournalState after = now;
    json::Value r = record;
    r.set("time", wall_now());
    apply_record(after, r);
    append(std::move(r));
    if (auto f = finish_condition(after, trial.experiment)) {
      append(finish_record(*f));
      outcome.ended_experiment = true;
    }
  });
  return outcome;
}

}  // namespace

TrialOutcome run_trial(Journal& journal, const Experiment& experiment, int trial, const std::atomic<bool>& stop) {
  RunningTrial running = prepare_trial(journal, experiment, trial);
  const RunResult result = start_and_watch(running, stop);
  collect_reports(running);
  const Ending ending = finish_trial(running, result);
  TrialOutcome outcome = record_end(running, end_record(running, result, ending), ending.state);
  record_trial_lineage(journal, experiment, trial);
  return outcome;
}

int run_local(const fs::path& dir, const Experiment& experiment, const std::atomic<bool>& stop, bool progress) {
  Journal journal(dir);
  std::mutex mutex;
  std::exception_ptr error;
  auto worker = [&]() {
    try {
      while (!stop.load()) {
        auto id = claim_trial(journal, experiment, "");
        if (!id) break;
        auto outcome = run_trial(journal, experiment, *id, stop);
        if (progress) {
          std::lock_guard<std::mutex> lock(mutex);
          std::cerr << "trial " << *id << ": " << to_string(outcome.state) << "\n";
        }
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex);
      if (!error) error = std::current_exception();
    }
  };
  std::vector<std::thread> workers;
  for (int i = 0; i < experiment.parallel_trial_count; ++i) workers.emplace_back(worker);
  for (auto& w : workers) w.join();
  if (error) std::rethrow_exception(error);
  JournalState state = journal.read();
  if (state.state == ExperimentState::running) {
    if (stop.load()) {
      std::cerr << "cohort: sweep: stopped; continue with 'cohort sweep resume " << dir.string() << "'\n";
    } else {
      std::cerr << "cohort: sweep: " << state.count(TrialState::running)
                << " trials are still marked Running by another runner; when none is left, 'cohort sweep resume "
                << dir.string() << "' continues\n";
    }
    return 1;
  }
  std::cerr << "experiment " << experiment.name << ": " << to_string(state.state) << " (" << state.reason << ")\n";
  return state.state == ExperimentState::succeeded ? 0 : 1;
}

int run_array_task(const fs::path& dir, const std::atomic<bool>& stop) {
  Experiment experiment = open_experiment_dir(dir);
  Journal journal(dir);
  std::string array = env_or("SLURM_ARRAY_JOB_ID");
  std::string job = array.empty() ? env_or("SLURM_JOB_ID") : array + "_" + env_or("SLURM_ARRAY_TASK_ID");
  auto id = claim_trial(journal, experiment, job);
  if (!id) {
    JournalState state = journal.read();
    std::cout << "experiment " << experiment.name << ": nothing left to run (" << to_string(state.state)
              << (state.reason.empty() ? "" : ": " + state.reason) << ")\n";
    return 0;
  }
  std::cout << "experiment " << experiment.name << ": running trial " << *id << "\n" << std::flush;
  auto outcome = run_trial(journal, experiment, *id, stop);
  std::cout << "trial " << *id << ": " << to_string(outcome.state) << "\n";
  if (outcome.ended_experiment) {
    if (array.empty()) array = journal.read().array_job;
    // Tasks that start anyway find the experiment ended and exit at once.
    if (!array.empty()) {
      try {
        run_process({"scancel", "--state=PENDING", array});
      } catch (const Error& e) {
        std::cerr << "cohort: sweep: cannot cancel the array's pending tasks: " << e.what() << "\n";
      }
    }
  }
  return outcome.state == TrialState::succeeded || outcome.state == TrialState::early_stopped ? 0 : 1;
}

int reclaim_abandoned(Journal& journal) {
  int reclaimed = 0;
  const std::string me = host_name();
  journal.transact([&](const JournalState& state, const Journal::Append& append) {
    for (const auto& t : state.trials) {
      if (t.state != TrialState::running) continue;
      bool alive = false;
      if (!t.job.empty()) {
        const auto known = slurm_job_alive(t.job);
        if (!known) {
          std::cerr << "cohort: sweep: Slurm cannot say whether trial " << t.id << "'s job " << t.job
                    << " still runs; it stays running\n";
        }
        alive = known.value_or(true);
      } else if (t.host == me && t.pid > 0) {
        alive = ::kill(static_cast<pid_t>(t.pid), 0) == 0 || errno == EPERM;
      }
      if (alive) continue;
      json::Value r = json::Value::object();
      r.set("type", "end");
      r.set("trial", t.id);
      r.set("state", "Killed");
      r.set("reason", "its runner stopped before it ended (reclaimed on resume)");
      append(std::move(r));
      ++reclaimed;
    }
  });
  return reclaimed;
}

std::string array_script(const Experiment& experiment, const fs::path& dir, const std::string& cohort_path, int tasks) {
  const fs::path abs = fs::absolute(dir);
  const int budget = tasks > 0 ? tasks : trial_budget(experiment);
  std::ostringstream out;
  out << "#!/bin/bash\n";
  out << "#SBATCH --job-name=" << experiment.name << "\n";
  out << "#SBATCH --array=0-" << budget - 1 << "%" << experiment.parallel_trial_count << "\n";
  out << "#SBATCH --output=" << shell_quote((abs / "slurm" / "%A_%a.out").string()) << "\n";
  const TrialResources& r = experiment.resources;
  out << "#SBATCH " << (r.nodes > 0 ? "--nodes=" + std::to_string(r.nodes) + " " : "") << "--ntasks=" << r.ntasks
      << " --cpus-per-task=" << r.cpus_per_task << "\n";
  if (r.gpus > 0) out << "#SBATCH --gpus=" << r.gpus << "\n";
  if (!r.time.empty()) out << "#SBATCH --time=" << r.time << "\n";
  out << "# Each task claims its trial from the journal when it starts (cohort sweep task).\n";
  out << "exec " << shell_quote(cohort_path) << " sweep task " << shell_quote(abs.string()) << "\n";
  return out.str();
}

}  // namespace cohort::tuner
