// What a run's directory, and Slurm while its jobs are queued, say about it.
#include <signal.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "common/environment.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/json.hpp"
#include "common/process.hpp"
#include "common/text.hpp"
#include "pipeline/run.hpp"
#include "pipeline/run_dir.hpp"

namespace cohort::pipeline {
namespace {

struct SlurmJob {
  std::string state, reason;
};

// squeue's view of the jobs, by id; empty when Slurm does not answer.
std::map<std::string, SlurmJob> squeue(const std::vector<std::string>& ids) {
  std::map<std::string, SlurmJob> out;
  if (ids.empty() || !find_program("squeue")) return out;
  const auto r = run_process({"squeue", "-h", "--states=all", "-j", join(ids, ","), "-o", "%i|%T|%r"});
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    const auto f = split(line, '|');
    if (f.size() == 3) out[std::string(f[0])] = {std::string(f[1]), std::string(f[2])};
  }
  return out;
}

bool ended_well(const std::string& s) { return s == "succeeded" || s == "cached"; }
bool ended_badly(const std::string& s) { return s == "failed" || s == "skipped" || s == "cancelled"; }

// A task without a state file of its own: what its upstream tasks and Slurm say.
void infer(TaskStatus& s, const std::map<std::string, std::string>& states, const std::map<std::string, SlurmJob>& queue,
           bool cancelled) {
  if (cancelled) {
    s.state = "cancelled";
    return;
  }
  for (const auto& a : s.after) {
    const auto it = states.find(a);
    if (it != states.end() && ended_badly(it->second)) {
      s.state = "skipped";
      s.reason = "upstream task " + a + " did not succeed";
      return;
    }
  }
  const auto q = queue.find(s.job);
  if (q != queue.end()) {
    if (q->second.state == "PENDING") s.slurm_reason = q->second.reason;
    if (q->second.state == "RUNNING") s.state = "running";
    if (q->second.state == "CANCELLED") s.state = "cancelled";
    if (q->second.state == "FAILED" || q->second.state == "TIMEOUT" || q->second.state == "NODE_FAIL" ||
        q->second.state == "OUT_OF_MEMORY") {
      s.state = "failed";
      s.reason = "Slurm ended job " + s.job + ": " + q->second.state;
    }
  }
}

std::string overall(const RunStatus& r, bool cancelled) {
  if (cancelled) return "Cancelled";
  bool bad = false;
  for (const auto& t : r.tasks) {
    if (!ended_well(t.state) && !ended_badly(t.state)) return "Running";
    bad = bad || ended_badly(t.state);
  }
  return bad ? "Failed" : "Succeeded";
}

std::string mark(const std::string& state) {
  if (state == "succeeded") return "[ok]    ";
  if (state == "cached") return "[cached]";
  if (state == "running") return "[run]   ";
  if (state == "retrying") return "[retry] ";
  if (state == "failed") return "[FAILED]";
  if (state == "skipped") return "[skip]  ";
  if (state == "cancelled") return "[cancel]";
  return "[wait]  ";
}

}  // namespace

fs::path find_run(const fs::path& root, const std::string& run) {
  std::error_code ec;
  if (fs::exists(fs::path(run) / "run.json", ec)) return fs::absolute(run);
  if (is_object_name(run) && fs::exists(root / "runs" / run / "run.json", ec)) return root / "runs" / run;
  throw input_error("no pipeline run '" + run + "' (neither a run's directory nor a run in " + (root / "runs").string() +
                    "; 'cohort pipeline list' shows them)");
}

RunStatus read_status(const fs::path& dir) {
  const RunRecord rec = read_record(dir);
  const auto jobs = read_jobs(dir);
  std::error_code ec;
  const bool cancelled = fs::exists(dir / "cancelled", ec);
  RunStatus r{rec.run, rec.pipeline.name, rec.mode, "", dir, rec.created, {}, rec.pipeline.notes};
  std::vector<std::string> names, ask;
  for (const auto& t : rec.pipeline.tasks) names.push_back(t.name);
  const auto recorded = read_task_states(dir, names);
  for (const auto& t : rec.pipeline.tasks) {
    const auto st = recorded.find(t.name);
    const auto j = jobs.find(t.name);
    if (j != jobs.end() && (st == recorded.end() || !ended_well(st->second.state))) ask.push_back(j->second);
  }
  const auto queue = rec.mode == "slurm" ? squeue(ask) : std::map<std::string, SlurmJob>{};
  std::map<std::string, std::string> states;
  for (const auto& t : rec.pipeline.tasks) {
    TaskStatus s;
    if (const auto st = recorded.find(t.name); st != recorded.end()) s = st->second;
    s.name = t.name;
    s.after = t.after;
    s.max_retries = t.max_retries;
    if (s.log.empty()) s.log = log_path(dir, t.name).string();
    if (const auto j = jobs.find(t.name); j != jobs.end() && s.job.empty()) s.job = j->second;
    if (s.state == "pending") {
      infer(s, states, queue, cancelled);
    } else if ((s.state == "running" || s.state == "retrying") && cancelled) {
      s.state = "cancelled";
    } else if (s.state == "running" && rec.mode == "slurm" && !queue.empty()) {
      const auto q = queue.find(s.job);
      if (q != queue.end() && q->second.state != "RUNNING" && q->second.state != "COMPLETING" &&
          q->second.state != "COMPLETED") {
        s.state = q->second.state == "CANCELLED" ? "cancelled" : "failed";
        s.reason = "Slurm ended job " + s.job + ": " + q->second.state;
      }
    }
    states[s.name] = s.state;
    r.tasks.push_back(std::move(s));
  }
  r.state = overall(r, cancelled);
  return r;
}

std::vector<RunStatus> list_runs(const fs::path& root) {
  std::vector<RunStatus> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root / "runs", ec)) {
    if (!fs::exists(e.path() / "run.json", ec)) continue;
    try {
      out.push_back(read_status(e.path()));
    } catch (const Error&) {
      // a run being created, or damaged: the others are still listed
    }
  }
  std::sort(out.begin(), out.end(), [](const RunStatus& a, const RunStatus& b) { return a.created > b.created; });
  return out;
}

int cancel_run(const fs::path& dir) {
  const RunRecord rec = read_record(dir);
  write_file_atomically(dir / "cancelled", "cancelled\n");
  if (rec.mode == "local") {
    std::error_code ec;
    if (!fs::exists(dir / "driver.json", ec)) return 0;
    const auto d = json::parse(read_text(dir / "driver.json"), (dir / "driver.json").string());
    if (d.at("host").as_string() != host_name()) {
      throw Error("run " + rec.run + " runs on " + d.at("host").as_string() + ": cancel it there");
    }
    ::kill(static_cast<pid_t>(d.at("pid").as_int()), SIGTERM);
    return 0;
  }
  std::vector<std::string> argv{"scancel"};
  const auto jobs = read_jobs(dir);
  for (const auto& [t, j] : jobs) {
    const auto st = read_task_state(dir, t);
    if (!st || !ended_well(st->state)) argv.push_back(j);
  }
  if (argv.size() == 1) return 0;
  const auto r = run_process(argv);
  if (!r.ok()) throw Error("scancel failed: " + r.err);
  return static_cast<int>(argv.size() - 1);
}

std::string draw(const RunStatus& r) {
  std::map<std::string, int> depth;
  std::ostringstream out;
  out << "run " << r.run << " (" << r.pipeline << ", " << r.mode << "): " << r.state << "\n";
  for (const auto& t : r.tasks) {
    int d = 0;
    for (const auto& a : t.after) d = std::max(d, depth[a] + 1);
    depth[t.name] = d;
    out << "  " << mark(t.state) << " " << std::string(2 * d, ' ') << (d ? "└─ " : "") << t.name;
    if (!t.job.empty()) out << "  job " << t.job;
    if (t.attempt > 0) out << "  attempt " << t.attempt + 1 << "/" << t.max_retries + 1;
    if (t.started > 0 && t.ended >= t.started && t.state != "cached") {
      out << "  " << std::round((t.ended - t.started) * 10) / 10 << "s";
    }
    if (!t.after.empty()) out << "  ◄ " << join(t.after, ", ");
    if (!t.slurm_reason.empty() && t.slurm_reason != "None") out << "  (" << t.slurm_reason << ")";
    out << "\n";
  }
  for (const auto& t : r.tasks) {
    if (t.state == "failed") out << "task " << t.name << " failed: " << t.reason << "; its log: " << t.log << "\n";
  }
  for (const auto& n : r.notes) out << "note: " << n << "\n";
  return out.str();
}

json::Value status_json(const RunStatus& r) {
  json::Value o = json::Value::object();
  o.set("run", r.run);
  o.set("pipeline", r.pipeline);
  o.set("mode", r.mode);
  o.set("state", r.state);
  o.set("dir", r.dir.string());
  o.set("created", r.created);
  json::Value tasks = json::Value::array();
  for (const auto& t : r.tasks) {
    json::Value j = json::Value::object();
    j.set("task", t.name);
    j.set("state", t.state);
    json::Value after = json::Value::array();
    for (const auto& a : t.after) after.push(a);
    j.set("after", std::move(after));
    j.set("job", t.job.empty() ? json::Value() : json::Value(t.job));
    j.set("attempt", t.attempt);
    j.set("fingerprint", t.fingerprint.empty() ? json::Value() : json::Value(t.fingerprint));
    j.set("reason", t.reason.empty() ? json::Value() : json::Value(t.reason));
    j.set("log", t.log);
    // Wall-clock seconds since the epoch; null until the task has started (or ended).
    j.set("started", t.started > 0 ? json::Value(t.started) : json::Value());
    j.set("ended", t.ended > 0 ? json::Value(t.ended) : json::Value());
    j.set("outputs", outputs_json(t.outputs));
    tasks.push(std::move(j));
  }
  o.set("tasks", std::move(tasks));
  json::Value notes = json::Value::array();
  for (const auto& n : r.notes) notes.push(n);
  o.set("notes", std::move(notes));
  return o;
}

}  // namespace cohort::pipeline
