// Launch overhead of `cohort launch` against plain srun, in the same allocation:
//   start-up   time from the launch command to every rank running user code
//   teardown   time from one rank's failure to the last rank of the gang gone
// One batch job does all the measuring, so both launchers see the same allocation; each
// rank stamps the wall clock, which the nodes share.
#include "launcher/bench.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <regex>
#include <sstream>

#include "common/bench.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/options.hpp"
#include "common/process.hpp"
#include "launcher/agent_bench.hpp"

namespace cohort::launcher {
namespace {

namespace fs = std::filesystem;
namespace po = options::po;

// The batch job: REPEAT times, a step of srun alone and a step of `cohort launch` alone,
// each rank writing the time it started; then a gang whose rank 1 fails, for the
// supervisor's "gang torn down in … s". @WORK@, @REPEAT@ and @COHORT@ are filled in.
constexpr const char* kJob = R"job(#!/bin/bash
set -e
cd "@WORK@"
now() { date +%s%N; }
for i in $(seq @REPEAT@); do
  rm -f t.*; t0=$(now); srun bash -c 'date +%s%N >"@WORK@/t.$SLURM_PROCID"'
  echo "srun $(( $(cat t.* | sort -n | tail -1) - t0 ))" >>results
  rm -f t.*; t0=$(now); "@COHORT@" launch -- bash -c 'date +%s%N >"@WORK@/t.$RANK"' 2>/dev/null
  echo "cohort $(( $(cat t.* | sort -n | tail -1) - t0 ))" >>results
  "@COHORT@" launch -- bash -c '[ "$RANK" = 1 ] && exit 3; exec sleep 600' 2>>teardown.log || true
done
)job";

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size()) text.replace(at, from.size(), to);
  return text;
}

// The bench's own directory and batch job: the job cancelled if it still runs, and the
// directory removed unless kept, however the bench ends.
class Work {
 public:
  explicit Work(bool keep) : keep_(keep) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/cohort-launch-bench.XXXXXX";
    if (!::mkdtemp(templ.data())) throw Error(system_message("mkdtemp " + templ, errno));
    path_ = templ;
    // The job runs as this user on other nodes' shells, which read it from there.
    fs::permissions(path_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                               fs::perms::others_read | fs::perms::others_exec);
  }
  ~Work() {
    if (!job_.empty()) run_process({"scancel", job_});
    std::error_code ec;
    if (!keep_) fs::remove_all(path_, ec);
  }
  Work(const Work&) = delete;
  Work& operator=(const Work&) = delete;

  const fs::path& path() const { return path_; }
  void submitted(std::string job) { job_ = std::move(job); }
  void ended() { job_.clear(); }

 private:
  fs::path path_;
  std::string job_;
  bool keep_;
};

struct Settings {
  int nodes = 2;
  int per_node = 2;
  int repeat = 7;
  std::string cohort;
  bool keep = false;
  bool json = false;
};

// Ctrl-C and TERM, held while the job runs and taken between polls of squeue: the bench
// then ends through its destructors, which cancel the job and remove the directory.
class HeldSignals {
 public:
  HeldSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~HeldSignals() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  HeldSignals(const HeldSignals&) = delete;
  HeldSignals& operator=(const HeldSignals&) = delete;

  // Waits half a second; true when one of the signals came meanwhile.
  bool came() const {
    const timespec half{0, 500'000'000};
    return sigtimedwait(&set_, nullptr, &half) > 0;
  }

 private:
  sigset_t set_{}, old_{};
};

void wait_for(const std::string& job) {
  const HeldSignals signals;
  while (true) {
    const auto r = run_process({"squeue", "-h", "-j", job});
    if (r.out.find_first_not_of(" \t\n") == std::string::npos) return;
    if (signals.came()) throw Error("interrupted while job " + job + " ran; it is cancelled");
  }
}

// Runs the batch job and returns its results file and the supervisors' teardown log.
std::pair<std::string, std::string> run_job(const Settings& s, Work& work) {
  const fs::path script = work.path() / "job.sh";
  std::string job_text = replace_all(kJob, "@WORK@", work.path().string());
  job_text = replace_all(job_text, "@REPEAT@", std::to_string(s.repeat));
  write_file_atomically(script, replace_all(job_text, "@COHORT@", s.cohort));
  const auto r = run_process({"sbatch", "--parsable", "-N", std::to_string(s.nodes),
                              "--ntasks-per-node=" + std::to_string(s.per_node), "-o", (work.path() / "job.out").string(),
                              script.string()});
  if (!r.ok()) throw Error("sbatch failed: " + (r.err.empty() ? r.out : r.err));
  const std::string job = r.out.substr(0, r.out.find_first_of(";\n"));
  work.submitted(job);
  wait_for(job);
  work.ended();
  const auto results = read_file((work.path() / "results").string());
  if (!results || results->empty()) {
    throw Error("the job produced no results: " + read_file((work.path() / "job.out").string()).value_or(""));
  }
  return {*results, read_file((work.path() / "teardown.log").string()).value_or("")};
}

// Milliseconds, one sample a line "LAUNCHER NANOSECONDS" of the results, per launcher.
std::vector<double> samples(const std::string& results, const std::string& launcher) {
  std::vector<double> ms;
  std::istringstream in(results);
  std::string name;
  double ns = 0;
  while (in >> name >> ns) {
    if (name == launcher) ms.push_back(ns / 1e6);
  }
  return ms;
}

std::vector<double> teardown_ms(const std::string& log) {
  std::vector<double> ms;
  static const std::regex line("gang torn down in ([0-9.]+) s");
  for (std::sregex_iterator it(log.begin(), log.end(), line), end; it != end; ++it) {
    ms.push_back(std::stod((*it)[1].str()) * 1e3);
  }
  return ms;
}

options::Parser make_parser(Settings& s) {
  options::Parser parser(
      {"bench launch",
       {"[--nodes 2] [--ranks-per-node 2] [--repeat 7] [--cohort PATH] [--keep] [--json]"},
       "Submits one batch job that starts a step of plain srun and a step of `cohort launch`\n"
       "REPEAT times each, and times from the launch command to the moment the last rank runs\n"
       "user code; then makes one rank of a `cohort launch` gang fail and reads the supervisor's\n"
       "\"gang torn down in … s\": from the failed rank's end to the last rank gone. Needs a\n"
       "Slurm cluster; the mini-cluster will do. With --simulate (see --simulate --help), a gang\n"
       "of simulated nodes and ranks on loopback measures the supervisor itself, without Slurm.",
       {"scripts/minicluster up && eval \"$(scripts/minicluster env)\"", "cohort bench launch --repeat 11",
        "cohort bench launch --simulate --agents 64 --ranks-per-agent 64"}});
  parser.add()("nodes", po::value(&s.nodes)->value_name("N"), "nodes of the batch job (2)")(
      "ranks-per-node", po::value(&s.per_node)->value_name("N"), "ranks on each node (2)")(
      "repeat", po::value(&s.repeat)->value_name("N"), "launches of each kind; figures are medians (7)")(
      "cohort", po::value(&s.cohort)->value_name("PATH"), "the cohort that the job launches (the one beside this)")(
      "keep", po::bool_switch(&s.keep), "leave the job's directory, with its script and results")(
      "json", po::bool_switch(&s.json), "print one JSON object instead of the table");
  return parser;
}

void check(Settings& s) {
  if (s.nodes < 1 || s.per_node < 1 || s.repeat < 1) {
    throw input_error("--nodes, --ranks-per-node and --repeat must be at least 1");
  }
  if (s.cohort.empty()) s.cohort = cohort_executable();
  if (::access(s.cohort.c_str(), X_OK) != 0) {
    throw input_error("--cohort " + s.cohort + ": not an executable (build cohort, or name it with --cohort)");
  }
  const char* conf = std::getenv("SLURM_CONF");
  if ((!conf || !*conf) && !run_process({"sinfo", "-h"}).ok()) {
    throw input_error("no Slurm cluster here (start one: scripts/minicluster up && eval \"$(scripts/minicluster env)\")");
  }
}

}  // namespace

int bench_command(const std::vector<std::string>& args) {
  if (std::find(args.begin(), args.end(), "--simulate") != args.end()) return simulated_bench(args);
  Settings s;
  if (!make_parser(s).parse(args)) return 0;
  check(s);
  Work work(s.keep);
  const auto [results, log] = run_job(s, work);

  bench::Report report("launch");
  report.context("nodes", s.nodes);
  report.context("ranks_per_node", s.per_node);
  report.context("ranks", s.nodes * s.per_node);
  report.context("repeat", s.repeat);
  if (s.keep) report.context("kept", work.path().string());
  auto& table = report.table("launch", "medians of the launches, against plain srun in the same allocation",
                             {{.name = "measure", .text = true},
                              {.name = "median", .unit = "ms", .digits = 1},
                              {.name = "spread", .unit = "%", .digits = 1},
                              {.name = "ratio", .digits = 2}});
  const auto srun_ms = samples(results, "srun"), cohort_ms = samples(results, "cohort");
  if (srun_ms.empty() || cohort_ms.empty()) throw Error("the job's results time no srun or no cohort launch: " + results);
  const auto srun = bench::summarize(srun_ms);
  const auto cohort = bench::summarize(cohort_ms);
  table.add({"plain srun: start to all running (baseline)", srun.median, 100 * srun.spread(), 1.0});
  table.add({"cohort launch: start to all running", cohort.median, 100 * cohort.spread(),
             bench::number(cohort.median / srun.median)});
  const auto teardown = teardown_ms(log);
  if (teardown.empty()) {
    table.add({"cohort launch: failure to teardown", json::Value(), json::Value(), json::Value()});
  } else {
    const auto t = bench::summarize(teardown);
    table.add({"cohort launch: failure to teardown", t.median, 100 * t.spread(), json::Value()});
  }
  report.print(std::cout, s.json);
  return 0;
}

}  // namespace cohort::launcher
