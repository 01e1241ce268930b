#include "collectives/nccl_backend.hpp"

#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include "collectives/mpi_backend.hpp"
#include "common/error.hpp"

namespace cohort::detail {
namespace {

void check_cuda(cudaError_t rc, const char* call) {
  if (rc == cudaSuccess) return;
  throw Error(std::string(call) + ": " + cudaGetErrorString(rc));
}

void check_nccl(ncclResult_t rc, const char* call, ncclComm_t comm = nullptr) {
  if (rc == ncclSuccess || rc == ncclInProgress) return;
  std::string message = std::string(call) + ": " + ncclGetErrorString(rc);
  if (const char* last = ncclGetLastError(comm); last && *last) message += std::string(" (") + last + ")";
  throw Error(message);
}

ncclDataType_t nccl_type(DataType dtype) {
  switch (dtype) {
    case DataType::f32: return ncclFloat32;
    case DataType::f64: return ncclFloat64;
    case DataType::f16: return ncclFloat16;
    case DataType::bf16: return ncclBfloat16;
    case DataType::i32: return ncclInt32;
    case DataType::i64: return ncclInt64;
    case DataType::u8: return ncclUint8;
  }
  return ncclFloat32;
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::avg: return ncclAvg;
    case ReduceOp::min: return ncclMin;
    case ReduceOp::max: return ncclMax;
    case ReduceOp::prod: return ncclProd;
  }
  return ncclSum;
}

// Events are created once and reused: creating and destroying one per collective costs
// microseconds that small NCCL operations cannot spare.
class EventPool {
 public:
  EventPool() = default;
  EventPool(const EventPool&) = delete;
  EventPool& operator=(const EventPool&) = delete;
  ~EventPool() {
    for (cudaEvent_t e : free_) {
      if (cudaEventDestroy(e) != cudaSuccess) cudaGetLastError();
    }
  }
  cudaEvent_t take() {
    {
      std::lock_guard lock(mutex_);
      if (!free_.empty()) {
        cudaEvent_t e = free_.back();
        free_.pop_back();
        return e;
      }
    }
    cudaEvent_t e = nullptr;
    check_cuda(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
    return e;
  }
  void give(cudaEvent_t e) noexcept {
    try {
      std::lock_guard lock(mutex_);
      free_.push_back(e);
    } catch (...) {
      if (cudaEventDestroy(e) != cudaSuccess) cudaGetLastError();
    }
  }

 private:
  std::mutex mutex_;
  std::vector<cudaEvent_t> free_;
};

// Complete when the event recorded after the collective on the engine's stream is.
class DeviceOperation final : public Operation {
 public:
  DeviceOperation(int device, cudaStream_t stream, std::shared_ptr<EventPool> pool)
      : device_(device), pool_(std::move(pool)), event_(pool_->take()) {
    const cudaError_t rc = cudaEventRecord(event_, stream);
    if (rc != cudaSuccess) {
      pool_->give(event_);
      event_ = nullptr;
      check_cuda(rc, "cudaEventRecord");
    }
  }
  ~DeviceOperation() override {
    if (event_) pool_->give(event_);
  }
  void wait() override {
    check_cuda(cudaSetDevice(device_), "cudaSetDevice");
    check_cuda(cudaEventSynchronize(event_), "cudaEventSynchronize");
  }
  bool test() override {
    const cudaError_t rc = cudaEventQuery(event_);
    if (rc == cudaErrorNotReady) return false;
    check_cuda(rc, "cudaEventQuery");
    return true;
  }

 private:
  int device_;
  std::shared_ptr<EventPool> pool_;  // outlives every operation that holds one of its events
  cudaEvent_t event_ = nullptr;
};

}  // namespace

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: clear the sticky error, report none
    return 0;
  }
  return count;
}

bool is_device_pointer(const void* ptr) {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, ptr) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged;
}

void device_copy(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, cudaStreamLegacy), "cudaMemcpyAsync");
}

void default_stream_synchronize() { check_cuda(cudaStreamSynchronize(cudaStreamLegacy), "cudaStreamSynchronize"); }

DeviceBuffer::DeviceBuffer(std::size_t bytes, int device) : device_(device) {
  check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  check_cuda(cudaMalloc(&data_, bytes ? bytes : 1), "cudaMalloc");
  check_cuda(cudaMemset(data_, 0, bytes ? bytes : 1), "cudaMemset");
  // cudaMemset returns before it runs: the buffer is not usable until it has.
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

DeviceBuffer::~DeviceBuffer() {
  if (data_ && cudaFree(data_) != cudaSuccess) cudaGetLastError();
}

void DeviceBuffer::upload(const void* host, std::size_t bytes) {
  check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  check_cuda(cudaMemcpy(data_, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
  // From pageable memory the copy may still be in flight when cudaMemcpy returns.
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

void DeviceBuffer::download(void* host, std::size_t bytes) const {
  check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  check_cuda(cudaMemcpy(host, data_, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy");
}

struct NcclEngine::State {
  cudaStream_t stream = nullptr;
  int size = 1;
  ncclComm_t comm = nullptr;
  std::shared_ptr<EventPool> events = std::make_shared<EventPool>();
  std::unique_ptr<DeviceBuffer> token;  // what barrier() reduces
};

NcclEngine::NcclEngine(MPI_Comm comm, int device) : state_(std::make_unique<State>()), device_(device) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  // Every rank learns whether all are ready, then rank 0's id or its failure reaches every
  // rank, so that none waits for the others.
  const IdExchange over_mpi = [&](const std::string& failure, const std::function<std::string()>& make) {
    int ready = failure.empty() ? 1 : 0;
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, &ready, 1, MPI_INT, MPI_MIN, comm), "MPI_Allreduce");
    if (!failure.empty()) throw Error("rank " + std::to_string(rank) + " cannot take part: " + failure);
    if (!ready) throw Error("another rank cannot take part in the NCCL communicator (see its error)");
    struct {
      char id[NCCL_UNIQUE_ID_BYTES];
      int ok;
      char message[256];
    } boot{};
    if (rank == 0) {
      try {
        const std::string id = make();
        std::memcpy(boot.id, id.data(), std::min(id.size(), sizeof boot.id));
        boot.ok = 1;
      } catch (const std::exception& e) {
        std::snprintf(boot.message, sizeof boot.message, "%s", e.what());
      }
    }
    check_mpi(MPI_Bcast(&boot, sizeof boot, MPI_BYTE, 0, comm), "MPI_Bcast");
    if (!boot.ok) throw Error(std::string("rank 0 cannot take part: ") + boot.message);
    return std::string(boot.id, sizeof boot.id);
  };
  init(rank, size, over_mpi, "");
}

NcclEngine::NcclEngine(const RendezvousOptions& rendezvous_options, int device, const std::string& failure)
    : state_(std::make_unique<State>()), device_(device) {
  const IdExchange over_tcp = [&](const std::string& why, const std::function<std::string()>& make) {
    return rendezvous(rendezvous_options, why, make);
  };
  init(rendezvous_options.rank, rendezvous_options.size, over_tcp, failure);
}

void NcclEngine::init(int rank, int size, const IdExchange& exchange, const std::string& failure) {
  std::string why = failure;
  if (why.empty()) {
    const cudaError_t rc = cudaSetDevice(device_);
    if (rc != cudaSuccess) why = std::string("cudaSetDevice(") + std::to_string(device_) + "): " + cudaGetErrorString(rc);
  }
  const std::string id = exchange(why, [] {
    ncclUniqueId unique{};
    check_nccl(ncclGetUniqueId(&unique), "ncclGetUniqueId");
    return std::string(unique.internal, sizeof unique.internal);
  });
  ncclUniqueId unique{};
  if (id.size() != sizeof unique.internal) {
    throw Error("NCCL unique id of " + std::to_string(id.size()) + " bytes from rank 0, expected " +
                std::to_string(sizeof unique.internal) + ": every rank must run the same cohort and NCCL");
  }
  std::memcpy(unique.internal, id.data(), id.size());

  // A blocking stream: collectives are ordered after the caller's work on the legacy
  // default stream (cudaMemcpy, cudaMemset, kernels launched without a stream), which
  // may still be in flight when those calls return.
  check_cuda(cudaStreamCreateWithFlags(&state_->stream, cudaStreamDefault), "cudaStreamCreate");
  state_->size = size;
  const ncclResult_t rc = ncclCommInitRank(&state_->comm, size, unique, rank);
  if (rc != ncclSuccess) {
    cudaStreamDestroy(state_->stream);
    state_->stream = nullptr;
    check_nccl(rc, "ncclCommInitRank");
  }
}

NcclEngine::~NcclEngine() {
  if (!state_) return;
  cudaSetDevice(device_);
  if (state_->stream) cudaStreamSynchronize(state_->stream);
  if (state_->comm) {
    if (ncclCommDestroy(state_->comm) != ncclSuccess) {
      std::cerr << "cohort: collectives: ncclCommDestroy failed\n";
    }
  }
  if (state_->stream) cudaStreamDestroy(state_->stream);
  cudaGetLastError();
}

std::shared_ptr<Operation> NcclEngine::allreduce(const void* send, void* recv, std::size_t count,
                                                 DataType dtype, ReduceOp op) {
  check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  // On one rank an average is the sum. NCCL 2.28's ncclAvg of fp64 on one rank, out of
  // place, leaves the last count % 4 elements unwritten (seen on an H200).
  const ncclRedOp_t reduction = op == ReduceOp::avg && state_->size == 1 ? ncclSum : nccl_op(op);
  check_nccl(ncclAllReduce(send, recv, count, nccl_type(dtype), reduction, state_->comm, state_->stream),
             "ncclAllReduce", state_->comm);
  return std::make_shared<DeviceOperation>(device_, state_->stream, state_->events);
}

std::shared_ptr<Operation> NcclEngine::broadcast(void* buffer, std::size_t count, DataType dtype, int root) {
  check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  check_nccl(ncclBroadcast(buffer, buffer, count, nccl_type(dtype), root, state_->comm, state_->stream),
             "ncclBroadcast", state_->comm);
  return std::make_shared<DeviceOperation>(device_, state_->stream, state_->events);
}

std::shared_ptr<Operation> NcclEngine::allgather(const void* send, void* recv, std::size_t count,
                                                 DataType dtype) {
  check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  check_nccl(ncclAllGather(send, recv, count, nccl_type(dtype), state_->comm, state_->stream),
             "ncclAllGather", state_->comm);
  return std::make_shared<DeviceOperation>(device_, state_->stream, state_->events);
}

std::shared_ptr<Operation> NcclEngine::reduce_scatter(const void* send, void* recv, std::size_t count,
                                                      DataType dtype, ReduceOp op) {
  check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  const ncclRedOp_t reduction = op == ReduceOp::avg && state_->size == 1 ? ncclSum : nccl_op(op);
  check_nccl(ncclReduceScatter(send, recv, count, nccl_type(dtype), reduction, state_->comm, state_->stream),
             "ncclReduceScatter", state_->comm);
  return std::make_shared<DeviceOperation>(device_, state_->stream, state_->events);
}

std::shared_ptr<Operation> NcclEngine::barrier() {
  check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  if (!state_->token) state_->token = std::make_unique<DeviceBuffer>(sizeof(float), device_);
  float* token = static_cast<float*>(state_->token->data());
  check_nccl(ncclAllReduce(token, token, 1, ncclFloat32, ncclSum, state_->comm, state_->stream), "ncclAllReduce",
             state_->comm);
  return std::make_shared<DeviceOperation>(device_, state_->stream, state_->events);
}

void NcclEngine::synchronize() {
  check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  check_cuda(cudaStreamSynchronize(state_->stream), "cudaStreamSynchronize");
}

}  // namespace cohort::detail
