#include "collectives/ring_allreduce.hpp"

#include <algorithm>
#include <climits>
#include <cstring>

#include "collectives/dtype.hpp"
#include "collectives/mpi_backend.hpp"

namespace cohort::collectives::detail {
namespace {

constexpr int kTag = 0x636f;  // this communicator carries nothing else point-to-point

std::size_t segment_begin(std::size_t count, int s, int n) {
  return count * static_cast<std::size_t>(s) / static_cast<std::size_t>(n);
}

int wrap(int i, int n) { return ((i % n) + n) % n; }

}  // namespace

RingAllreduce::RingAllreduce(MPI_Comm comm, std::size_t chunk_bytes)
    : comm_(comm), chunk_bytes_(std::min<std::size_t>(chunk_bytes, INT_MAX)) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  // Value-initialised: every page is touched now, not during an allreduce.
  staging_.assign(kSlots * chunk_bytes_, std::byte{0});
}

void RingAllreduce::run(const void* send, void* recv, std::size_t count, DType dtype, ReduceOp op) {
  const int n = size_;
  const std::size_t elem = size_of(dtype);
  auto* out = static_cast<std::byte*>(recv);
  if (send != recv && count) std::memcpy(recv, send, count * elem);
  if (count == 0 || n == 1) return;
  const int right = wrap(rank_ + 1, n);
  const int left = wrap(rank_ - 1, n);
  const std::size_t chunk_elems = chunk_bytes_ / elem;
  // avg is summed around the ring and divided once, by the segment's owner.
  const ReduceOp ring_op = op == ReduceOp::avg ? ReduceOp::sum : op;

  // One step: send segment `out_seg` to the right while receiving segment `in_seg` from the
  // left, chunk by chunk; with `reduce`, arriving chunks land in staging and are reduced into
  // recv, otherwise they land in recv directly.
  auto step = [&](int out_seg, int in_seg, bool reduce) {
    const std::size_t ob = segment_begin(count, out_seg, n), oe = segment_begin(count, out_seg + 1, n);
    const std::size_t ib = segment_begin(count, in_seg, n), ie = segment_begin(count, in_seg + 1, n);
    const std::size_t out_chunks = (oe - ob + chunk_elems - 1) / chunk_elems;
    const std::size_t in_chunks = (ie - ib + chunk_elems - 1) / chunk_elems;
    std::vector<MPI_Request> sends(out_chunks, MPI_REQUEST_NULL);
    std::vector<MPI_Request> recvs(in_chunks, MPI_REQUEST_NULL);
    auto in_ptr = [&](std::size_t c) {
      return reduce ? staging_.data() + (c % kSlots) * chunk_bytes_ : out + (ib + c * chunk_elems) * elem;
    };
    auto in_len = [&](std::size_t c) { return std::min(chunk_elems, ie - ib - c * chunk_elems); };
    auto post_recv = [&](std::size_t c) {
      check_mpi(MPI_Irecv(in_ptr(c), static_cast<int>(in_len(c) * elem), MPI_BYTE, left, kTag, comm_, &recvs[c]),
                "MPI_Irecv");
    };
    // Keep up to kSlots − 1 receives posted, so a slot is never refilled before its reduce.
    const std::size_t ahead = reduce ? kSlots - 1 : in_chunks;
    std::size_t posted = 0;
    for (; posted < std::min(ahead, in_chunks); ++posted) post_recv(posted);
    for (std::size_t c = 0; c < out_chunks; ++c) {
      const std::size_t len = std::min(chunk_elems, oe - ob - c * chunk_elems);
      check_mpi(MPI_Isend(out + (ob + c * chunk_elems) * elem, static_cast<int>(len * elem), MPI_BYTE, right,
                          kTag, comm_, &sends[c]),
                "MPI_Isend");
    }
    for (std::size_t c = 0; c < in_chunks; ++c) {
      check_mpi(MPI_Wait(&recvs[c], MPI_STATUS_IGNORE), "MPI_Wait");
      if (reduce) {
        std::byte* dst = out + (ib + c * chunk_elems) * elem;
        const void* srcs[2] = {dst, in_ptr(c)};
        detail::reduce(dst, srcs, 2, in_len(c), dtype, ring_op, n);
      }
      if (posted < in_chunks) post_recv(posted++);
    }
    check_mpi(MPI_Waitall(static_cast<int>(sends.size()), sends.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
  };

  // Reduce-scatter: after n−1 steps this rank holds segment rank+1 reduced over all ranks.
  for (int k = 0; k < n - 1; ++k) step(wrap(rank_ - k, n), wrap(rank_ - k - 1, n), true);
  const int owned = wrap(rank_ + 1, n);
  if (op == ReduceOp::avg) {
    const std::size_t b = segment_begin(count, owned, n), e = segment_begin(count, owned + 1, n);
    divide(out + b * elem, e - b, dtype, n);
  }
  // Allgather: pass the reduced segments around the ring.
  for (int k = 0; k < n - 1; ++k) step(wrap(owned - k, n), wrap(owned - k - 1, n), false);
}

}  // namespace cohort::collectives::detail
