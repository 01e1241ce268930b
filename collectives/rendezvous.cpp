#include "collectives/rendezvous.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "common/fd.hpp"

namespace cohort::collectives::detail {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kMagic = 0x43485232;  // "CHR2": cohort rendezvous, version 2 (contributions)
constexpr std::uint32_t kMaxKey = 1024;
constexpr std::uint32_t kMaxFailure = 4096;
constexpr std::uint32_t kMaxPayload = 64 * 1024;
// A gathered reply holds every rank's contribution: up to 4 KiB each, 16 MiB in all.
constexpr std::uint32_t kMaxGathered = 16 * 1024 * 1024;
constexpr std::uint32_t kOk = 0;
constexpr std::uint32_t kFailed = 1;
// A connection that has not said who it is by then is dropped: it is not one of ours.
constexpr auto kHelloTimeout = std::chrono::seconds(10);

std::string where(const RendezvousOptions& o) {
  const bool v6 = o.host.find(':') != std::string::npos;
  return "rendezvous at " + (v6 ? "[" + o.host + "]" : o.host) + ":" + std::to_string(o.port);
}

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
}

// Waits for `events` on fd; false when the deadline passed first.
bool wait_io(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) throw Error(system_message("poll", errno));
  }
}

// Outcomes of moving a message whole: a peer that closes or stalls is not an exception at
// the root, which must go on serving the others.
enum class Io { done, closed, timed_out };

Io read_exact(int fd, void* data, std::size_t size, Clock::time_point deadline) {
  auto* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::recv(fd, p, size, 0);
    if (n > 0) {
      p += n;
      size -= static_cast<std::size_t>(n);
    } else if (n == 0) {
      return Io::closed;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!wait_io(fd, POLLIN, deadline)) return Io::timed_out;
    } else if (errno == ECONNRESET) {
      return Io::closed;
    } else if (errno != EINTR) {
      throw Error(system_message("recv", errno));
    }
  }
  return Io::done;
}

Io write_all(int fd, const std::string& data, Clock::time_point deadline) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n >= 0) {
      done += static_cast<std::size_t>(n);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!wait_io(fd, POLLOUT, deadline)) return Io::timed_out;
    } else if (errno == EPIPE || errno == ECONNRESET) {
      return Io::closed;
    } else if (errno != EINTR) {
      throw Error(system_message("send", errno));
    }
  }
  return Io::done;
}

void put_u32(std::string& out, std::uint32_t v) {
  const std::uint32_t n = htonl(v);
  out.append(reinterpret_cast<const char*>(&n), 4);
}

std::string hello_message(const RendezvousOptions& o, const std::string& failure, const std::string& contribution) {
  const std::string key = o.key.substr(0, kMaxKey);
  const std::string why = failure.substr(0, kMaxFailure);
  std::string out;
  put_u32(out, kMagic);
  put_u32(out, static_cast<std::uint32_t>(o.rank));
  put_u32(out, static_cast<std::uint32_t>(o.size));
  put_u32(out, static_cast<std::uint32_t>(key.size()));
  put_u32(out, static_cast<std::uint32_t>(why.size()));
  put_u32(out, static_cast<std::uint32_t>(contribution.size()));
  return out + key + why + contribution;
}

std::string reply_message(std::uint32_t status, const std::string& body) {
  std::string out;
  put_u32(out, kMagic);
  put_u32(out, status);
  put_u32(out, static_cast<std::uint32_t>(body.size()));
  return out + body;
}

struct Hello {
  int rank = 0;
  int size = 0;
  std::string key;
  std::string failure;
  std::string contribution;
};

// Reads a peer's hello; nothing when the connection is not a cohort rank of this protocol.
std::optional<Hello> read_hello(int fd, Clock::time_point deadline) {
  std::uint32_t head[6];
  if (read_exact(fd, head, sizeof head, deadline) != Io::done) return std::nullopt;
  for (auto& v : head) v = ntohl(v);
  if (head[0] != kMagic || head[3] > kMaxKey || head[4] > kMaxFailure || head[5] > kMaxContribution) return std::nullopt;
  Hello h;
  h.rank = static_cast<int>(head[1]);
  h.size = static_cast<int>(head[2]);
  h.key.resize(head[3]);
  h.failure.resize(head[4]);
  h.contribution.resize(head[5]);
  if (read_exact(fd, h.key.data(), h.key.size(), deadline) != Io::done ||
      read_exact(fd, h.failure.data(), h.failure.size(), deadline) != Io::done ||
      read_exact(fd, h.contribution.data(), h.contribution.size(), deadline) != Io::done) {
    return std::nullopt;
  }
  return h;
}

Fd listen_on(const RendezvousOptions& o) {
  // Every address of rank 0's node: MASTER_ADDR names one of them, and which one is the
  // launcher's business. IPv6 with IPv4 mapped where the node has it, else IPv4 alone.
  Fd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const int on = 1, off = 0;
  int rc = -1;
  if (fd) {
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    a.sin6_port = htons(static_cast<std::uint16_t>(o.port));
    rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  if (!fd || (rc != 0 && errno == EADDRNOTAVAIL)) {
    fd = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) throw Error(where(o) + ": " + system_message("socket", errno));
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = htons(static_cast<std::uint16_t>(o.port));
    rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  if (rc != 0) {
    const int e = errno;
    throw Error(where(o) + ": rank 0 cannot listen on port " + std::to_string(o.port) + ": " +
                std::strerror(e) +
                (e == EADDRINUSE ? " (another program holds it, such as PyTorch's store on MASTER_PORT under torchrun: "
                                    "set COHORT_RENDEZVOUS_PORT to a free port, the same on every rank)"
                                  : ""));
  }
  if (::listen(fd.get(), SOMAXCONN) != 0) throw Error(where(o) + ": " + system_message("listen", errno));
  return fd;
}

std::string list_ranks(const std::vector<int>& ranks) {
  std::string out;
  for (std::size_t i = 0; i < ranks.size() && i < 8; ++i) out += (i ? ", " : "") + std::to_string(ranks[i]);
  if (ranks.size() > 8) out += " and " + std::to_string(ranks.size() - 8) + " more";
  return out;
}

// Who came to rank 0: the ranks' connections, and what is wrong with any of them.
struct Arrivals {
  std::vector<Fd> ranks;
  // Processes of this job that cannot take a rank (a duplicate, another world size): they
  // count as arrived, so that the job fails once all are in rather than at the timeout.
  std::vector<Fd> refused;
  std::map<int, std::string> failures;  // by rank: the first reported wins the message
  std::vector<std::string> contributions;  // by rank
  int arrived = 1;
};

// Takes one connection's hello: a stranger is dropped or turned away, a rank of this job
// joins `in`.
void admit(const RendezvousOptions& o, Fd peer, Arrivals& in, Clock::time_point deadline) {
  const auto hello = read_hello(peer.get(), std::min(deadline, Clock::now() + kHelloTimeout));
  if (!hello) return;  // not ours: dropped
  if (hello->key != o.key) {
    write_all(peer.get(),
              reply_message(kFailed, where(o) + " belongs to job '" + o.key + "', not to job '" + hello->key +
                                         "': two jobs share a MASTER_PORT; give each its own"),
              Clock::now() + kHelloTimeout);
    return;
  }
  ++in.arrived;
  if (hello->size != o.size) {
    in.failures.emplace(hello->rank, "it has WORLD_SIZE=" + std::to_string(hello->size) + " where rank 0 has " +
                                         std::to_string(o.size) + ": every rank needs the same WORLD_SIZE");
    in.refused.push_back(std::move(peer));
    return;
  }
  if (hello->rank <= 0 || hello->rank >= o.size || in.ranks[static_cast<std::size_t>(hello->rank)]) {
    in.failures.emplace(hello->rank, "two processes claim rank " + std::to_string(hello->rank) +
                                         " (each rank of the job needs its own RANK)");
    in.refused.push_back(std::move(peer));
    return;
  }
  if (!hello->failure.empty()) in.failures.emplace(hello->rank, hello->failure);
  in.contributions[static_cast<std::size_t>(hello->rank)] = std::move(hello->contribution);
  in.ranks[static_cast<std::size_t>(hello->rank)] = std::move(peer);
}

// Accepts connections until every rank has arrived or the deadline passes.
Arrivals gather(const RendezvousOptions& o, const std::string& own_failure, const std::string& own_contribution) {
  const Fd listener = listen_on(o);
  const auto deadline = Clock::now() + o.timeout;
  Arrivals in;
  in.ranks.resize(static_cast<std::size_t>(o.size));
  in.contributions.resize(static_cast<std::size_t>(o.size));
  in.contributions[0] = own_contribution;
  if (!own_failure.empty()) in.failures.emplace(0, own_failure);
  while (in.arrived < o.size) {
    if (!wait_io(listener.get(), POLLIN, deadline)) break;
    Fd peer(::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!peer) {
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
      throw Error(where(o) + ": " + system_message("accept", errno));
    }
    admit(o, std::move(peer), in, deadline);
  }
  return in;
}

// Why the job cannot go on, or empty when every rank arrived ready.
std::string verdict(const RendezvousOptions& o, const Arrivals& in) {
  if (!in.failures.empty()) {
    const auto& [rank, why] = *in.failures.begin();
    return where(o) + ": rank " + std::to_string(rank) + " cannot take part: " + why;
  }
  if (in.arrived >= o.size) return "";
  std::vector<int> missing;
  for (int r = 1; r < o.size; ++r) {
    if (!in.ranks[static_cast<std::size_t>(r)]) missing.push_back(r);
  }
  return where(o) + ": rank(s) " + list_ranks(missing) + " did not arrive within " +
         std::to_string(std::chrono::duration_cast<std::chrono::seconds>(o.timeout).count()) +
         " s (COHORT_RENDEZVOUS_TIMEOUT): check that every rank was started and can reach "
         "MASTER_ADDR:MASTER_PORT";
}

// What rank 0 sends every rank once all are in: its own payload, or every rank's
// contribution.
using MakeReply = std::function<std::string(const std::vector<std::string>& contributions)>;

std::string serve(const RendezvousOptions& o, const std::string& own_failure, const std::string& own_contribution,
                  const MakeReply& make_payload, std::uint32_t max_payload) {
  const Arrivals in = gather(o, own_failure, own_contribution);
  std::string message = verdict(o, in);
  std::string payload;
  if (message.empty()) {
    try {
      payload = make_payload(in.contributions);
    } catch (const std::exception& e) {
      message = where(o) + ": rank 0 cannot take part: " + e.what();
    }
    if (message.empty() && payload.size() > max_payload) {
      message = where(o) + ": the payload of " + std::to_string(payload.size()) + " bytes is over the " +
                std::to_string(max_payload / 1024) + " KiB limit";
    }
  }

  const std::string reply = message.empty() ? reply_message(kOk, payload) : reply_message(kFailed, message);
  const auto send_by = Clock::now() + kHelloTimeout;
  std::vector<int> gone;
  for (int r = 1; r < o.size; ++r) {
    const Fd& fd = in.ranks[static_cast<std::size_t>(r)];
    if (fd && write_all(fd.get(), reply, send_by) != Io::done) gone.push_back(r);
  }
  for (const Fd& fd : in.refused) write_all(fd.get(), reply, send_by);
  if (!message.empty()) throw Error(message);
  if (!gone.empty()) {
    throw Error(where(o) + ": rank(s) " + list_ranks(gone) +
                " left before the rendezvous finished: see their output for why");
  }
  return payload;
}

// Connects to host:port, retrying while rank 0 is not yet listening.
Fd connect_to(const RendezvousOptions& o, Clock::time_point deadline) {
  auto backoff = std::chrono::milliseconds(10);
  std::string last = "no attempt";
  for (;;) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(o.port);
    const int gai = ::getaddrinfo(o.host.c_str(), port.c_str(), &hints, &found);
    if (gai == 0) {
      for (addrinfo* a = found; a; a = a->ai_next) {
        Fd fd(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
        if (!fd) {
          last = system_message("socket", errno);
          continue;
        }
        int rc = ::connect(fd.get(), a->ai_addr, a->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
          if (wait_io(fd.get(), POLLOUT, std::min(deadline, Clock::now() + std::chrono::seconds(5)))) {
            int err = 0;
            socklen_t len = sizeof err;
            ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
            rc = err == 0 ? 0 : -1;
            errno = err;
          } else {
            errno = ETIMEDOUT;
          }
        }
        if (rc == 0) {
          ::freeaddrinfo(found);
          const int on = 1;
          ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
          return fd;
        }
        last = system_message("connect", errno);
      }
      ::freeaddrinfo(found);
    } else if (gai == EAI_NONAME || gai == EAI_SERVICE || gai == EAI_FAMILY) {
      throw input_error(where(o) + ": MASTER_ADDR=" + o.host + " does not resolve (" + ::gai_strerror(gai) +
                        "): set it to the name or address of rank 0's node");
    } else {
      last = std::string("resolving MASTER_ADDR: ") + ::gai_strerror(gai);
    }
    if (Clock::now() + backoff >= deadline) {
      throw Error(where(o) + ": rank " + std::to_string(o.rank) + " could not reach rank 0 within " +
                  std::to_string(std::chrono::duration_cast<std::chrono::seconds>(o.timeout).count()) +
                  " s (COHORT_RENDEZVOUS_TIMEOUT; last: " + last +
                  "): check that rank 0 runs and that MASTER_ADDR names its node");
    }
    // Rank 0 may simply not have started yet: try again soon, then less often.
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(500));
  }
}

std::string join(const RendezvousOptions& o, const std::string& failure, const std::string& contribution) {
  const auto deadline = Clock::now() + o.timeout;
  const Fd fd = connect_to(o, deadline);
  if (write_all(fd.get(), hello_message(o, failure, contribution), deadline) != Io::done) {
    throw Error(where(o) + ": rank 0 closed the connection before rank " + std::to_string(o.rank) +
                " could say who it is");
  }
  // Rank 0 answers once every rank has arrived, or at its own deadline; a little grace for
  // its reply to travel.
  const auto reply_by = deadline + std::chrono::seconds(10);
  std::uint32_t head[3];
  const Io got = read_exact(fd.get(), head, sizeof head, reply_by);
  if (got == Io::timed_out) {
    throw Error(where(o) + ": rank 0 did not answer within " +
                std::to_string(std::chrono::duration_cast<std::chrono::seconds>(o.timeout).count()) +
                " s (COHORT_RENDEZVOUS_TIMEOUT)");
  }
  if (got == Io::closed) {
    throw Error(where(o) + ": rank 0 closed the connection without an answer (is something other "
                "than this job's rank 0 listening on MASTER_PORT? see rank 0's output)");
  }
  for (auto& v : head) v = ntohl(v);
  if (head[0] != kMagic || head[1] > kFailed || head[2] > kMaxGathered + kMaxFailure + 1024) {
    throw Error(where(o) + ": the answer is not a cohort rendezvous reply: something other than this "
                "job's rank 0 listens on MASTER_PORT; set another MASTER_PORT");
  }
  std::string body(head[2], '\0');
  if (read_exact(fd.get(), body.data(), body.size(), reply_by) != Io::done) {
    throw Error(where(o) + ": rank 0's answer was cut short");
  }
  if (head[1] == kFailed) throw Error(body);
  return body;
}

long long env_number(const char* name, long long low, long long high) {
  const char* text = std::getenv(name);
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || errno != 0 || value < low || value > high) {
    throw input_error(std::string(name) + "=" + text + ": expected a whole number from " + std::to_string(low) +
                      " to " + std::to_string(high));
  }
  return value;
}

}  // namespace

RendezvousOptions rendezvous_from_environment(int rank, int size) {
  RendezvousOptions o;
  o.rank = rank;
  o.size = size;
  auto text = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };
  o.host = text("MASTER_ADDR");
  if (size > 1) {
    if (o.host.empty() || text("MASTER_PORT").empty()) {
      throw input_error(std::string(o.host.empty() ? "MASTER_ADDR" : "MASTER_PORT") +
                        " is not set: the ranks meet at MASTER_ADDR:MASTER_PORT (cohort launch and "
                        "srun --cohort set both), or run them under MPI (srun --mpi=pmix, mpirun)");
    }
    o.port = static_cast<int>(env_number("MASTER_PORT", 1, 65535));
  }
  // A program that also runs PyTorch's env:// store holds MASTER_PORT on rank 0 for as long
  // as its process group lives: cohort can meet on a port of its own.
  if (!text("COHORT_RENDEZVOUS_PORT").empty()) {
    o.port = static_cast<int>(env_number("COHORT_RENDEZVOUS_PORT", 1, 65535));
  }
  if (!text("COHORT_RENDEZVOUS_TIMEOUT").empty()) {
    o.timeout = std::chrono::seconds(env_number("COHORT_RENDEZVOUS_TIMEOUT", 1, 24 * 3600));
  }
  const auto part = [&](const char* name) {
    const std::string v = text(name);
    return v.empty() ? std::string("-") : v;
  };
  // Not the step: ranks started by several steps (one per node, or per component of a
  // heterogeneous job, whose components also have job ids of their own) are one job.
  const std::string het = text("SLURM_HET_JOB_ID");
  o.key = "job " + (het.empty() ? part("SLURM_JOB_ID") : het) + " restart " + part("COHORT_RESTART_COUNT");
  return o;
}

namespace {

std::string meet(const RendezvousOptions& options, const std::string& failure, const std::string& contribution,
                 const MakeReply& make_payload, std::uint32_t max_payload) {
  if (options.size < 1 || options.rank < 0 || options.rank >= options.size) {
    throw input_error("rendezvous: rank " + std::to_string(options.rank) + " of " + std::to_string(options.size) +
                      ": RANK must be 0..WORLD_SIZE-1");
  }
  if (contribution.size() > kMaxContribution) {
    throw Error("rendezvous: rank " + std::to_string(options.rank) + "'s contribution of " +
                std::to_string(contribution.size()) + " bytes is over the " + std::to_string(kMaxContribution) +
                "-byte limit");
  }
  if (options.size == 1) {
    if (!failure.empty()) throw Error("rank 0 cannot take part: " + failure);
    return make_payload({contribution});
  }
  if (options.port < 1 || options.port > 65535) {
    throw input_error(where(options) + ": MASTER_PORT must be 1..65535");
  }
  return options.rank == 0 ? serve(options, failure, contribution, make_payload, max_payload)
                           : join(options, failure, contribution);
}

}  // namespace

std::string rendezvous(const RendezvousOptions& options, const std::string& failure,
                       const std::function<std::string()>& make_payload) {
  return meet(options, failure, "", [&](const std::vector<std::string>&) { return make_payload(); }, kMaxPayload);
}

std::vector<std::string> rendezvous_gather(const RendezvousOptions& options, const std::string& failure,
                                           const std::string& contribution) {
  // Each contribution behind its length, in rank order.
  const std::string all = meet(options, failure, contribution, [](const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& p : parts) {
      put_u32(out, static_cast<std::uint32_t>(p.size()));
      out += p;
    }
    return out;
  }, kMaxGathered);
  std::vector<std::string> parts;
  std::size_t at = 0;
  while (at + 4 <= all.size() && parts.size() < static_cast<std::size_t>(options.size)) {
    std::uint32_t n = 0;
    std::memcpy(&n, all.data() + at, 4);
    n = ntohl(n);
    if (n > all.size() - at - 4) break;
    parts.push_back(all.substr(at + 4, n));
    at += 4 + n;
  }
  if (parts.size() != static_cast<std::size_t>(options.size) || at != all.size()) {
    throw Error(where(options) + ": rank 0's gathered reply is malformed");
  }
  return parts;
}

}  // namespace cohort::collectives::detail
