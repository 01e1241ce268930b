// `cohort bench launch --simulate`: the supervisor's side of a large gang, on loopback.
//
// AGENTS threads stand for the nodes' watchers, each holding RANKS simulated ranks over
// one connection of its own, as one agent per node would. Measured: the supervisor's CPU
// (its thread's alone) in steady state, with its events over TCP (now) and with a poll of
// a run directory of the same gang's files every 100 ms (before, the baseline); then one
// rank fails, the supervisor tells every agent to stop, and the time from the failure to
// every simulated rank reported ended is taken.
#include "launcher/agent_bench.hpp"

#include <dirent.h>
#include <sys/eventfd.h>
#include <sys/resource.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "common/bench.hpp"
#include "common/environment.hpp"
#include "common/error.hpp"
#include "common/options.hpp"
#include "launcher/agent_link.hpp"
#include "launcher/run_dir.hpp"

extern char** environ;

namespace cohort::launcher {
namespace {

namespace po = options::po;
using Clock = std::chrono::steady_clock;

struct Settings {
  int agents = 64;
  int ranks = 64;  // per agent
  double seconds = 5;
  bool json = false;
};

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_THREAD, &u);  // the supervisor's thread: the agents' are not its cost
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// One round of the supervisor's loop: wait up to 100 ms for its watchers' news.
std::vector<RankEvent> pump(EventHub& hub, int timeout_ms = 100) {
  std::vector<pollfd> fds;
  hub.add_poll_fds(fds);
  ::poll(fds.data(), fds.size(), timeout_ms);
  return hub.service();
}

// Entries a listing of `dir` reads: what one readdir pass costs the metadata server.
int list_entries(const std::string& dir) {
  int n = 0;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  while (::readdir(d)) ++n;
  ::closedir(d);
  return n;
}

struct Steady {
  double cpu_percent = 0;
  double metadata_per_poll = 0;
};

// The supervisor's loop for `seconds`; with `poll_dir`, each round also reads the run
// directory as the file-polling supervisor did (its status files and started markers).
Steady steady_state(EventHub& hub, double seconds, const std::string& poll_dir) {
  long long polls = 0, metadata = 0;
  const double cpu0 = cpu_seconds();
  const auto t0 = Clock::now();
  while (std::chrono::duration<double>(Clock::now() - t0).count() < seconds) {
    for (const auto& e : pump(hub)) {
      if (e.kind == RankEvent::Kind::ended) throw Error("a simulated rank ended in steady state");
    }
    if (!poll_dir.empty()) {
      (void)read_outcomes(poll_dir);
      (void)count_started(poll_dir);
      // Two listings of every entry, as the two reads above make.
      metadata += 2 * list_entries(poll_dir);
    }
    ++polls;
  }
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  return {100 * (cpu_seconds() - cpu0) / wall, polls ? static_cast<double>(metadata) / static_cast<double>(polls) : 0};
}

options::Parser make_parser(Settings& s) {
  options::Parser parser({"bench launch --simulate",
                          {"[--agents 64] [--ranks-per-agent 64] [--seconds 5] [--json]"},
                          "A gang of AGENTS x RANKS simulated ranks reporting to a supervisor over loopback,\n"
                          "one connection per agent: the supervisor's CPU in steady state, against the same\n"
                          "loop polling a run directory of the gang's files; one rank's failure to every rank gone.",
                          {"cohort bench launch --simulate --agents 64 --ranks-per-agent 64"}});
  parser.add()("simulate", "simulate the gang on this machine (no Slurm)")(
      "agents", po::value(&s.agents)->value_name("N"), "simulated nodes (64)")(
      "ranks-per-agent", po::value(&s.ranks)->value_name("N"), "ranks on each (64)")(
      "seconds", po::value(&s.seconds)->value_name("S"), "length of each steady-state measurement (5)")(
      "json", po::bool_switch(&s.json), "print one JSON object instead of the table");
  return parser;
}

// One simulated agent: reports its ranks started; when `fail` is signalled, its first rank
// fails; when the supervisor says stop, every rank it still has ends.
void simulated_agent(const std::string& address, const std::string& secret, int first, int ranks, int fail) {
  AgentLink link(address, secret, "sim-" + std::to_string(first));
  for (int r = first; r < first + ranks; ++r) link.started(r);
  int next = first;  // ranks below it have ended
  while (true) {
    pollfd fds[2] = {{link.fd(), POLLIN, 0}, {fail, POLLIN, 0}};
    ::poll(fds, fail >= 0 ? 2 : 1, -1);
    if (fail >= 0 && (fds[1].revents & POLLIN)) {
      RankOutcome o;
      o.rank = next++;
      o.exit_code = 1;
      o.ended_ns = wall_clock_ns();
      link.ended(o);
      fail = -1;
    }
    if (link.told_to_stop()) break;
  }
  for (int r = next; r < first + ranks; ++r) {
    RankOutcome o;
    o.rank = r;
    o.term_signal = 9;
    o.ended_ns = wall_clock_ns();
    link.ended(o);
  }
}

// Starts the simulated agents; each has said every rank started before this returns.
std::vector<std::thread> start_agents(const Settings& s, EventHub& hub, int fail) {
  const std::string address = "127.0.0.1:" + std::to_string(hub.port());
  std::vector<std::thread> agents;
  for (int a = 0; a < s.agents; ++a) {
    agents.emplace_back([address, a, ranks = s.ranks, fail, secret = hub.secret()] {
      try {
        simulated_agent(address, secret, a * ranks, ranks, a == 0 ? fail : -1);
      } catch (const Error& e) {
        std::cerr << "cohort: bench: launch: simulated agent " << a << ": " << e.what() << "\n";
      }
    });
  }
  int started = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (started < s.agents * s.ranks && Clock::now() < deadline) {
    for (const auto& e : pump(hub)) started += e.kind == RankEvent::Kind::started;
  }
  if (started < s.agents * s.ranks) throw Error("only " + std::to_string(started) + " simulated ranks started in 60 s");
  return agents;
}

}  // namespace

// Long: one measurement after another on the same simulated gang, then the report.
int simulated_bench(const std::vector<std::string>& args) {
  Settings s;
  if (!make_parser(s).parse(args)) return 0;
  if (s.agents < 1 || s.ranks < 1 || !(s.seconds > 0)) throw input_error("--agents, --ranks-per-agent and --seconds must be positive");
  EventHub hub(true);
  Fd fail(::eventfd(0, EFD_CLOEXEC));
  if (!fail) throw Error(system_message("eventfd", errno));
  std::vector<std::thread> agents = start_agents(s, hub, fail.get());
  const int world = s.agents * s.ranks;

  // The file-polling supervisor's run directory, as it looks in steady state: every rank
  // has its started marker and its heartbeat file, none an outcome yet.
  const std::string dir = env_or("TMPDIR", "/tmp") + "/cohort-launch-sim." + unguessable_name(8);
  make_directories(dir, 0700);
  for (int r = 0; r < world; ++r) {
    write_file_atomically(dir + "/started-" + std::to_string(r), "");
    write_file_atomically(dir + "/heartbeat-" + std::to_string(r), "");
  }
  const Steady before = steady_state(hub, s.seconds, dir);
  std::filesystem::remove_all(dir);
  const Steady now = steady_state(hub, s.seconds, "");

  // One rank fails: its agent reports it, the supervisor tells every agent to stop, and
  // the gang is gone when the last agent has reported its ranks ended.
  const long long failed_ns = wall_clock_ns();
  const std::uint64_t one = 1;
  if (::write(fail.get(), &one, sizeof one) != sizeof one) throw Error(system_message("eventfd", errno));
  int ended = 0;
  bool stopping = false;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (ended < world && Clock::now() < deadline) {
    for (const auto& e : pump(hub, 10)) {
      if (e.kind != RankEvent::Kind::ended) continue;
      ++ended;
      if (!stopping) {
        hub.stop_all();
        stopping = true;
      }
    }
  }
  const double gone_ms = static_cast<double>(wall_clock_ns() - failed_ns) / 1e6;
  if (ended < world) throw Error("only " + std::to_string(ended) + " of " + std::to_string(world) + " simulated ranks ended");
  for (auto& a : agents) a.join();

  bench::Report report("launch");
  report.context("agents", s.agents);
  report.context("ranks_per_agent", s.ranks);
  report.context("ranks", world);
  auto& table = report.table("supervisor", "the supervisor of a simulated gang on loopback",
                             {{.name = "measure", .text = true},
                              {.name = "value", .digits = 2},
                              {.name = "unit", .text = true},
                              {.name = "ratio", .digits = 3}});
  table.add({"steady state CPU, polling the run directory (baseline)", before.cpu_percent, "% of a core", 1.0});
  table.add({"steady state CPU, events over TCP", now.cpu_percent, "% of a core",
             bench::number(before.cpu_percent > 0 ? now.cpu_percent / before.cpu_percent : 0)});
  table.add({"run directory entries read per poll (baseline)", before.metadata_per_poll, "", 1.0});
  table.add({"run directory entries read per poll, events over TCP", now.metadata_per_poll, "", json::Value()});
  table.add({"one rank's failure to every rank ended", gone_ms, "ms", json::Value()});
  report.print(std::cout, s.json);
  return 0;
}

}  // namespace cohort::launcher
