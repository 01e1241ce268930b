#include "collectives/tcp_backend.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "collectives/dtype.hpp"
#include "collectives/operation.hpp"
#include "common/error.hpp"

namespace cohort::collectives::detail {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kHelloMagic = 0x43485431;  // "CHT1": cohort TCP mesh, version 1
constexpr std::size_t kTokenLength = 32;

// What tells this node from others: its hostname; for hosts that share a name, the
// kernel's boot id; and the network namespace, so that containers (and emulated nodes) with
// network stacks of their own count as nodes of their own and meet over TCP.
std::string node_identity() {
  std::array<char, 256> host{};
  ::gethostname(host.data(), host.size() - 1);
  std::string boot;
  std::ifstream("/proc/sys/kernel/random/boot_id") >> boot;
  std::array<char, 128> net{};
  const ssize_t n = ::readlink("/proc/self/ns/net", net.data(), net.size() - 1);
  return std::string(host.data()) + "/" + boot + "/" + (n > 0 ? std::string(net.data(), static_cast<std::size_t>(n)) : "");
}

// The address other ranks reach this one at: the one this host would send from towards
// MASTER_ADDR (torchrun's rank 0), found by connecting a UDP socket, which sends nothing;
// without MASTER_ADDR, the loopback, which serves ranks on one node.
std::string reachable_address() {
  const char* master = std::getenv("MASTER_ADDR");
  if (!master || !*master) return "127.0.0.1";
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(master, "9", &hints, &found) != 0) {
    throw input_error(std::string("MASTER_ADDR=") + master +
                      " does not resolve: set it to the name or address of rank 0's node");
  }
  std::string address = "127.0.0.1";
  for (addrinfo* a = found; a; a = a->ai_next) {
    Fd fd(::socket(a->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd || ::connect(fd.get(), a->ai_addr, a->ai_addrlen) != 0) continue;
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&local), &length) != 0) continue;
    std::array<char, INET6_ADDRSTRLEN> text{};
    const void* raw = local.ss_family == AF_INET6
                          ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr)
                          : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&local)->sin_addr);
    if (::inet_ntop(local.ss_family, raw, text.data(), text.size())) {
      address = text.data();
      break;
    }
  }
  ::freeaddrinfo(found);
  return address;
}

// A listening socket on every address, on a port the kernel picks.
Fd listen_anywhere(int& port) {
  Fd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int off = 0;
  if (fd) {
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fd.reset();
  }
  if (!fd) {
    fd = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw Error(system_message("socket", errno));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      throw Error(system_message("bind a port for the collectives' connections", errno));
    }
  }
  if (::listen(fd.get(), SOMAXCONN) != 0) throw Error(system_message("listen", errno));
  sockaddr_storage bound{};
  socklen_t length = sizeof bound;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &length);
  port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                           : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return fd;
}

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
}

void write_whole(int fd, const void* data, std::size_t bytes, Clock::time_point deadline, const std::string& peer) {
  const auto* p = static_cast<const std::byte*>(data);
  while (bytes) {
    const ssize_t n = ::send(fd, p, bytes, MSG_NOSIGNAL);
    if (n > 0) {
      p += n;
      bytes -= static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd w{fd, POLLOUT, 0};
      if (::poll(&w, 1, remaining_ms(deadline)) == 0) throw Error(peer + " took no data within the timeout");
      continue;
    }
    throw Error(system_message("sending to " + peer, errno));
  }
}

// False when the peer closed the connection before sending anything.
bool read_whole(int fd, void* data, std::size_t bytes, Clock::time_point deadline, const std::string& peer) {
  auto* p = static_cast<std::byte*>(data);
  const std::size_t wanted = bytes;
  while (bytes) {
    const ssize_t n = ::recv(fd, p, bytes, 0);
    if (n > 0) {
      p += n;
      bytes -= static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) {
      if (bytes == wanted) return false;
      throw Error(peer + " closed its connection in the middle of a message");
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      pollfd r{fd, POLLIN, 0};
      if (::poll(&r, 1, remaining_ms(deadline)) == 0) throw Error(peer + " sent nothing within the timeout");
      continue;
    }
    throw Error(system_message("receiving from " + peer, errno));
  }
  return true;
}

struct Hello {
  std::uint32_t magic = 0;
  std::uint32_t rank = 0;
  char token[kTokenLength] = {};
};

void tune(int fd) {
  const int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

std::string rank_name(int rank) { return "rank " + std::to_string(rank); }

std::size_t block_begin(std::size_t count, int block, int blocks) {
  return count * static_cast<std::size_t>(block) / static_cast<std::size_t>(blocks);
}

}  // namespace

TcpEngine::TcpEngine(int rank, int size, PeerDirectory& directory, TcpSettings settings)
    : rank_(rank), size_(size), settings_(settings) {
  if (size < 1 || rank < 0 || rank >= size) {
    throw input_error("rank " + std::to_string(rank) + " of " + std::to_string(size) +
                      ": a rank is 0..size-1 and size is at least 1");
  }
  if (settings_.timeout.count() <= 0) settings_.timeout = collectives_timeout();
  peers_.resize(static_cast<std::size_t>(size_));
  if (size_ == 1) return;
  connect_mesh(directory);
  if (node_local_ && settings_.algorithm != AllreduceAlgorithm::ring) map_node_segments();
}

TcpEngine::~TcpEngine() {
  node_.reset();
  for (const Segment& s : segments_) ::munmap(s.base, s.bytes);
}

void TcpEngine::connect_mesh(PeerDirectory& directory) {
  const auto deadline = Clock::now() + settings_.timeout;
  int port = 0;
  Fd listener = listen_anywhere(port);
  // Everything this rank publishes before it reads anything: a directory may exchange all
  // of it in one round (the ranks that meet at MASTER_ADDR:MASTER_PORT).
  if (rank_ == 0) directory.set("cohort/tcp/token", unguessable_name(kTokenLength));
  const std::string me = node_identity();
  directory.set("cohort/tcp/rank/" + std::to_string(rank_), me + "\n" + reachable_address() + "\n" + std::to_string(port));
  token_ = directory.get("cohort/tcp/token");

  // Each rank connects to the ranks below it and is connected to by those above.
  node_local_ = true;
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    std::istringstream entry(directory.get("cohort/tcp/rank/" + std::to_string(r)));
    std::string node, address, peer_port;
    std::getline(entry, node);
    std::getline(entry, address);
    std::getline(entry, peer_port);
    if (node != me) node_local_ = false;
    if (r < rank_) peers_[static_cast<std::size_t>(r)] = dial(r, address, peer_port, deadline);
  }
  accept_higher_ranks(listener, deadline);
}

Fd TcpEngine::dial(int r, const std::string& address, const std::string& port, Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (::getaddrinfo(address.c_str(), port.c_str(), &hints, &found) != 0) {
    throw Error(rank_name(r) + " published an address that is not one (" + address + ":" + port + ")");
  }
  Fd fd(::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int rc = fd ? ::connect(fd.get(), found->ai_addr, found->ai_addrlen) : -1;
  const int error = errno;
  ::freeaddrinfo(found);
  if (rc != 0) {
    throw Error(system_message("connecting to " + rank_name(r) + " at " + address + ":" + port, error) +
                ": check that the nodes reach each other on any TCP port");
  }
  tune(fd.get());
  Hello hello;
  hello.magic = kHelloMagic;
  hello.rank = static_cast<std::uint32_t>(rank_);
  std::memcpy(hello.token, token_.data(), std::min(token_.size(), sizeof hello.token));
  write_whole(fd.get(), &hello, sizeof hello, deadline, rank_name(r));
  return fd;
}

void TcpEngine::accept_higher_ranks(const Fd& listener, Clock::time_point deadline) {
  for (int waiting = size_ - 1 - rank_; waiting > 0;) {
    pollfd p{listener.get(), POLLIN, 0};
    const int ready = ::poll(&p, 1, remaining_ms(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) throw Error(system_message("poll", errno));
    if (ready == 0) {
      std::string missing;
      for (int r = rank_ + 1; r < size_; ++r) {
        if (!peers_[static_cast<std::size_t>(r)]) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
      }
      throw Error("rank(s) " + missing + " did not connect to rank " + std::to_string(rank_) + " within " +
                  std::to_string(settings_.timeout.count() / 1000) + " s");
    }
    Fd fd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd) continue;
    tune(fd.get());
    Hello hello;
    // A stranger (a port scanner, another job) that does not say the right thing in time is
    // dropped, and the mesh goes on waiting for its own.
    try {
      const auto hello_deadline = std::min(deadline, Clock::now() + std::chrono::seconds(10));
      if (!read_whole(fd.get(), &hello, sizeof hello, hello_deadline, "a connecting process")) continue;
    } catch (const Error&) {
      continue;
    }
    const int from = static_cast<int>(hello.rank);
    if (hello.magic != kHelloMagic || std::string(hello.token, sizeof hello.token) != token_ || from <= rank_ ||
        from >= size_) {
      continue;
    }
    if (peers_[static_cast<std::size_t>(from)]) {
      throw Error("two processes claim rank " + std::to_string(from) + ": each rank of the job needs its own");
    }
    peers_[static_cast<std::size_t>(from)] = std::move(fd);
    --waiting;
  }
}

void TcpEngine::map_node_segments() {
  const std::size_t bytes = NodeAllreduce::segment_bytes(settings_.chunk_bytes);
  auto name = [&](int r) { return "/cohort-" + token_ + "-" + std::to_string(r); };
  segments_.resize(static_cast<std::size_t>(size_));
  auto map = [&](int r, int flags) {
    Fd fd(::shm_open(name(r).c_str(), flags, 0600));
    if (!fd) throw Error(system_message("shm_open " + name(r), errno));
    if ((flags & O_CREAT) && ::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) {
      const int e = errno;
      ::shm_unlink(name(r).c_str());
      throw Error(system_message("sizing the shared segment " + name(r) + " (is /dev/shm full?)", e));
    }
    void* base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (base == MAP_FAILED) throw Error(system_message("mmap " + name(r), errno));
    segments_[static_cast<std::size_t>(r)] = Segment{base, bytes};
  };
  try {
    map(rank_, O_CREAT | O_EXCL | O_RDWR);
    NodeAllreduce::prepare_segment(segments_[static_cast<std::size_t>(rank_)].base, settings_.chunk_bytes);
  } catch (...) {
    ::shm_unlink(name(rank_).c_str());
    throw;
  }
  // Every segment exists and is ready before anyone opens a peer's; every rank has mapped
  // every segment before their names go, so nothing is left in /dev/shm whatever happens.
  std::exception_ptr failure;
  try {
    barrier();
    for (int r = 0; r < size_; ++r) {
      if (r != rank_) map(r, O_RDWR);
    }
    barrier();
  } catch (...) {
    failure = std::current_exception();
  }
  ::shm_unlink(name(rank_).c_str());
  if (failure) std::rethrow_exception(failure);
  std::vector<std::byte*> bases;
  for (const Segment& s : segments_) bases.push_back(static_cast<std::byte*>(s.base));
  node_ = std::make_unique<NodeAllreduce>(
      std::move(bases), rank_, settings_.chunk_bytes,
      std::max(std::chrono::seconds(1), std::chrono::duration_cast<std::chrono::seconds>(settings_.timeout)));
}

void TcpEngine::exchange(const char* what, int to, const void* out, std::size_t out_bytes, int from, void* in,
                         std::size_t in_bytes) {
  const int out_fd = out_bytes ? peers_[static_cast<std::size_t>(to)].get() : -1;
  const int in_fd = in_bytes ? peers_[static_cast<std::size_t>(from)].get() : -1;
  const auto* o = static_cast<const std::byte*>(out);
  auto* i = static_cast<std::byte*>(in);
  const auto deadline = Clock::now() + settings_.timeout;
  while (out_bytes || in_bytes) {
    std::array<pollfd, 2> p{};
    int n = 0;
    if (out_bytes && in_bytes && out_fd == in_fd) {
      p[n++] = pollfd{out_fd, POLLIN | POLLOUT, 0};
    } else {
      if (out_bytes) p[n++] = pollfd{out_fd, POLLOUT, 0};
      if (in_bytes) p[n++] = pollfd{in_fd, POLLIN, 0};
    }
    const int ready = ::poll(p.data(), static_cast<nfds_t>(n), remaining_ms(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) throw Error(system_message(std::string(what) + ": poll", errno));
    if (ready == 0) {
      const int late = in_bytes ? from : to;
      throw PeerTimeout(std::string(what) + ": rank " + std::to_string(late) + " did not " +
                  (in_bytes ? "send its part" : "take this rank's part") + " within " +
                  std::to_string(settings_.timeout.count() / 1000) +
                  " s (COHORT_COLLECTIVES_TIMEOUT): every rank must call the same collectives in the same order "
                  "with the same count, dtype and op",
                  late);
    }
    if (in_bytes) {
      const ssize_t got = ::recv(in_fd, i, in_bytes, 0);
      if (got > 0) {
        i += got;
        in_bytes -= static_cast<std::size_t>(got);
      } else if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        throw Error(std::string(what) + ": rank " + std::to_string(from) +
                    " closed its connection (it ended or failed; its own output says why)");
      }
    }
    if (out_bytes) {
      const ssize_t sent = ::send(out_fd, o, out_bytes, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent > 0) {
        o += sent;
        out_bytes -= static_cast<std::size_t>(sent);
      } else if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        throw Error(std::string(what) + ": rank " + std::to_string(to) +
                    " closed its connection (it ended or failed; its own output says why)");
      }
    }
  }
}

std::byte* TcpEngine::scratch(std::size_t bytes) {
  if (scratch_.size() < bytes) scratch_.resize(bytes);
  return scratch_.data();
}

void TcpEngine::check_agreement(const char* what, int kind, std::size_t count, DType dtype, int extra) {
  // max(x) == -max(-x) exactly when every rank has the same x.
  const std::array<std::int64_t, 4> mine{kind, static_cast<std::int64_t>(count), static_cast<std::int64_t>(dtype),
                                         extra};
  std::array<std::int64_t, 8> both{};
  for (int k = 0; k < 4; ++k) {
    both[k] = mine[k];
    both[4 + k] = -mine[k];
  }
  ring_allreduce(both.data(), both.data(), both.size(), DType::int64, ReduceOp::max);
  for (int k = 0; k < 4; ++k) {
    if (both[k] != -both[4 + k]) {
      static constexpr const char* kField[4] = {"operation", "count", "dtype", "op or root"};
      throw Error(std::string(what) + ": ranks disagree about the " + kField[k] + " (rank " + std::to_string(rank_) +
                  " has " + std::to_string(mine[k]) +
                  "): every rank must call the same collectives in the same order with the same count, dtype and op");
    }
  }
}

// Reduce-scatter then allgather round the ring of ranks: block b of the result ends on rank
// b − 1 after the first phase and travels on to every rank in the second.
void TcpEngine::ring_allreduce(const void* send, void* recv, std::size_t count, DType dtype, ReduceOp op) {
  const std::size_t elem = size_of(dtype);
  auto* out = static_cast<std::byte*>(recv);
  if (send != recv) std::memcpy(out, send, count * elem);
  const int right = (rank_ + 1) % size_;
  const int left = (rank_ + size_ - 1) % size_;
  auto begin = [&](int b) { return block_begin(count, b, size_); };
  auto length = [&](int b) { return begin(b + 1) - begin(b); };
  std::byte* incoming = scratch((count / static_cast<std::size_t>(size_) + 1) * elem);
  const ReduceOp step_op = op == ReduceOp::avg ? ReduceOp::sum : op;
  for (int s = 0; s < size_ - 1; ++s) {
    const int outgoing = (rank_ - s + size_) % size_;
    const int arriving = (rank_ - s - 1 + size_) % size_;
    exchange("allreduce", right, out + begin(outgoing) * elem, length(outgoing) * elem, left, incoming,
             length(arriving) * elem);
    std::byte* target = out + begin(arriving) * elem;
    const void* sources[2] = {target, incoming};
    reduce(target, sources, 2, length(arriving), dtype, step_op, size_);
  }
  for (int s = 0; s < size_ - 1; ++s) {
    const int outgoing = (rank_ + 1 - s + size_) % size_;
    const int arriving = (rank_ - s + size_) % size_;
    exchange("allreduce", right, out + begin(outgoing) * elem, length(outgoing) * elem, left,
             out + begin(arriving) * elem, length(arriving) * elem);
  }
  if (op == ReduceOp::avg) divide(recv, count, dtype, size_);
}

void TcpEngine::allreduce(const void* send, void* recv, std::size_t count, DType dtype, ReduceOp op) {
  if (node_) return node_->run(send, recv, count, dtype, op);
  // A disagreement would leave ranks waiting for parts that never come, or reading one
  // rank's block as another's: one small ring first, as MPI's ring path does.
  check_agreement("allreduce", 1, count, dtype, static_cast<int>(op));
  ring_allreduce(send, recv, count, dtype, op);
}

// A chain from the root, in pieces, so that each rank forwards one piece while the next
// arrives.
void TcpEngine::broadcast(void* buffer, std::size_t count, DType dtype, int root) {
  check_agreement("broadcast", 2, count, dtype, root);
  constexpr std::size_t kPiece = 1u << 20;
  const int position = (rank_ - root + size_) % size_;
  const int previous = (rank_ + size_ - 1) % size_;
  const int next = (rank_ + 1) % size_;
  auto* bytes = static_cast<std::byte*>(buffer);
  const std::size_t total = count * size_of(dtype);
  const std::size_t pieces = (total + kPiece - 1) / kPiece;
  auto offset = [&](std::size_t k) { return k * kPiece; };
  auto length = [&](std::size_t k) { return std::min(kPiece, total - k * kPiece); };
  // Step t receives piece t from the previous rank while passing piece t − 1 to the next.
  for (std::size_t t = 0; t <= pieces; ++t) {
    const bool receives = position > 0 && t < pieces;
    const bool passes = position < size_ - 1 && t >= 1;
    exchange("broadcast", next, passes ? bytes + offset(t - 1) : nullptr, passes ? length(t - 1) : 0, previous,
             receives ? bytes + offset(t) : nullptr, receives ? length(t) : 0);
  }
}

void TcpEngine::allgather(const void* send, void* recv, std::size_t count, DType dtype) {
  check_agreement("allgather", 3, count, dtype, 0);
  const std::size_t block = count * size_of(dtype);
  auto* out = static_cast<std::byte*>(recv);
  if (send != out + static_cast<std::size_t>(rank_) * block) {
    std::memmove(out + static_cast<std::size_t>(rank_) * block, send, block);
  }
  const int right = (rank_ + 1) % size_;
  const int left = (rank_ + size_ - 1) % size_;
  for (int s = 0; s < size_ - 1; ++s) {
    const auto outgoing = static_cast<std::size_t>((rank_ - s + size_) % size_);
    const auto arriving = static_cast<std::size_t>((rank_ - s - 1 + size_) % size_);
    exchange("allgather", right, out + outgoing * block, block, left, out + arriving * block, block);
  }
}

// The allreduce's first phase, turned so that block r ends on rank r: each step passes on
// the partial sum it has just made.
void TcpEngine::reduce_scatter(const void* send, void* recv, std::size_t count, DType dtype, ReduceOp op) {
  check_agreement("reduce_scatter", 4, count, dtype, static_cast<int>(op));
  const std::size_t block = count * size_of(dtype);
  const auto* in = static_cast<const std::byte*>(send);
  const int right = (rank_ + 1) % size_;
  const int left = (rank_ + size_ - 1) % size_;
  std::byte* partial = scratch(2 * block + 1);
  std::byte* incoming = partial + block;
  const ReduceOp step_op = op == ReduceOp::avg ? ReduceOp::sum : op;
  auto own = [&](int b) { return in + static_cast<std::size_t>(b) * block; };
  const std::byte* outgoing = own((rank_ + size_ - 1) % size_);
  for (int s = 0; s < size_ - 1; ++s) {
    const int arriving = (rank_ - s - 2 + 2 * size_) % size_;
    exchange("reduce_scatter", right, outgoing, block, left, incoming, block);
    // The last step's sum is this rank's block: it goes straight to recv, which may be the
    // rank's own block of send (read here for the last time).
    std::byte* target = s == size_ - 2 ? static_cast<std::byte*>(recv) : partial;
    const void* sources[2] = {own(arriving), incoming};
    reduce(target, sources, 2, count, dtype, step_op, size_);
    outgoing = partial;
  }
  if (op == ReduceOp::avg) divide(recv, count, dtype, size_);
}

void TcpEngine::barrier() {
  // Every rank's byte must pass through every other rank before the ring ends.
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size_), 1);
  ring_allreduce(bytes.data(), bytes.data(), bytes.size(), DType::uint8, ReduceOp::max);
}

}  // namespace cohort::collectives::detail
