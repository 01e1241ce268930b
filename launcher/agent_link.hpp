// launcher/agent_link.hpp — how the processes that watch ranks tell the supervisor about them.
//
// The supervisor listens on one TCP port; each watcher keeps one connection to it and sends
// newline-delimited JSON: first a hello carrying the attempt's secret (so that another user
// on a node cannot inject events), then one line per event — a rank started, a rank is
// suspected hung (why), its stack was dumped (to which file), a rank ended (exit code,
// signal, hung, time). The supervisor can send "stop": end your ranks now (a
// teardown; the watcher then reports nothing, its ranks count as killed in teardown). A
// watcher whose connection ends (the supervisor died, or the network between them failed)
// ends its ranks by itself; a connection that ends while its ranks run is, to the
// supervisor, the failure of their node. Nothing is polled on the shared filesystem.
//
// In a Slurm step a node's wrappers share one connection, so that the supervisor's cost
// grows with the nodes, not the ranks: the node's first wrapper is its agent (NodeAgent).
// It holds the connection and listens on a Unix socket in a node-local 0700 folder; the
// node's other wrappers connect there and send the same lines. The agent passes on
// started, hang, dumped and ended at once, folds its wrappers' beats into one "beats" line per
// kBeatReportSeconds, reports "lost" for a wrapper whose connection ended while its rank
// ran, and passes "stop" on. Its connection carries every rank of the node, so its end
// is, to the supervisor, the failure of all of them.
// Private to the launcher.
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/fd.hpp"
#include "common/text.hpp"
#include "launcher/supervisor.hpp"

namespace cohort::launcher {

struct RankEvent {
  enum class Kind { started, hang, dumped, ended, beat } kind = Kind::started;
  RankOutcome outcome;  // rank always; how it ended for `ended`
  double beat_at = 0;   // `beat`: the rank's last heartbeat, seconds since the epoch; 0: none yet
  std::string note;     // `hang`: why the rank is taken for hung; `dumped`: the stack's file
};

// One connection as its receiving end (the supervisor's hub, a node's agent) sees it.
struct LinkPeer {
  Fd fd;
  bool authenticated = false;  // it presented the attempt's secret
  std::string host;            // as the watcher names its node
  std::set<int> running;       // ranks it said started and not yet ended
  LineSplitter lines;
};

// The supervisor's end: accepts watchers' connections and turns their lines into events.
class EventHub {
 public:
  // Listens on a port the kernel picks: on loopback only, or on every interface where
  // watchers run on other nodes.
  explicit EventHub(bool loopback_only);

  int port() const { return port_; }
  // The secret a watcher must present; a new one for every attempt (begin_attempt).
  const std::string& secret() const { return secret_; }
  // Forgets the watchers of the attempt before (their connections are closed) and makes a
  // new secret, so that a late line from an earlier attempt can never count in this one.
  void begin_attempt();
  // While closing, connections that end are expected (the supervisor is tearing down).
  void set_closing(bool closing) { closing_ = closing; }

  void add_poll_fds(std::vector<pollfd>& fds) const;
  // Accepts, reads and decodes whatever is ready, without blocking.
  std::vector<RankEvent> service();
  // Asks every watcher to end its ranks, those that connect later in this attempt included.
  void stop_all();
  int connections() const { return static_cast<int>(conns_.size()); }

 private:
  using Conn = LinkPeer;
  // false when the connection is to be dropped.
  bool take_line(Conn& c, std::string_view line, std::vector<RankEvent>& events);
  void lose(Conn& c, std::vector<RankEvent>& events) const;

  Fd listener_;
  int port_ = 0;
  std::string secret_;
  bool closing_ = false;
  bool stopping_ = false;
  std::vector<Conn> conns_;
};

// A watcher's end: one connection to the supervisor.
// How often a watcher passes on its rank's heartbeat, and the supervisor writes them down.
inline constexpr double kBeatReportSeconds = 5;

class AgentLink {
 public:
  // `address` is "HOST:PORT" (COHORT_LAUNCH_AGENT); throws cohort::Error naming it when the
  // supervisor cannot be reached.
  AgentLink(const std::string& address, const std::string& secret, const std::string& host);

  int fd() const { return fd_.get(); }
  void started(int rank);
  // The rank is taken for hung (`why`), before its stack is dumped and it is killed: a
  // dump through gdb can take a while.
  void hang(int rank, const std::string& why);
  // The hung rank's stack is in `file`, in the run directory.
  void dumped(int rank, const std::string& file);
  void ended(const RankOutcome& outcome);
  // The rank's last heartbeat (seconds since the epoch; 0: watched, not beaten yet), for
  // people watching the run: at most every kBeatReportSeconds, and only when it moved.
  void beat(int rank, double at);
  // The node's agent: its wrappers' last heartbeats, in one line.
  void beats(const std::map<int, double>& at);
  // The node's agent: the wrapper of `rank` went while the rank ran.
  void lost(int rank);
  // Reads what the supervisor sent, without blocking: true once it said stop or is gone.
  bool told_to_stop();
  // Whether it was the supervisor's "stop" (a teardown), not a lost supervisor.
  bool asked_to_stop() const { return asked_; }

  // A wrapper on a node with an agent: connects to the agent's socket in `folder` (see
  // NodeAgent), waiting up to kAgentWaitSeconds for the agent to open it; throws
  // cohort::Error naming the folder when it does not.
  static AgentLink to_node_agent(const std::string& folder, const std::string& secret, const std::string& host);

 private:
  AgentLink(Fd fd, std::string address, const std::string& secret, const std::string& host);
  void send_line(const std::string& line);
  double beat_sent_ = -1, beat_sent_when_ = 0;

  Fd fd_;
  std::string address_;
  bool gone_ = false;
  bool asked_ = false;
  LineSplitter lines_;
};

// How long a node's wrappers wait for its agent's socket: srun starts a node's tasks
// together, and the agent opens its socket before anything else it does.
inline constexpr double kAgentWaitSeconds = 60;

// The node's agent's socket in its folder.
std::string agent_socket(const std::string& folder);

// The node's agent's end towards the node's other wrappers (see the top of this file).
class NodeAgent {
 public:
  // Listens at agent_socket(folder); `folder` is node-local, this user's alone (0700).
  // `wrappers`: how many other wrappers run on this node; the agent carries them until
  // each has come and gone.
  NodeAgent(const std::string& folder, std::string secret, int wrappers);

  void add_poll_fds(std::vector<pollfd>& fds) const;
  // Accepts, reads and passes on whatever is ready, without blocking; folds the beats and
  // sends them when they are due; passes the supervisor's stop on, and when the supervisor
  // is gone ends every wrapper's connection, so that each ends its rank.
  void service(AgentLink& upstream);
  // The agent's own rank's heartbeat, folded with its wrappers'.
  void beat(int rank, double at) { beats_[rank] = at; }
  // Whether the agent has no more wrappers to carry: each came and went, or the supervisor
  // is gone or said stop and those that came are gone.
  bool done() const;
  int wrappers() const { return static_cast<int>(wrappers_.size()); }

 private:
  using Wrapper = LinkPeer;
  bool take_line(Wrapper& w, std::string_view line, AgentLink& upstream);
  void send_beats(AgentLink& upstream);

  Fd listener_;
  std::string secret_;
  int expected_ = 0;
  int arrived_ = 0;
  bool stopping_ = false;  // the supervisor said stop
  bool cut_off_ = false;   // the supervisor is gone
  std::vector<Wrapper> wrappers_;
  std::map<int, double> beats_, beats_sent_;
  double beats_sent_when_ = 0;
};

}  // namespace cohort::launcher
