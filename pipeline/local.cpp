// --local: the DAG run on this machine, each task through the same wrapper a Slurm job runs.
#include <signal.h>
#include <unistd.h>

#include <iostream>
#include <list>
#include <thread>

#include "common/environment.hpp"
#include "common/fd.hpp"
#include "common/json.hpp"
#include "common/process.hpp"
#include "pipeline/run.hpp"
#include "pipeline/run_dir.hpp"

namespace cohort::pipeline {
namespace {

struct Running {
  const Task* task;
  int attempt;
  Process process;
};

class LocalRun {
 public:
  LocalRun(const fs::path& dir, std::string cohort, int parallel)
      : dir_(dir), rec_(read_record(dir)), cohort_(std::move(cohort)), parallel_(parallel) {
    if (parallel_ <= 0) parallel_ = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    for (const auto& t : rec_.pipeline.tasks) {
      const auto st = read_task_state(dir_, t.name);
      if (st && (st->state == "succeeded" || st->state == "cached")) done_[t.name] = st->state;
    }
  }

  int run(const std::atomic<bool>& stop) {
    while (true) {
      if (stop.load()) return cancel();
      start_ready();
      if (running_.empty()) break;
      if (!reap()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    for (const auto& [_, state] : done_) {
      if (state != "succeeded" && state != "cached") return 1;
    }
    return 0;
  }

 private:
  void start(const Task* t, int attempt) {
    SpawnOptions o;
    o.out = Stream::file(log_path(dir_, t->name).string(), true);
    o.err = Stream::same_as_stdout();
    o.own_process_group = true;
    o.in = Stream::null();
    make_directories(task_dir(dir_, t->name).string(), 0755);
    running_.push_back({t, attempt,
                        spawn({cohort_, "pipeline", "exec-task", dir_.string(), t->name, "--attempt", std::to_string(attempt)}, o)});
  }

  // Starts what is ready, while slots are free; a task after a failed one is skipped.
  void start_ready() {
    for (const auto& t : rec_.pipeline.tasks) {
      if (done_.count(t.name) || is_running(t.name)) continue;
      std::string failed;
      bool ready = true;
      for (const auto& a : t.after) {
        const auto it = done_.find(a);
        if (it == done_.end()) ready = false;
        else if (it->second != "succeeded" && it->second != "cached") failed = a;
      }
      if (!failed.empty()) {
        TaskStatus st;
        st.name = t.name;
        st.state = "skipped";
        st.reason = "upstream task " + failed + " did not succeed";
        write_task_state(dir_, st);
        done_[t.name] = "skipped";
        continue;
      }
      if (ready && static_cast<int>(running_.size()) < parallel_) start(&t, 0);
    }
  }

  bool is_running(const std::string& name) const {
    for (const auto& r : running_) {
      if (r.task->name == name) return true;
    }
    return false;
  }

  // Takes in the tasks that ended; true when one did.
  bool reap() {
    bool any = false;
    for (auto it = running_.begin(); it != running_.end();) {
      const auto status = it->process.poll();
      if (!status) {
        ++it;
        continue;
      }
      any = true;
      const Task* t = it->task;
      const int attempt = it->attempt;
      it = running_.erase(it);
      const auto st = read_task_state(dir_, t->name);
      const std::string state = st ? st->state : "failed";
      if (state == "succeeded" || state == "cached") {
        done_[t->name] = state;
        std::cerr << "cohort pipeline: " << t->name << ": " << state << "\n";
      } else if (attempt < t->max_retries) {
        std::cerr << "cohort pipeline: " << t->name << ": failed, retry " << attempt + 1 << " of " << t->max_retries << "\n";
        start(t, attempt + 1);
      } else {
        done_[t->name] = "failed";
        std::cerr << "cohort pipeline: task " << t->name << " failed" << (st ? ": " + st->reason : "")
                  << "; its log: " << log_path(dir_, t->name).string() << "\n";
      }
    }
    return any;
  }

  int cancel() {
    for (auto& r : running_) {
      r.process.signal_group(SIGTERM);
      r.process.wait_and_kill_group();
      TaskStatus st;
      st.name = r.task->name;
      st.state = "cancelled";
      st.attempt = r.attempt;
      st.log = log_path(dir_, st.name).string();
      write_task_state(dir_, st);
    }
    running_.clear();
    write_file_atomically(dir_ / "cancelled", "cancelled\n");
    std::cerr << "cohort pipeline: run " << rec_.run << " cancelled\n";
    return 1;
  }

  fs::path dir_;
  RunRecord rec_;
  std::string cohort_;
  int parallel_;
  std::map<std::string, std::string> done_;  // task → its final state
  std::list<Running> running_;
};

}  // namespace

int run_local(const fs::path& dir, const std::string& cohort, int parallel, const std::atomic<bool>& stop) {
  json::Value driver = json::Value::object();
  driver.set("pid", static_cast<long long>(::getpid()));
  driver.set("host", host_name());
  write_file_atomically(dir / "driver.json", json::write(driver) + "\n");
  LocalRun run(dir, cohort, parallel);
  return run.run(stop);
}

}  // namespace cohort::pipeline
