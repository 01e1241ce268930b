// collectives/mpi_backend.hpp — host-buffer collectives over one MPI communicator.
//
// Private to collectives/ (namespace detail): users include communicator.hpp and bucketing.hpp.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <memory>

#include "collectives/communicator.hpp"
#include "collectives/host_engine.hpp"
#include "collectives/node_allreduce.hpp"
#include "collectives/ring_allreduce.hpp"

namespace cohort::collectives::detail {

// Throws cohort::Error naming the call and MPI's message when rc is not MPI_SUCCESS.
void check_mpi(int rc, const char* call);

// The MPI datatype that carries dtype (16-bit floats travel as 16-bit words).
MPI_Datatype mpi_type(DType dtype);
// The MPI operation for op on dtype: avg is MPI_SUM (the caller divides); 16-bit floats
// use cohort's user-defined operations, which widen to f32.
MPI_Op mpi_op(DType dtype, ReduceOp op);

struct MpiSettings {
  AllreduceAlgorithm algorithm = AllreduceAlgorithm::automatic;
  std::size_t threshold_bytes = 0;       // node-local path from this size (automatic)
  std::size_t ring_threshold_bytes = 0;  // ring from this size, ranks on several nodes
  bool node_local = false;          // every rank shares this node
  bool verify = false;
  std::size_t chunk_bytes = NodeAllreduce::kDefaultChunkBytes;
};

// Owns a duplicate of the communicator it is given (freed on destruction) and, once the
// first large allreduce needs them, the node-local allreduce's shared segment or the ring's
// staging buffers.
class MpiEngine final : public HostEngine {
 public:
  MpiEngine(MPI_Comm comm, MpiSettings settings);
  MpiEngine(const MpiEngine&) = delete;
  MpiEngine& operator=(const MpiEngine&) = delete;
  ~MpiEngine() override;

  MPI_Comm comm() const { return comm_; }
  void allreduce(const void* send, void* recv, std::size_t count, DType dtype, ReduceOp op) override;
  void broadcast(void* buffer, std::size_t count, DType dtype, int root) override;
  void allgather(const void* send, void* recv, std::size_t count, DType dtype) override;
  void reduce_scatter(const void* send, void* recv, std::size_t count, DType dtype, ReduceOp op) override;
  void barrier() override;

 private:
  // With settings.verify: all ranks agree on what they are about to do, or all throw.
  void verify(const char* what, int kind, std::size_t count, DType dtype, int extra);
  void check_agreement(const char* what, int kind, std::size_t count, DType dtype, int extra);

  MPI_Comm comm_ = MPI_COMM_NULL;
  MpiSettings settings_;
  int rank_ = 0;
  int size_ = 1;
  std::unique_ptr<NodeAllreduce> node_;
  std::unique_ptr<RingAllreduce> ring_;
};

}  // namespace cohort::collectives::detail
