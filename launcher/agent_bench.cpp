// `cohort bench launch --simulate`: the supervisor's side of a large gang, on loopback.
//
// AGENTS simulated nodes hold RANKS simulated ranks each, on a few threads of the bench, in
// the two shapes a launch has had: a connection per rank, each sending its rank's beats
// (per rank, the baseline), and one connection per node from its agent, which folds its
// ranks' beats into one line (per node, now). For each shape: the supervisor's CPU (its
// thread's alone) in steady state; then one rank stops beating, and the time from its last
// beat to the supervisor hearing it hung is taken; then one rank fails, the supervisor
// tells every node to stop, and the time from the failure to every rank reported ended is
// taken. The per-node run also measures the supervisor polling a run directory of the
// same gang's files every 100 ms, as it did before there was a link.
#include "launcher/agent_bench.hpp"

#include <dirent.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <map>
#include <thread>

#include "common/bench.hpp"
#include "common/environment.hpp"
#include "common/error.hpp"
#include "common/options.hpp"
#include "launcher/agent_link.hpp"
#include "launcher/run_dir.hpp"

namespace cohort::launcher {
namespace {

namespace po = options::po;
using Clock = std::chrono::steady_clock;

struct Settings {
  int agents = 64;
  int ranks = 64;  // per agent
  double seconds = 5;
  double hang_timeout = 2;  // the hung rank's heartbeat timeout
  int threads = 8;          // the bench's threads that hold the simulated nodes
  bool json = false;
};

enum class Shape { per_rank, per_node };

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_THREAD, &u);  // the supervisor's thread: the agents' are not its cost
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double wall_seconds() { return static_cast<double>(wall_clock_ns()) / 1e9; }

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
  int connections = 0;
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
  return {100 * (cpu_seconds() - cpu0) / wall, polls ? static_cast<double>(metadata) / static_cast<double>(polls) : 0,
          hub.connections()};
}

options::Parser make_parser(Settings& s) {
  options::Parser parser({"bench launch --simulate",
                          {"[--agents 64] [--ranks-per-agent 64] [--seconds 5] [--hang-timeout 2] [--json]"},
                          "A gang of AGENTS x RANKS simulated ranks reporting to a supervisor over loopback,\n"
                          "with a connection per rank (the baseline) and with one per node: the supervisor's CPU\n"
                          "in steady state (also against polling a run directory of the gang's files), a rank\n"
                          "that stops beating to the supervisor hearing it hung, one rank's failure to every rank gone.",
                          {"cohort bench launch --simulate --agents 64 --ranks-per-agent 64"}});
  parser.add()("simulate", "simulate the gang on this machine (no Slurm)")(
      "agents", po::value(&s.agents)->value_name("N"), "simulated nodes (64)")(
      "ranks-per-agent", po::value(&s.ranks)->value_name("N"), "ranks on each (64)")(
      "seconds", po::value(&s.seconds)->value_name("S"), "length of each steady-state measurement (5)")(
      "hang-timeout", po::value(&s.hang_timeout)->value_name("S"), "the hung rank's heartbeat timeout (2)")(
      "json", po::bool_switch(&s.json), "print one JSON object instead of the table");
  return parser;
}

// What the supervisor's side asks of the simulated nodes, and when.
struct Triggers {
  std::atomic<bool> hang{false}, fail{false};
  std::atomic<long long> hang_from_ns{0};  // the hung rank's last beat
  double timeout = 2;
};

// One simulated node: its ranks report over the node's one link or one link each.
struct SimNode {
  int first = 0, ranks = 0;
  std::vector<AgentLink> links;
  std::map<int, bool> alive;  // rank -> still beating
  double beats_sent = 0, next_check = 0;
  bool hang_reported = false, stopped = false;

  AgentLink& link_of(int rank) { return links.size() == 1 ? links[0] : links[static_cast<size_t>(rank - first)]; }

  void end(int rank, int exit_code, int signal, bool hung) {
    RankOutcome o;
    o.rank = rank;
    o.exit_code = exit_code;
    o.term_signal = signal;
    o.hung = hung;
    o.ended_ns = wall_clock_ns();
    link_of(rank).ended(o);
    alive.erase(rank);
  }

  // Beats as the shape sends them: the agent's one folded line per kBeatReportSeconds, or
  // each rank's wrapper its own (AgentLink::beat keeps to the same period).
  void beat(double now) {
    if (links.size() > 1) {
      for (const auto& [rank, beating] : alive) {
        if (beating) link_of(rank).beat(rank, now);
      }
      return;
    }
    if (now - beats_sent < kBeatReportSeconds) return;
    std::map<int, double> at;
    for (const auto& [rank, beating] : alive) {
      if (beating) at[rank] = now;
    }
    links[0].beats(at);
    beats_sent = now;
  }

  // One round: the triggers that are this node's, the hang watch's look every second (as
  // a wrapper's), beats, and the supervisor's stop.
  void round(Triggers& t, int index) {
    const double now = wall_seconds();
    if (index == 0 && t.fail && alive.count(first)) end(first, 1, 0, false);
    const int hung = first + 1;  // node 1's second rank stops beating
    if (index == 1 && t.hang && alive.count(hung)) alive[hung] = false;
    if (index == 1 && t.hang && !hang_reported && now >= next_check) {
      next_check = now + 1;
      if (now - static_cast<double>(t.hang_from_ns) / 1e9 >= t.timeout) {
        end(hung, -1, 9, true);
        hang_reported = true;
      }
    }
    beat(now);
    if (!links[0].told_to_stop()) return;
    // A wrapper told to stop ends its rank and says nothing more: the supervisor counts
    // the rank gone when its connection ends.
    alive.clear();
    links.clear();
    stopped = true;
  }
};

// A thread's share of the nodes, until the supervisor stops them all.
void run_nodes(std::vector<SimNode>& nodes, std::vector<int> mine, Triggers& t) {
  while (true) {
    std::vector<pollfd> fds;
    for (int i : mine) {
      if (!nodes[static_cast<size_t>(i)].stopped) fds.push_back({nodes[static_cast<size_t>(i)].links[0].fd(), POLLIN, 0});
    }
    if (fds.empty()) return;
    ::poll(fds.data(), fds.size(), 200);
    for (int i : mine) {
      if (!nodes[static_cast<size_t>(i)].stopped) nodes[static_cast<size_t>(i)].round(t, i);
    }
  }
}

// Connects every simulated node in `shape` and reports every rank started; the threads that
// then run them.
std::vector<std::thread> start_nodes(const Settings& s, Shape shape, EventHub& hub, std::vector<SimNode>& nodes,
                                     Triggers& t) {
  const std::string address = "127.0.0.1:" + std::to_string(hub.port());
  nodes.resize(static_cast<size_t>(s.agents));
  int started = 0;
  const int world = s.agents * s.ranks;
  for (int a = 0; a < s.agents; ++a) {
    SimNode& n = nodes[static_cast<size_t>(a)];
    n.first = a * s.ranks;
    n.ranks = s.ranks;
    for (int r = n.first; r < n.first + n.ranks; ++r) {
      if (shape == Shape::per_rank || r == n.first) n.links.emplace_back(address, hub.secret(), "sim-" + std::to_string(a));
      n.link_of(r).started(r);
      n.alive[r] = true;
    }
    // Served as they come: a backlog of thousands of connections would overflow.
    for (const auto& e : pump(hub, 0)) started += e.kind == RankEvent::Kind::started;
  }
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (started < world && Clock::now() < deadline) {
    for (const auto& e : pump(hub)) started += e.kind == RankEvent::Kind::started;
  }
  if (started < world) throw Error("only " + std::to_string(started) + " simulated ranks started in 60 s");
  std::vector<std::vector<int>> shares(static_cast<size_t>(std::min(s.threads, s.agents)));
  for (int a = 0; a < s.agents; ++a) shares[static_cast<size_t>(a) % shares.size()].push_back(a);
  std::vector<std::thread> threads;
  for (auto& share : shares) threads.emplace_back([&nodes, share, &t] { run_nodes(nodes, share, t); });
  return threads;
}

struct ShapeResult {
  Steady polling;  // the per-node run only
  Steady steady;
  double hang_ms = 0, gone_ms = 0;
};

// From the hung rank's last beat to the supervisor hearing it hung.
double hang_detection_ms(EventHub& hub, Triggers& t) {
  t.hang_from_ns = wall_clock_ns();
  t.hang = true;
  const auto deadline = Clock::now() + std::chrono::duration<double>(t.timeout + 30);
  while (Clock::now() < deadline) {
    for (const auto& e : pump(hub, 10)) {
      if (e.kind == RankEvent::Kind::ended && e.outcome.hung) return static_cast<double>(wall_clock_ns() - t.hang_from_ns) / 1e6;
    }
  }
  throw Error("the simulated hung rank was not reported within its timeout and 30 s");
}

// From one rank's failure to every rank reported ended, the supervisor telling every node
// to stop as soon as it hears of the failure; `ended` ranks had ended before.
double teardown_ms(EventHub& hub, Triggers& t, int world, int ended) {
  t.fail = true;
  long long failed_ns = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (ended < world && Clock::now() < deadline) {
    for (const auto& e : pump(hub, 10)) {
      if (e.kind != RankEvent::Kind::ended) continue;
      ++ended;
      if (failed_ns == 0) {
        failed_ns = e.outcome.ended_ns;
        hub.stop_all();
      }
    }
  }
  if (ended < world) throw Error("only " + std::to_string(ended) + " of " + std::to_string(world) + " simulated ranks ended");
  return static_cast<double>(wall_clock_ns() - failed_ns) / 1e6;
}

// The file-polling supervisor's run directory, as it looks in steady state: every rank
// has its started marker and its heartbeat file, none an outcome yet.
Steady polling_steady_state(EventHub& hub, const Settings& s) {
  const std::string dir = env_or("TMPDIR", "/tmp") + "/cohort-launch-sim." + unguessable_name(8);
  make_directories(dir, 0700);
  for (int r = 0; r < s.agents * s.ranks; ++r) {
    write_file_atomically(dir + "/started-" + std::to_string(r), "");
    write_file_atomically(dir + "/heartbeat-" + std::to_string(r), "");
  }
  const Steady polling = steady_state(hub, s.seconds, dir);
  std::filesystem::remove_all(dir);
  return polling;
}

ShapeResult measure(const Settings& s, Shape shape) {
  EventHub hub(true);
  Triggers t;
  t.timeout = s.hang_timeout;
  std::vector<SimNode> nodes;
  std::vector<std::thread> threads = start_nodes(s, shape, hub, nodes, t);
  ShapeResult r;
  try {
    if (shape == Shape::per_node) r.polling = polling_steady_state(hub, s);
    r.steady = steady_state(hub, s.seconds, "");
    r.hang_ms = hang_detection_ms(hub, t);
    r.gone_ms = teardown_ms(hub, t, s.agents * s.ranks, 1);
  } catch (...) {
    hub.stop_all();  // the threads end once told
    for (auto& th : threads) th.join();
    throw;
  }
  for (auto& th : threads) th.join();
  return r;
}

json::Value ratio(double value, double baseline) { return baseline > 0 ? bench::number(value / baseline) : json::Value(); }

}  // namespace

int simulated_bench(const std::vector<std::string>& args) {
  Settings s;
  if (!make_parser(s).parse(args)) return 0;
  if (s.agents < 2 || s.ranks < 2 || !(s.seconds > 0) || !(s.hang_timeout > 0)) {
    throw input_error("--agents and --ranks-per-agent must be at least 2 (one node fails, another hangs), --seconds and "
                      "--hang-timeout positive");
  }
  const ShapeResult per_rank = measure(s, Shape::per_rank);
  const ShapeResult per_node = measure(s, Shape::per_node);

  bench::Report report("launch");
  report.context("agents", s.agents);
  report.context("ranks_per_agent", s.ranks);
  report.context("ranks", s.agents * s.ranks);
  report.context("hang_timeout_s", s.hang_timeout);
  auto& table = report.table("supervisor", "the supervisor of a simulated gang on loopback, against a connection per rank",
                             {{.name = "measure", .text = true},
                              {.name = "value", .digits = 2},
                              {.name = "unit", .text = true},
                              {.name = "ratio", .digits = 3}});
  const double base_cpu = per_rank.steady.cpu_percent;
  table.add({"steady state CPU, a connection per rank (baseline)", base_cpu, "% of a core", 1.0});
  table.add({"steady state CPU, a connection per node", per_node.steady.cpu_percent, "% of a core",
             ratio(per_node.steady.cpu_percent, base_cpu)});
  table.add({"steady state CPU, polling the run directory", per_node.polling.cpu_percent, "% of a core",
             ratio(per_node.polling.cpu_percent, base_cpu)});
  table.add({"connections, per rank (baseline)", per_rank.steady.connections, "", 1.0});
  table.add({"connections, per node", per_node.steady.connections, "",
             ratio(per_node.steady.connections, per_rank.steady.connections)});
  table.add({"run directory entries read per poll, polling", per_node.polling.metadata_per_poll, "", json::Value()});
  table.add({"hung rank's last beat to heard hung, per rank (baseline)", per_rank.hang_ms, "ms", 1.0});
  table.add({"hung rank's last beat to heard hung, per node", per_node.hang_ms, "ms", ratio(per_node.hang_ms, per_rank.hang_ms)});
  table.add({"one rank's failure to every rank ended, per rank (baseline)", per_rank.gone_ms, "ms", 1.0});
  table.add({"one rank's failure to every rank ended, per node", per_node.gone_ms, "ms",
             ratio(per_node.gone_ms, per_rank.gone_ms)});
  report.print(std::cout, s.json);
  return 0;
}

}  // namespace cohort::launcher
