// collectives/nccl_backend.hpp — device-buffer collectives over NCCL (built with CUDA and NCCL).
#pragma once

#include <mpi.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "collectives/communicator.hpp"
#include "collectives/operation.hpp"
#include "collectives/rendezvous.hpp"

namespace cohort::detail {

// CUDA devices this process sees; 0 without a driver or a device.
int cuda_device_count();
// True for memory a CUDA kernel can address as device memory (device or managed).
bool is_device_pointer(const void* ptr);

// Copies between device buffers, in order on the legacy default stream (after the kernels a
// framework launched there, before a blocking stream's next work); returns at once.
void device_copy(void* dst, const void* src, std::size_t bytes);
// Waits for everything on the legacy default stream.
void default_stream_synchronize();

// Device memory on one device, freed on destruction (for the benchmark's buffers).
class DeviceBuffer {
 public:
  DeviceBuffer(std::size_t bytes, int device);
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();
  void* data() const { return data_; }
  void upload(const void* host, std::size_t bytes);
  void download(void* host, std::size_t bytes) const;

 private:
  void* data_ = nullptr;
  int device_;
};

// One NCCL communicator over the ranks of an MPI communicator, on its own CUDA stream.
// Blocking calls wait for the stream; non-blocking ones return an operation that waits on
// an event recorded after the collective.
class NcclEngine {
 public:
  // Collective over comm: rank 0's unique id travels by MPI_Bcast.
  NcclEngine(MPI_Comm comm, int device);
  // Collective over the ranks that meet at the rendezvous: rank 0's unique id travels over
  // TCP. `failure` is why this rank cannot take part (empty when it can): every rank then
  // throws it, with the rank's number, rather than waiting for this one.
  NcclEngine(const RendezvousOptions& rendezvous, int device, const std::string& failure);
  NcclEngine(const NcclEngine&) = delete;
  NcclEngine& operator=(const NcclEngine&) = delete;
  ~NcclEngine();

  int device() const { return device_; }
  std::shared_ptr<Operation> allreduce(const void* send, void* recv, std::size_t count,
                                       DataType dtype, ReduceOp op);
  std::shared_ptr<Operation> broadcast(void* buffer, std::size_t count, DataType dtype, int root);
  std::shared_ptr<Operation> allgather(const void* send, void* recv, std::size_t count,
                                       DataType dtype);
  std::shared_ptr<Operation> reduce_scatter(const void* send, void* recv, std::size_t count,
                                            DataType dtype, ReduceOp op);
  // Waits for everything enqueued so far.
  void synchronize();
  // Completes when every rank has enqueued it and the work enqueued before it is done
  // (a one-element allreduce, as NCCL-only frameworks do).
  std::shared_ptr<Operation> barrier();

 private:
  struct State;
  // rank 0's ncclUniqueId given to every rank: exchange(failure, make) returns on every
  // rank what make() returned on rank 0, or throws everywhere when some rank failed.
  using IdExchange = std::function<std::string(const std::string& failure, const std::function<std::string()>& make)>;
  void init(int rank, int size, const IdExchange& exchange, const std::string& failure);
  std::unique_ptr<State> state_;
  int device_ = 0;
};

}  // namespace cohort::detail
