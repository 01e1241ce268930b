// collectives/node_allreduce.hpp — cohort's allreduce for ranks that share one node.
//
// Bandwidth-optimal: every chunk of the message is split into one part per rank; each rank
// reduces its part from its own input and its peers' copies (reduce-scatter), then copies
// the other reduced parts back (allgather). The copies go through persistent shared memory
// that was touched once when it was mapped, so no call pays for page faults — the cost that
// makes Open MPI 4.1's default MPI_Allreduce of large messages slow. Chunks run through a
// ring of slots: a rank publishes chunk c+1 before it collects chunk c, so its copies overlap
// its peers' reductions.
//
// Private to collectives/ (namespace detail): users include communicator.hpp and bucketing.hpp.
#pragma once

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "collectives/communicator.hpp"

namespace cohort::collectives::detail {

class NodeAllreduce {
 public:
  static constexpr std::size_t kDefaultChunkBytes = 256 * 1024;
  static constexpr int kSlots = 4;

  // True when every rank of comm runs on this node (collective over comm).
  static bool spans_one_node(MPI_Comm comm);

  // Collective over comm: maps each rank's segment and touches it. comm must span one node.
  explicit NodeAllreduce(MPI_Comm comm, std::size_t chunk_bytes = kDefaultChunkBytes);
  // Over segments the caller mapped without MPI: bases[r] is rank r's, segment_bytes() long,
  // page-aligned, and made ready by its owner with prepare_segment() before any peer maps it.
  NodeAllreduce(std::vector<std::byte*> bases, int rank, std::size_t chunk_bytes, std::chrono::seconds timeout);
  static std::size_t segment_bytes(std::size_t chunk_bytes);
  // Touches every page of this rank's segment and constructs its control block.
  static void prepare_segment(void* segment, std::size_t chunk_bytes);
  NodeAllreduce(const NodeAllreduce&) = delete;
  NodeAllreduce& operator=(const NodeAllreduce&) = delete;
  ~NodeAllreduce();  // collective over comm, as MPI_Win_free is (when made over MPI)

  // Every rank calls with the same count, dtype and op; they are checked and a disagreement
  // throws cohort::Error on every rank. send == recv is in place.
  void run(const void* send, void* recv, std::size_t count, DType dtype, ReduceOp op);

 private:
  struct alignas(64) Counter {
    std::atomic<std::uint64_t> value{0};
  };
  struct Descriptor {
    std::uint64_t count;
    std::int32_t dtype;
    std::int32_t op;
  };
  // Each rank's control block, written only by its owner. Counters count chunks since the
  // segment was mapped, so consecutive calls need no barrier between them.
  struct Control {
    Counter calls;      // calls started; its descriptor is desc[calls % 2]
    Counter published;  // chunks whose input parts are in this rank's send slots
    Counter reduced;    // chunks whose own part is reduced into this rank's result slots
    Counter gathered;   // chunks this rank has copied all results of
    Descriptor desc[2];
  };
  static constexpr std::size_t kControlBytes = 4096;

  Control& control(int rank) const { return *reinterpret_cast<Control*>(base_[rank]); }
  std::byte* send_slot(int rank, std::uint64_t chunk) const;
  std::byte* result_slot(int rank, std::uint64_t chunk) const;
  template <class Ready>
  void wait_for(Ready ready, const char* what, int peer) const;

  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Win window_ = MPI_WIN_NULL;
  int rank_ = 0;
  int size_ = 1;
  std::size_t chunk_bytes_;
  std::vector<std::byte*> base_;  // each rank's segment, mapped into this process
  std::uint64_t calls_ = 0;
  std::uint64_t chunks_ = 0;
  std::chrono::seconds timeout_;
};

}  // namespace cohort::collectives::detail
