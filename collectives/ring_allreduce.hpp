// collectives/ring_allreduce.hpp — cohort's allreduce for ranks on several nodes.
//
// Bandwidth-optimal ring: a reduce-scatter in n−1 steps (each rank passes one segment to its
// right neighbour and reduces the segment arriving from its left), then an allgather in n−1
// steps; every rank sends and receives 2(n−1)/n of the message, the lower bound. Segments
// travel in chunks through persistent staging slots that were touched once when allocated,
// and the next chunk is already in flight while the current one is reduced.
//
// Private to collectives/ (namespace detail): users include communicator.hpp and bucketing.hpp.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <vector>

#include "collectives/communicator.hpp"

namespace cohort::collectives::detail {

class RingAllreduce {
 public:
  static constexpr std::size_t kDefaultChunkBytes = 1024 * 1024;
  static constexpr int kSlots = 4;

  RingAllreduce(MPI_Comm comm, std::size_t chunk_bytes = kDefaultChunkBytes);
  // Every rank calls with the same count, dtype and op. send == recv is in place.
  void run(const void* send, void* recv, std::size_t count, DType dtype, ReduceOp op);

 private:
  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 1;
  std::size_t chunk_bytes_;
  std::vector<std::byte> staging_;  // kSlots chunks
};

}  // namespace cohort::collectives::detail
