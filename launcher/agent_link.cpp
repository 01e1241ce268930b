#include "launcher/agent_link.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <functional>
#include <iostream>

#include "common/error.hpp"
#include "common/json.hpp"
#include "launcher/run_dir.hpp"

namespace cohort::launcher {
namespace {

// A line longer than any event is no watcher's: the connection is dropped.
constexpr std::size_t kLongestLine = 4096;

// Whole-line sends that never raise SIGPIPE: a peer that is gone is an error to handle,
// not a reason to die.
bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Both ends of a link: events go out at once, and a peer that has gone silent (a
// partition that drops packets, a node that died without a reset) is found by TCP's own
// probes within kLinkSilenceS, which the kernel sends without waking either process.
constexpr int kKeepIdleS = 5, kKeepIntervalS = 2, kKeepProbes = 3;
constexpr int kLinkSilenceS = kKeepIdleS + kKeepIntervalS * kKeepProbes;

void tune_link(int fd) {
  const int on = 1, idle = kKeepIdleS, interval = kKeepIntervalS, probes = kKeepProbes;
  const unsigned timeout_ms = kLinkSilenceS * 1000;  // for data sent and never acknowledged
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms, sizeof timeout_ms);
}

// Compares without stopping at the first difference, so that timing tells nothing.
bool same_secret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Reads what is ready on `fd` and hands each whole line to `take` (false from it: drop the
// peer); false once the peer is gone, is to be dropped, or sends a line longer than any
// event.
bool read_ready(int fd, LineSplitter& lines, const std::function<bool(std::string_view)>& take) {
  char buf[16384];
  bool keep = true;
  while (keep) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) return false;
    lines.feed(std::string_view(buf, static_cast<std::size_t>(n)), [&](std::string_view line) {
      if (keep) keep = take(line);
    });
    if (lines.pending() > kLongestLine) keep = false;
  }
  return keep;
}

// The connections waiting on `listener`, non-blocking.
std::vector<Fd> accept_ready(int listener) {
  std::vector<Fd> out;
  while (true) {
    Fd fd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd) return out;
    out.push_back(std::move(fd));
  }
}

// Whether `v` is a hello that presents `secret`.
bool says_hello(const json::Value& v, const std::string& secret) {
  const json::Value* hello = v.find("hello");
  return hello && hello->is_string() && same_secret(hello->as_string(), secret);
}

RankEvent lost_rank(int rank, const std::string& host, long long now) {
  RankEvent e;
  e.kind = RankEvent::Kind::ended;
  e.outcome.rank = rank;
  e.outcome.host = host;
  e.outcome.reported = true;
  e.outcome.lost = true;
  e.outcome.ended_ns = now;
  return e;
}

// One line after the hello, as events: a node's agent folds many ranks' beats into one
// line. False when it is none of the protocol's; cohort::Error when a field is missing.
bool decode(const json::Value& v, const std::string& host, std::vector<RankEvent>& events) {
  const std::string& kind = v.at("event").as_string();
  if (kind == "beats") {
    for (const auto& [name, at] : v.at("at").as_object()) {
      const auto rank = parse_integer(name, 0, INT_MAX);
      if (!rank) return false;
      RankEvent e;
      e.kind = RankEvent::Kind::beat;
      e.outcome.rank = static_cast<int>(*rank);
      e.outcome.host = host;
      e.beat_at = at.as_double();
      events.push_back(std::move(e));
    }
    return true;
  }
  const int rank = static_cast<int>(v.at("rank").as_int());
  if (kind == "lost") {
    events.push_back(lost_rank(rank, host, wall_clock_ns()));
    return true;
  }
  RankEvent e;
  e.outcome.rank = rank;
  e.outcome.host = host;
  if (kind == "started") {
    e.kind = RankEvent::Kind::started;
  } else if (kind == "ended") {
    e.kind = RankEvent::Kind::ended;
    e.outcome.reported = true;
    e.outcome.exit_code = static_cast<int>(v.at("exit").as_int());
    e.outcome.term_signal = static_cast<int>(v.at("signal").as_int());
    e.outcome.hung = v.at("hung").as_bool();
    e.outcome.stopped = v.at("stopped").as_bool();
    e.outcome.ended_ns = v.at("ended_ns").as_int();
  } else if (kind == "beat") {
    e.kind = RankEvent::Kind::beat;
    e.beat_at = v.at("at").as_double();
  } else if (kind == "hang") {
    e.kind = RankEvent::Kind::hang;
    e.note = v.at("why").as_string();
  } else if (kind == "dumped") {
    e.kind = RankEvent::Kind::dumped;
    e.note = v.at("file").as_string();
  } else {
    return false;
  }
  events.push_back(std::move(e));
  return true;
}

// One line from `peer`: its hello, which must present `secret` (`greeted` then), or its
// events, whose ranks it then carries or no longer does. False when the peer is to be
// dropped: not the protocol, so whoever sent it is no watcher of ours.
bool take_peer_line(LinkPeer& peer, std::string_view line, const std::string& secret, std::vector<RankEvent>& events,
                    bool& greeted) {
  try {
    const json::Value v = json::parse(std::string(line), "watcher line");
    if (!v.is_object()) return false;
    if (!peer.authenticated) {
      if (!says_hello(v, secret)) return false;
      peer.authenticated = greeted = true;
      if (const json::Value* host = v.find("host"); host && host->is_string()) peer.host = host->as_string();
      return true;
    }
    const std::size_t first = events.size();
    if (!decode(v, peer.host, events)) return false;
    for (std::size_t i = first; i < events.size(); ++i) {
      const RankEvent& e = events[i];
      if (e.kind == RankEvent::Kind::started) peer.running.insert(e.outcome.rank);
      else if (e.kind == RankEvent::Kind::ended) peer.running.erase(e.outcome.rank);
    }
    return true;
  } catch (const Error&) {
    return false;
  }
}

double wall_seconds() { return static_cast<double>(wall_clock_ns()) / 1e9; }

}  // namespace

EventHub::EventHub(bool loopback_only) {
  listener_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener_) throw Error(system_message("launch: socket for the ranks' watchers", errno));
  const int on = 1;
  ::setsockopt(listener_.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(loopback_only ? INADDR_LOOPBACK : INADDR_ANY);
  socklen_t len = sizeof addr;
  if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener_.get(), SOMAXCONN) != 0 ||
      ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw Error(system_message("launch: cannot listen for the ranks' watchers", errno));
  }
  port_ = ntohs(addr.sin_port);
  begin_attempt();
}

void EventHub::begin_attempt() {
  conns_.clear();
  closing_ = false;
  stopping_ = false;
  secret_ = unguessable_name(32);
}

void EventHub::add_poll_fds(std::vector<pollfd>& fds) const {
  fds.push_back({listener_.get(), POLLIN, 0});
  for (const auto& c : conns_) fds.push_back({c.fd.get(), POLLIN, 0});
}

void EventHub::lose(Conn& c, std::vector<RankEvent>& events) const {
  if (closing_ || !c.authenticated) return;
  const long long now = wall_clock_ns();
  for (int rank : c.running) events.push_back(lost_rank(rank, c.host, now));
  c.running.clear();
}

bool EventHub::take_line(Conn& c, std::string_view line, std::vector<RankEvent>& events) {
  bool greeted = false;
  const std::size_t first = events.size();
  if (!take_peer_line(c, line, secret_, events, greeted)) return false;
  // A watcher that reaches the hub only after the teardown began has ranks to end too.
  if (greeted && stopping_) send_all(c.fd.get(), "stop\n");
  // A node's agent reports its wrappers that go while the supervisor tears down, as the
  // hub would their own connections: expected then, no failure.
  if (closing_) {
    events.erase(std::remove_if(events.begin() + static_cast<std::ptrdiff_t>(first), events.end(),
                                [](const RankEvent& e) { return e.outcome.lost; }),
                 events.end());
  }
  return true;
}

std::vector<RankEvent> EventHub::service() {
  std::vector<RankEvent> events;
  for (Fd& fd : accept_ready(listener_.get())) {
    tune_link(fd.get());
    Conn c;
    c.fd = std::move(fd);
    conns_.push_back(std::move(c));
  }
  for (auto& c : conns_) {
    if (read_ready(c.fd.get(), c.lines, [&](std::string_view line) { return take_line(c, line, events); })) continue;
    if (!c.authenticated) {
      std::cerr << "cohort: launch: refused a connection that did not present this launch's secret\n";
    }
    lose(c, events);
    c.fd.reset();
  }
  conns_.erase(std::remove_if(conns_.begin(), conns_.end(), [](const Conn& c) { return !c.fd; }), conns_.end());
  return events;
}

void EventHub::stop_all() {
  stopping_ = true;
  for (auto& c : conns_) {
    if (c.authenticated) send_all(c.fd.get(), "stop\n");
  }
}

AgentLink::AgentLink(const std::string& address, const std::string& secret, const std::string& host)
    : address_(address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    throw input_error("COHORT_LAUNCH_AGENT='" + address + "' is not HOST:PORT: --as-rank is started by 'cohort launch'");
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(address.substr(0, colon).c_str(), address.substr(colon + 1).c_str(), &hints, &found);
  if (rc != 0) throw Error("cannot resolve the supervisor's address " + address + ": " + ::gai_strerror(rc));
  int err = 0;
  for (addrinfo* a = found; a && !fd_; a = a->ai_next) {
    Fd s(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (s && ::connect(s.get(), a->ai_addr, a->ai_addrlen) == 0) fd_ = std::move(s);
    else err = errno;
  }
  ::freeaddrinfo(found);
  if (!fd_) throw Error(system_message("cannot reach the supervisor at " + address, err));
  tune_link(fd_.get());
  send_line(json::write(json::Object{{"hello", secret}, {"host", host}}));
  set_nonblocking(fd_.get());
}

AgentLink::AgentLink(Fd fd, std::string address, const std::string& secret, const std::string& host)
    : fd_(std::move(fd)), address_(std::move(address)) {
  send_line(json::write(json::Object{{"hello", secret}, {"host", host}}));
  set_nonblocking(fd_.get());
}

void AgentLink::send_line(const std::string& line) {
  // A supervisor that is gone is noticed by told_to_stop(); what it missed is in the run
  // directory's outcome file.
  if (!gone_ && !send_all(fd_.get(), line + "\n")) gone_ = true;
}

void AgentLink::started(int rank) { send_line(json::write(json::Object{{"event", "started"}, {"rank", rank}})); }

void AgentLink::hang(int rank, const std::string& why) {
  send_line(json::write(json::Object{{"event", "hang"}, {"rank", rank}, {"why", why}}));
}

void AgentLink::dumped(int rank, const std::string& file) {
  send_line(json::write(json::Object{{"event", "dumped"}, {"rank", rank}, {"file", file}}));
}

void AgentLink::ended(const RankOutcome& o) {
  send_line(json::write(json::Object{{"event", "ended"},
                                     {"rank", o.rank},
                                     {"exit", o.exit_code},
                                     {"signal", o.term_signal},
                                     {"hung", o.hung},
                                     {"stopped", o.stopped},
                                     {"ended_ns", o.ended_ns}}));
}

void AgentLink::beat(int rank, double at) {
  const double now = wall_seconds();
  if (at == beat_sent_ || (beat_sent_ >= 0 && now - beat_sent_when_ < kBeatReportSeconds)) return;
  beat_sent_ = at;
  beat_sent_when_ = now;
  send_line(json::write(json::Object{{"event", "beat"}, {"rank", rank}, {"at", at}}));
}

void AgentLink::beats(const std::map<int, double>& at) {
  // A few hundred ranks to a line at most, well within the longest line a hub reads.
  constexpr std::size_t kPerLine = 100;
  json::Value pairs = json::Value::object();
  std::size_t n = 0;
  for (const auto& [rank, when] : at) {
    pairs.set(std::to_string(rank), when);
    if (++n % kPerLine == 0 || n == at.size()) {
      send_line(json::write(json::Object{{"event", "beats"}, {"at", std::move(pairs)}}));
      pairs = json::Value::object();
    }
  }
}

void AgentLink::lost(int rank) { send_line(json::write(json::Object{{"event", "lost"}, {"rank", rank}})); }

bool AgentLink::told_to_stop() {
  if (gone_) return true;
  const bool open = read_ready(fd_.get(), lines_, [&](std::string_view line) {
    if (line == "stop") asked_ = true;
    return true;
  });
  gone_ = !open || asked_;
  return gone_;
}

std::string agent_socket(const std::string& folder) { return folder + "/agent.sock"; }

namespace {

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    throw Error("launch: the node agent's socket " + path + " is longer than a Unix socket's " +
                std::to_string(sizeof addr.sun_path - 1) + " characters: set TMPDIR to a shorter node-local directory");
  }
  path.copy(addr.sun_path, path.size());
  return addr;
}

// Whether `folder` is this user's alone: the secret is only ever sent into it.
void check_private(const std::string& folder) {
  struct stat st {};
  if (::lstat(folder.c_str(), &st) != 0) return;
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 077) != 0) {
    throw Error("launch: " + folder + " is not a folder of this user's alone (mode 0700): remove it, " +
                "or set TMPDIR to a node-local directory of your own");
  }
}

}  // namespace

AgentLink AgentLink::to_node_agent(const std::string& folder, const std::string& secret, const std::string& host) {
  const std::string path = agent_socket(folder);
  const sockaddr_un addr = unix_address(path);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(kAgentWaitSeconds);
  int pause_ms = 5, err = 0;
  while (true) {
    check_private(folder);
    Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) throw Error(system_message("launch: socket for the node's agent", errno));
    if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
      return AgentLink(std::move(s), path, secret, host);
    }
    err = errno;
    if ((err != ENOENT && err != ECONNREFUSED) || std::chrono::steady_clock::now() >= deadline) break;
    // The agent is the node's first wrapper, started with this one: it is usually there
    // within milliseconds.
    ::poll(nullptr, 0, pause_ms);
    pause_ms = std::min(pause_ms * 2, 200);
  }
  throw Error(system_message("launch: no agent for this node's ranks at " + path, err) + " after waiting " +
              std::to_string(static_cast<int>(kAgentWaitSeconds)) +
              " s: the node's first wrapper (SLURM_LOCALID=0) opens it; its output says why it did not");
}

NodeAgent::NodeAgent(const std::string& folder, std::string secret, int wrappers)
    : secret_(std::move(secret)), expected_(wrappers) {
  check_private(folder);
  const std::string path = agent_socket(folder);
  const sockaddr_un addr = unix_address(path);
  listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener_ || ::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener_.get(), SOMAXCONN) != 0) {
    throw Error(system_message("launch: cannot listen for this node's ranks at " + path, errno));
  }
}

void NodeAgent::add_poll_fds(std::vector<pollfd>& fds) const {
  if (listener_) fds.push_back({listener_.get(), POLLIN, 0});
  for (const auto& w : wrappers_) fds.push_back({w.fd.get(), POLLIN, 0});
}

bool NodeAgent::take_line(Wrapper& w, std::string_view line, AgentLink& upstream) {
  bool greeted = false;
  std::vector<RankEvent> events;
  if (!take_peer_line(w, line, secret_, events, greeted)) return false;
  if (greeted) {
    ++arrived_;
    if (stopping_) send_all(w.fd.get(), "stop\n");
  }
  for (const auto& e : events) {
    if (e.kind == RankEvent::Kind::started) upstream.started(e.outcome.rank);
    else if (e.kind == RankEvent::Kind::beat) beats_[e.outcome.rank] = e.beat_at;
    else if (e.kind == RankEvent::Kind::hang) upstream.hang(e.outcome.rank, e.note);
    else if (e.kind == RankEvent::Kind::dumped) upstream.dumped(e.outcome.rank, e.note);
    else if (e.outcome.lost) upstream.lost(e.outcome.rank);
    else upstream.ended(e.outcome);
  }
  return true;
}

void NodeAgent::service(AgentLink& upstream) {
  if (!cut_off_ && !stopping_ && upstream.told_to_stop()) {
    if (upstream.asked_to_stop()) {
      stopping_ = true;
      for (auto& w : wrappers_) {
        if (w.authenticated) send_all(w.fd.get(), "stop\n");
      }
    } else {
      // The supervisor is gone: so is this agent, for its wrappers, which end their ranks.
      cut_off_ = true;
      wrappers_.clear();
      listener_.reset();
      return;
    }
  }
  if (cut_off_) return;
  for (Fd& fd : accept_ready(listener_.get())) {
    Wrapper w;
    w.fd = std::move(fd);
    wrappers_.push_back(std::move(w));
  }
  for (auto& w : wrappers_) {
    if (read_ready(w.fd.get(), w.lines, [&](std::string_view line) { return take_line(w, line, upstream); })) continue;
    if (!w.authenticated) std::cerr << "cohort: launch: node agent refused a connection without this launch's secret\n";
    // A wrapper gone while its rank ran (killed, or its node's OOM killer): that rank's
    // loss, as its own connection's end would have been. In a teardown it is expected.
    if (!stopping_) {
      for (int rank : w.running) upstream.lost(rank);
    }
    w.fd.reset();
  }
  wrappers_.erase(std::remove_if(wrappers_.begin(), wrappers_.end(), [](const Wrapper& w) { return !w.fd; }),
                  wrappers_.end());
  send_beats(upstream);
}

void NodeAgent::send_beats(AgentLink& upstream) {
  const double now = wall_seconds();
  if (now - beats_sent_when_ < kBeatReportSeconds) return;
  std::map<int, double> moved;
  for (const auto& [rank, at] : beats_) {
    const auto sent = beats_sent_.find(rank);
    if (sent == beats_sent_.end() || sent->second != at) moved[rank] = at;
  }
  if (moved.empty()) return;
  upstream.beats(moved);
  beats_sent_ = beats_;
  beats_sent_when_ = now;
}

bool NodeAgent::done() const { return cut_off_ || (wrappers_.empty() && (stopping_ || arrived_ >= expected_)); }

}  // namespace cohort::launcher
