#include "collectives/node_allreduce.hpp"

#include <sched.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>

#include "collectives/dtype.hpp"
#include "collectives/mpi_backend.hpp"
#include "collectives/operation.hpp"
#include "common/error.hpp"

namespace cohort::collectives::detail {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Results of large messages are written past the caches: they would not fit anyway, and
// ordinary stores read every destination line from memory before overwriting it, a third
// more memory traffic than the copy itself.
constexpr std::size_t kStreamFrom = 4u << 20;

void copy_out(std::byte* dst, const std::byte* src, std::size_t bytes, bool stream) {
#if defined(__SSE2__)
  if (stream && bytes >= 256) {
    const std::size_t head = (16 - (reinterpret_cast<std::uintptr_t>(dst) & 15)) & 15;
    std::memcpy(dst, src, head);
    dst += head;
    src += head;
    bytes -= head;
    const std::size_t body = bytes & ~std::size_t{63};
    for (std::size_t i = 0; i < body; i += 64) {
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 16));
      const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 32));
      const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 48));
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), a);
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 16), b);
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 32), c);
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 48), d);
    }
    std::memcpy(dst + body, src + body, bytes - body);
    return;
  }
#endif
  (void)stream;
  std::memcpy(dst, src, bytes);
}

void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();  // streamed stores are weakly ordered: make them visible before returning
#endif
}

constexpr long kSpinMicroseconds = 200;

// Part p of a chunk of len elements split between n ranks: [begin, end).
std::size_t part_begin(std::size_t len, int p, int n) {
  return len * static_cast<std::size_t>(p) / static_cast<std::size_t>(n);
}

}  // namespace

bool NodeAllreduce::spans_one_node(MPI_Comm comm) {
  MPI_Comm node = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node),
            "MPI_Comm_split_type");
  int node_size = 0, size = 0;
  MPI_Comm_size(node, &node_size);
  MPI_Comm_size(comm, &size);
  MPI_Comm_free(&node);
  // Every rank must reach the same answer, or some would take this path and others not.
  int all_local = node_size == size ? 1 : 0;
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, &all_local, 1, MPI_INT, MPI_MIN, comm), "MPI_Allreduce");
  return all_local == 1;
}

NodeAllreduce::NodeAllreduce(MPI_Comm comm, std::size_t chunk_bytes)
    : comm_(comm), chunk_bytes_(chunk_bytes), timeout_(collectives_timeout()) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  // MPI's shared segments need not start on a cache line (Open MPI's start 8 bytes past
  // one): room to align the control block, whose counters each own a cache line.
  constexpr std::size_t kAlign = 64;
  auto aligned = [](void* p) {
    auto address = reinterpret_cast<std::uintptr_t>(p);
    return reinterpret_cast<std::byte*>((address + kAlign - 1) & ~(kAlign - 1));
  };
  const std::size_t segment = kControlBytes + 2 * kSlots * chunk_bytes_ + kAlign;
  MPI_Info info;
  MPI_Info_create(&info);
  // Each rank's segment on its own pages (and NUMA node), not packed after its neighbour's.
  MPI_Info_set(info, "alloc_shared_noncontig", "true");
  void* mine = nullptr;
  const int rc = MPI_Win_allocate_shared(static_cast<MPI_Aint>(segment), 1, info, comm_, &mine,
                                         &window_);
  MPI_Info_free(&info);
  check_mpi(rc, "MPI_Win_allocate_shared");
  // Touch every page now, so that no allreduce pays for a page fault.
  std::memset(mine, 0, segment);
  new (aligned(mine)) Control();
  base_.resize(static_cast<std::size_t>(size_));
  for (int r = 0; r < size_; ++r) {
    MPI_Aint bytes = 0;
    int disp = 0;
    void* ptr = nullptr;
    check_mpi(MPI_Win_shared_query(window_, r, &bytes, &disp, &ptr), "MPI_Win_shared_query");
    base_[static_cast<std::size_t>(r)] = aligned(ptr);
  }
  // Peers may read this rank's control block only once it is constructed.
  check_mpi(MPI_Barrier(comm_), "MPI_Barrier");
}

std::size_t NodeAllreduce::segment_bytes(std::size_t chunk_bytes) {
  return kControlBytes + 2 * kSlots * chunk_bytes;
}

void NodeAllreduce::prepare_segment(void* segment, std::size_t chunk_bytes) {
  std::memset(segment, 0, segment_bytes(chunk_bytes));
  new (segment) Control();
}

NodeAllreduce::NodeAllreduce(std::vector<std::byte*> bases, int rank, std::size_t chunk_bytes,
                             std::chrono::seconds timeout)
    : rank_(rank),
      size_(static_cast<int>(bases.size())),
      chunk_bytes_(chunk_bytes),
      base_(std::move(bases)),
      timeout_(timeout) {}

NodeAllreduce::~NodeAllreduce() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && window_ != MPI_WIN_NULL) MPI_Win_free(&window_);
}

std::byte* NodeAllreduce::send_slot(int rank, std::uint64_t chunk) const {
  return base_[static_cast<std::size_t>(rank)] + kControlBytes + (chunk % kSlots) * chunk_bytes_;
}

std::byte* NodeAllreduce::result_slot(int rank, std::uint64_t chunk) const {
  return base_[static_cast<std::size_t>(rank)] + kControlBytes + (kSlots + chunk % kSlots) * chunk_bytes_;
}

template <class Ready>
void NodeAllreduce::wait_for(Ready ready, const char* what, int peer) const {
  if (ready()) return;
  // Spin briefly (a peer on another core answers within microseconds), then yield so that
  // oversubscribed ranks let their peers run, then sleep in short naps: a peer that is still
  // computing (a progress thread waiting for the rest of backward) costs no core. The spin
  // is bounded by time, not by count: a pause lasts ten times longer on some processors
  // than on others, and a yield on a busy machine can hand the core to another program for
  // a whole scheduler tick.
  auto start = std::chrono::steady_clock::now();
  const auto spin_until = start + std::chrono::microseconds(kSpinMicroseconds);
  for (unsigned i = 1;; ++i) {
    if (ready()) return;
    cpu_relax();
    if ((i & 255u) == 0 && std::chrono::steady_clock::now() > spin_until) break;
  }
  start = std::chrono::steady_clock::now();
  const auto deadline = start + timeout_;
  const auto nap_from = start + std::chrono::microseconds(500);
  for (unsigned i = 0;; ++i) {
    if (ready()) return;
    if ((i & 63u) == 0) {
      const auto now = std::chrono::steady_clock::now();
      if (now > deadline) {
        throw PeerTimeout("allreduce: rank " + std::to_string(peer) + " did not " + what + " within " +
                    std::to_string(timeout_.count()) +
                    " s (COHORT_COLLECTIVES_TIMEOUT): every rank must call the same collectives "
                    "in the same order with the same count, dtype and op",
                    peer);
      }
      if (now > nap_from) {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
        continue;
      }
    }
    sched_yield();
  }
}

// Long: the chunk pipeline's steps are lambdas over the counters and offsets they share.
void NodeAllreduce::run(const void* send, void* recv, std::size_t count, DType dtype,
                        ReduceOp op) {
  const std::uint64_t call = ++calls_;
  Control& me = control(rank_);
  me.desc[call % 2] = Descriptor{count, static_cast<std::int32_t>(dtype), static_cast<std::int32_t>(op)};
  me.calls.value.store(call, std::memory_order_release);
  // A peer cannot be two calls ahead (it would need this rank's chunks of this call), so
  // the descriptor it wrote for this call is still in place.
  std::string mismatch;
  for (int p = 0; p < size_; ++p) {
    if (p == rank_) continue;
    Control& peer = control(p);
    wait_for([&] { return peer.calls.value.load(std::memory_order_acquire) >= call; },
             "join the allreduce", p);
    const Descriptor d = peer.desc[call % 2];
    if (d.count != count || d.dtype != static_cast<std::int32_t>(dtype) ||
        d.op != static_cast<std::int32_t>(op)) {
      mismatch = "allreduce: ranks disagree: rank " + std::to_string(rank_) + " has " +
                 std::to_string(count) + " × " + std::string(to_string(dtype)) + " " +
                 std::string(to_string(op)) + ", rank " + std::to_string(p) + " has " +
                 std::to_string(d.count) + " × " +
                 std::string(to_string(static_cast<DType>(d.dtype))) + " " +
                 std::string(to_string(static_cast<ReduceOp>(d.op))) +
                 ": every rank must pass the same count, dtype and op";
      break;
    }
  }
  // Every rank compared with every other, so all of them throw, and none has moved a chunk.
  if (!mismatch.empty()) throw Error(mismatch);
  if (count == 0) return;

  const std::size_t elem = size_of(dtype);
  const std::size_t chunk_elems = chunk_bytes_ / elem;
  const std::uint64_t nchunks = (count + chunk_elems - 1) / chunk_elems;
  const std::uint64_t first = chunks_;
  const auto* in = static_cast<const std::byte*>(send);
  auto* out = static_cast<std::byte*>(recv);
  const int n = size_;
  const bool stream = count * elem >= kStreamFrom;

  auto chunk_len = [&](std::uint64_t c) {
    return std::min<std::size_t>(chunk_elems, count - static_cast<std::size_t>(c) * chunk_elems);
  };
  auto wait_all = [&](auto counter, std::uint64_t at_least, const char* what) {
    for (int p = 0; p < n; ++p) {
      if (p == rank_) continue;
      Control& peer = control(p);
      wait_for([&] { return (peer.*counter).value.load(std::memory_order_acquire) >= at_least; },
               what, p);
    }
  };

  // Copies this rank's input for its peers' parts of chunk c into its send slot.
  auto publish = [&](std::uint64_t c) {
    const std::uint64_t g = first + c;
    if (g + 1 > kSlots) wait_all(&Control::reduced, g + 1 - kSlots, "reduce an earlier chunk");
    const std::size_t len = chunk_len(c);
    const std::size_t b = part_begin(len, rank_, n) * elem;
    const std::size_t e = part_begin(len, rank_ + 1, n) * elem;
    const std::byte* src = in + c * chunk_elems * elem;
    std::byte* slot = send_slot(rank_, g);
    std::memcpy(slot, src, b);
    std::memcpy(slot + e, src + e, len * elem - e);
    me.published.value.store(g + 1, std::memory_order_release);
  };

  std::vector<const void*> srcs(static_cast<std::size_t>(n));
  publish(0);
  for (std::uint64_t c = 0; c < nchunks; ++c) {
    const std::uint64_t g = first + c;
    const std::size_t len = chunk_len(c);
    const std::size_t offset = c * chunk_elems * elem;
    const std::size_t b = part_begin(len, rank_, n);
    const std::size_t part = part_begin(len, rank_ + 1, n) - b;

    // Reduce-scatter: this rank's part from its input and every peer's copy.
    wait_all(&Control::published, g + 1, "publish its input");
    if (g + 1 > kSlots) wait_all(&Control::gathered, g + 1 - kSlots, "collect an earlier chunk");
    srcs[0] = in + offset + b * elem;
    for (int p = 0, k = 1; p < n; ++p) {
      if (p != rank_) srcs[static_cast<std::size_t>(k++)] = send_slot(p, g) + b * elem;
    }
    // Reduced into the result slot (in cache, where the peers read it), then copied out.
    std::byte* result = result_slot(rank_, g) + b * elem;
    reduce(result, srcs.data(), n, part, dtype, op, n);
    me.reduced.value.store(g + 1, std::memory_order_release);
    copy_out(out + offset + b * elem, result, part * elem, stream);

    if (c + 1 < nchunks) publish(c + 1);

    // Allgather: every other part from its reducer.
    wait_all(&Control::reduced, g + 1, "reduce its part");
    for (int p = 0; p < n; ++p) {
      if (p == rank_) continue;
      const std::size_t pb = part_begin(len, p, n) * elem;
      const std::size_t pe = part_begin(len, p + 1, n) * elem;
      copy_out(out + offset + pb, result_slot(p, g) + pb, pe - pb, stream);
    }
    me.gathered.value.store(g + 1, std::memory_order_release);
  }
  if (stream) stream_fence();
  chunks_ = first + nchunks;
}

}  // namespace cohort::collectives::detail
