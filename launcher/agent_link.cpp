#include "launcher/agent_link.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
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
  for (int rank : c.running) {
    RankEvent e;
    e.kind = RankEvent::Kind::ended;
    e.outcome.rank = rank;
    e.outcome.host = c.host;
    e.outcome.reported = true;
    e.outcome.lost = true;
    e.outcome.ended_ns = now;
    events.push_back(e);
  }
  c.running.clear();
}

bool EventHub::take_line(Conn& c, std::string_view line, std::vector<RankEvent>& events) {
  json::Value v;
  try {
    v = json::parse(std::string(line), "watcher line");
    if (!v.is_object()) return false;
    if (!c.authenticated) {
      const json::Value* hello = v.find("hello");
      if (!hello || !hello->is_string() || !same_secret(hello->as_string(), secret_)) return false;
      c.authenticated = true;
      if (const json::Value* host = v.find("host"); host && host->is_string()) c.host = host->as_string();
      // A watcher that reaches the hub only after the teardown began has ranks to end too.
      if (stopping_) send_all(c.fd.get(), "stop\n");
      return true;
    }
    const std::string& kind = v.at("event").as_string();
    RankEvent e;
    e.outcome.rank = static_cast<int>(v.at("rank").as_int());
    e.outcome.host = c.host;
    if (kind == "started") {
      e.kind = RankEvent::Kind::started;
      c.running.insert(e.outcome.rank);
    } else if (kind == "ended") {
      e.kind = RankEvent::Kind::ended;
      e.outcome.reported = true;
      e.outcome.exit_code = static_cast<int>(v.at("exit").as_int());
      e.outcome.term_signal = static_cast<int>(v.at("signal").as_int());
      e.outcome.hung = v.at("hung").as_bool();
      e.outcome.stopped = v.at("stopped").as_bool();
      e.outcome.ended_ns = v.at("ended_ns").as_int();
      c.running.erase(e.outcome.rank);
    } else if (kind == "beat") {
      e.kind = RankEvent::Kind::beat;
      e.beat_at = v.at("at").as_double();
    } else {
      return false;
    }
    events.push_back(std::move(e));
    return true;
  } catch (const Error&) {
    return false;  // not the protocol: whoever sent it is no watcher of ours
  }
}

std::vector<RankEvent> EventHub::service() {
  std::vector<RankEvent> events;
  while (true) {
    Fd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd) break;
    tune_link(fd.get());
    Conn c;
    c.fd = std::move(fd);
    conns_.push_back(std::move(c));
  }
  for (auto& c : conns_) {
    char buf[16384];
    bool keep = true;
    while (keep) {
      const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n <= 0) {
        keep = false;
        break;
      }
      c.lines.feed(std::string_view(buf, static_cast<std::size_t>(n)), [&](std::string_view line) {
        if (keep) keep = take_line(c, line, events);
      });
      if (c.lines.pending() > kLongestLine) keep = false;
    }
    if (!keep) {
      if (!c.authenticated) {
        std::cerr << "cohort: launch: refused a connection that did not present this launch's secret\n";
      }
      lose(c, events);
      c.fd.reset();
    }
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

void AgentLink::send_line(const std::string& line) {
  // A supervisor that is gone is noticed by told_to_stop(); what it missed is in the run
  // directory's outcome file.
  if (!gone_ && !send_all(fd_.get(), line + "\n")) gone_ = true;
}

void AgentLink::started(int rank) { send_line(json::write(json::Object{{"event", "started"}, {"rank", rank}})); }

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
  const double now = static_cast<double>(wall_clock_ns()) / 1e9;
  if (at == beat_sent_ || (beat_sent_ >= 0 && now - beat_sent_when_ < kBeatReportSeconds)) return;
  beat_sent_ = at;
  beat_sent_when_ = now;
  send_line(json::write(json::Object{{"event", "beat"}, {"rank", rank}, {"at", at}}));
}

bool AgentLink::told_to_stop() {
  char buf[256];
  while (!gone_) {
    const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) {
      gone_ = true;
      break;
    }
    lines_.feed(std::string_view(buf, static_cast<std::size_t>(n)), [&](std::string_view line) {
      if (line == "stop") gone_ = asked_ = true;
    });
  }
  return gone_;
}

}  // namespace cohort::launcher
