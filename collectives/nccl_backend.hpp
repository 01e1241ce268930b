// collectives/nccl_backend.hpp — device-buffer collectives over NCCL (built with CUDA and NCCL).
//
// Private to collectives/ (namespace detail): users include communicator.hpp and bucketing.hpp.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "collectives/communicator.hpp"
#include "collectives/operation.hpp"
#include "collectives/rendezvous.hpp"

namespace cohort::collectives::detail {

// CUDA devices this process sees; 0 without a driver or a device.
int cuda_device_count();

// Where a buffer lives, as CUDA sees it.
struct MemoryPlace {
  bool device = false;  // a CUDA kernel can address it as device memory (device or managed)
  int index = -1;       // the device it was allocated on; -1 for managed and host memory
};
// Throws when the CUDA context has failed (an earlier kernel fault), which every later
// CUDA call would report too.
MemoryPlace memory_place(const void* ptr);
inline bool is_device_pointer(const void* ptr) { return memory_place(ptr).device; }

// Makes `device` the calling thread's current device, so that the CUDA runtime's context
// (created by the first CUDA call) lands on the rank's own device rather than on device 0.
// A device that cannot be made current is reported by the NCCL communicator's creation.
void make_current(int device) noexcept;

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

// One NCCL communicator over the ranks of an MPI communicator, on a CUDA stream of its own.
// Each collective is ordered after the work the caller put on the legacy default stream,
// without that stream waiting for the collective (so kernels launched after a non-blocking
// call overlap it). Operations complete on an event recorded after the collective; waiting
// on one also watches NCCL's asynchronous error state, so a peer that died or a network
// failure aborts the communicator and throws, rather than leaving the rank waiting for
// ever, as does waiting longer than COHORT_COLLECTIVES_TIMEOUT.
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
                                       DType dtype, ReduceOp op);
  std::shared_ptr<Operation> broadcast(void* buffer, std::size_t count, DType dtype, int root);
  std::shared_ptr<Operation> allgather(const void* send, void* recv, std::size_t count,
                                       DType dtype);
  std::shared_ptr<Operation> reduce_scatter(const void* send, void* recv, std::size_t count,
                                            DType dtype, ReduceOp op);
  // Waits for everything enqueued so far (watching for failures as an operation does).
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

// NCCL's own calls on a communicator and stream of their own, with nothing of cohort's
// around them (no events, no ordering after the default stream, no checks): what
// nccl-tests times, and so the benchmark's baseline on device buffers. Collective over comm.
class PlainNccl {
 public:
  PlainNccl(MPI_Comm comm, int device);
  PlainNccl(const PlainNccl&) = delete;
  PlainNccl& operator=(const PlainNccl&) = delete;
  ~PlainNccl();
  void allreduce(const void* send, void* recv, std::size_t count, DType dtype, ReduceOp op);
  void broadcast(void* buffer, std::size_t count, DType dtype, int root);
  void allgather(const void* send, void* recv, std::size_t count, DType dtype);
  void reduce_scatter(const void* send, void* recv, std::size_t count, DType dtype, ReduceOp op);
  void synchronize();  // waits for every call made so far

 private:
  struct Handles;
  std::unique_ptr<Handles> handles_;
};

}  // namespace cohort::collectives::detail
