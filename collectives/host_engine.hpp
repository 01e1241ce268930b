// collectives/host_engine.hpp — what a Communicator asks of the engine that carries host
// buffers: MPI (MpiEngine) where the ranks were started under MPI, TCP and shared memory
// (TcpEngine) where they met through a directory without MPI.
//
// Private to collectives/ (namespace detail): users include communicator.hpp and bucketing.hpp.
#pragma once

#include <cstddef>

#include "collectives/communicator.hpp"

namespace cohort::collectives::detail {

class HostEngine {
 public:
  virtual ~HostEngine() = default;
  virtual void allreduce(const void* send, void* recv, std::size_t count, DType dtype, ReduceOp op) = 0;
  virtual void broadcast(void* buffer, std::size_t count, DType dtype, int root) = 0;
  virtual void allgather(const void* send, void* recv, std::size_t count, DType dtype) = 0;
  virtual void reduce_scatter(const void* send, void* recv, std::size_t count, DType dtype, ReduceOp op) = 0;
  virtual void barrier() = 0;
};

}  // namespace cohort::collectives::detail
