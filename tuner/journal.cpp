#include "tuner/journal.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <climits>
#include <chrono>
#include <iostream>
#include <utility>

#include "common/error.hpp"
#include "common/fd.hpp"

namespace cohort::tuner {
namespace {

// Holds an exclusive flock for its lifetime. flock serialises both processes and threads:
// each lock holder opens the lock file itself, so each has its own open file description.
class FileLock {
 public:
  explicit FileLock(const std::filesystem::path& path) : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
    if (fd_.get() < 0) throw Error(system_message("open " + path.string(), errno));
    while (::flock(fd_.get(), LOCK_EX) != 0) {
      if (errno != EINTR) throw Error(system_message("flock " + path.string(), errno));
    }
  }
  // Closing the descriptor releases the lock.

 private:
  Fd fd_;
};

std::string read_all(const std::filesystem::path& path) {
  return read_file(path).value_or("");
}

double now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

TrialState state_from(const std::string& s) {
  if (s == "Succeeded") return TrialState::succeeded;
  if (s == "Failed") return TrialState::failed;
  if (s == "EarlyStopped") return TrialState::early_stopped;
  if (s == "Killed") return TrialState::killed;
  return TrialState::running;
}

std::string text_of(const json::Value* v) { return v && v->is_string() ? v->as_string() : ""; }

}  // namespace

const char* to_string(TrialState state) {
  switch (state) {
    case TrialState::running: return "Running";
    case TrialState::succeeded: return "Succeeded";
    case TrialState::failed: return "Failed";
    case TrialState::early_stopped: return "EarlyStopped";
    case TrialState::killed: return "Killed";
  }
  return "?";
}

const char* to_string(ExperimentState state) {
  switch (state) {
    case ExperimentState::running: return "Running";
    case ExperimentState::succeeded: return "Succeeded";
    case ExperimentState::failed: return "Failed";
  }
  return "?";
}

const Trial* JournalState::find(int id) const {
  return id >= 0 && static_cast<size_t>(id) < trials.size() ? &trials[static_cast<size_t>(id)] : nullptr;
}

Trial* JournalState::find(int id) {
  return id >= 0 && static_cast<size_t>(id) < trials.size() ? &trials[static_cast<size_t>(id)] : nullptr;
}

int JournalState::counted() const { return static_cast<int>(trials.size()) - count(TrialState::killed); }

int JournalState::count(TrialState s) const {
  int n = 0;
  for (const auto& t : trials) n += t.state == s;
  return n;
}

const Trial* JournalState::best(const Objective& objective) const {
  const Trial* best = nullptr;
  for (const auto& t : trials) {
    if (t.state != TrialState::succeeded || !t.objective) continue;
    if (!best || objective.better(*t.objective, *best->objective)) best = &t;
  }
  return best;
}

void apply_record(JournalState& state, const json::Value& r) {
  const std::string type = text_of(r.find("type"));
  // Checked before it is narrowed: a record for trial 2^32 is for no trial, not trial 0.
  auto trial_of = [&]() -> Trial* {
    const json::Value* id = r.find("trial");
    if (!id || !id->is_int() || id->as_int() < 0 || id->as_int() >= static_cast<std::int64_t>(state.trials.size())) {
      return nullptr;
    }
    return &state.trials[static_cast<size_t>(id->as_int())];
  };
  if (type == "experiment") {
    state.initialised = true;
    state.name = text_of(r.find("name"));
    if (const auto* s = r.find("seed"); s && s->is_string()) {
      const std::string& text = s->as_string();
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), state.seed);
      if (ec != std::errc() || end != text.data() + text.size()) {
        throw Error("journal: seed '" + text + "' is not a whole number");
      }
    }
  } else if (type == "claim") {
    Trial t;
    t.id = static_cast<int>(state.trials.size());
    if (const auto* p = r.find("parameters"); p && p->is_object()) {
      for (const auto& [k, v] : p->as_object()) t.parameters.emplace_back(k, v.is_string() ? v.as_string() : json::write(v));
    }
    t.started = r.find("time") ? r.at("time").as_double() : 0;
    t.job = text_of(r.find("job"));
    t.host = text_of(r.find("host"));
    t.pid = r.find("pid") ? static_cast<long>(r.at("pid").as_int()) : 0;
    state.trials.push_back(std::move(t));
  } else if (type == "report") {
    if (Trial* t = trial_of()) t->reports.push_back(text_of(r.find("line")));
  } else if (type == "end") {
    Trial* t = trial_of();
    if (!t || t->state != TrialState::running) return;  // the first end of a trial stands
    t->state = state_from(text_of(r.find("state")));
    t->reason = text_of(r.find("reason"));
    t->ended = r.find("time") ? r.at("time").as_double() : 0;
    if (const auto* e = r.find("exit"); e && e->is_int() && e->as_int() >= INT_MIN && e->as_int() <= INT_MAX) {
      t->exit_code = static_cast<int>(e->as_int());
    }
    if (const auto* o = r.find("objective"); o && o->is_number()) t->objective = o->as_double();
    if (const auto* m = r.find("metrics"); m && m->is_object()) {
      for (const auto& [k, v] : m->as_object()) t->metrics.emplace_back(k, v.as_double());
    }
    if (const auto* c = r.find("curve"); c && c->is_array()) {
      for (const auto& point : c->as_array()) {
        if (!point.is_array() || point.as_array().size() != 2) throw Error("journal: a curve point is not [step, value]");
        t->curve.emplace_back(point.as_array()[0].as_int(), point.as_array()[1].as_double());
      }
    }
  } else if (type == "finish") {
    if (state.state != ExperimentState::running) return;
    state.state = text_of(r.find("state")) == "Failed" ? ExperimentState::failed : ExperimentState::succeeded;
    state.reason = text_of(r.find("reason"));
  } else if (type == "resume") {
    state.state = ExperimentState::running;
    state.reason.clear();
  } else if (type == "submit") {
    state.array_job = text_of(r.find("job"));
  }
}

Journal::Journal(std::filesystem::path dir) : dir_(std::move(dir)) {}

std::uintmax_t Journal::size() const {
  std::error_code ec;
  const auto n = std::filesystem::file_size(dir_ / "journal.jsonl", ec);
  return ec ? 0 : n;
}

JournalState Journal::read() const { return parse_journal(read_all(dir_ / "journal.jsonl")); }

JournalState parse_journal(std::string_view text) {
  JournalState state;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) break;  // being written, or cut short: not a record yet
    std::string_view line(text.data() + start, end - start);
    start = end + 1;
    if (line.empty()) continue;
    json::Value record;
    try {
      record = json::parse(line, "journal");
    } catch (const Error&) {
      ++state.damaged_records;
      continue;
    }
    try {
      apply_record(state, record);
    } catch (const Error&) {
      ++state.damaged_records;
    }
  }
  return state;
}

void Journal::transact(const std::function<void(const JournalState&, const Append&)>& work) {
  FileLock lock(dir_ / "journal.lock");
  JournalState state = read();
  std::string pending;
  work(state, [&](json::Value record) {
    if (!record.find("time")) record.set("time", now());
    pending += json::write(record) + "\n";
  });
  if (pending.empty()) return;
  const auto path = dir_ / "journal.jsonl";
  Fd fd(::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  if (fd.get() < 0) throw Error(system_message("open " + path.string(), errno));
  // A record cut short by a crash must not swallow the next one.
  struct stat st {};
  if (::fstat(fd.get(), &st) == 0 && st.st_size > 0) {
    char last = '\n';
    if (::pread(fd.get(), &last, 1, st.st_size - 1) == 1 && last != '\n') pending.insert(pending.begin(), '\n');
  }
  write_all(fd.get(), pending, path.string());
  if (::fsync(fd.get()) != 0) throw Error(system_message("fsync " + path.string(), errno));
  fd.close("close " + path.string());
}

void Journal::append(json::Value record) {
  transact([&](const JournalState&, const Append& add) { add(std::move(record)); });
}

void report_metrics(const std::filesystem::path& dir, int trial, const std::string& line) {
  Journal journal(dir);
  journal.transact([&](const JournalState& state, const Journal::Append& add) {
    const Trial* t = state.find(trial);
    if (!t) throw input_error(dir.string() + ": the experiment has no trial " + std::to_string(trial));
    if (t->state != TrialState::running) {
      throw input_error(dir.string() + ": trial " + std::to_string(trial) + " has ended (" + to_string(t->state) +
                        "); report while it runs");
    }
    json::Value r = json::Value::object();
    r.set("type", "report");
    r.set("trial", trial);
    r.set("line", line);
    add(std::move(r));
  });
}

}  // namespace cohort::tuner
