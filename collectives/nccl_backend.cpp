#include "collectives/nccl_backend.hpp"

#include <cuda_runtime.h>
#include <nccl.h>

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "collectives/mpi_backend.hpp"
#include "common/error.hpp"

namespace cohort::collectives::detail {
namespace {

void check_cuda(cudaError_t rc, const char* call) {
  if (rc == cudaSuccess) return;
  throw Error(std::string(call) + ": " + cudaGetErrorString(rc));
}

std::string nccl_message(ncclResult_t rc, const char* call, ncclComm_t comm) {
  std::string message = std::string(call) + ": " + ncclGetErrorString(rc);
  if (const char* last = ncclGetLastError(comm); last && *last) message += std::string(" (") + last + ")";
  return message;
}

void check_nccl(ncclResult_t rc, const char* call, ncclComm_t comm = nullptr) {
  if (rc != ncclSuccess) throw Error(nccl_message(rc, call, comm));
}

// A call on a non-blocking communicator (NCCL_COMM_BLOCKING=0 makes every communicator
// one) returns ncclInProgress while NCCL still works on it in the background: wait for
// the outcome before using the communicator or trusting the call.
ncclResult_t settle(ncclComm_t comm, ncclResult_t rc) {
  while (rc == ncclInProgress) {
    if (ncclCommGetAsyncError(comm, &rc) != ncclSuccess) break;
    if (rc == ncclInProgress) sched_yield();
  }
  return rc;
}

// The NCCL communicator, shared by the engine and the operations that wait on it. A failure
// seen while waiting aborts it, so that no later call waits on a communicator that can no
// longer finish anything.
struct CommLink {
  ncclComm_t comm = nullptr;
  std::string failure;  // why it was aborted; empty while it is usable
  std::chrono::seconds timeout{collectives_timeout()};

  [[noreturn]] void abort(const std::string& why) {
    if (failure.empty()) {
      failure = why;
      if (comm) ncclCommAbort(comm);
      comm = nullptr;
    }
    throw Error(failure);
  }
  ncclComm_t live() const {
    if (!failure.empty()) {
      throw Error("the NCCL communicator was aborted after an earlier failure (" + failure +
                  "): create a new Communicator");
    }
    return comm;
  }
  // NCCL reports a peer that died, or a network failure, only here.
  void check() {
    if (!comm) return;
    ncclResult_t state = ncclSuccess;
    if (const ncclResult_t rc = ncclCommGetAsyncError(comm, &state); rc != ncclSuccess) state = rc;
    if (state == ncclSuccess || state == ncclInProgress) return;
    abort(nccl_message(state, "NCCL", comm) +
          ": a rank ended or the network failed during a collective; the communicator is aborted "
          "(create a new Communicator, or let the launcher restart the gang)");
  }
  // Waits for `event`, watching for failures: cudaEventSynchronize would wait for ever on
  // a collective whose peer is gone. Spins first (small collectives finish within
  // microseconds), then yields, then naps.
  void wait(cudaEvent_t event) {
    if (!failure.empty()) throw Error(failure);
    const auto start = std::chrono::steady_clock::now();
    enum class Pace { spin, yield, nap } pace = Pace::spin;
    for (unsigned i = 0;; ++i) {
      const cudaError_t rc = cudaEventQuery(event);
      if (rc == cudaSuccess) return;
      if (rc != cudaErrorNotReady) check_cuda(rc, "cudaEventQuery");
      if ((i & 255u) == 0) {
        check();
        const auto waited = std::chrono::steady_clock::now() - start;
        if (waited > timeout) {
          abort("a collective did not complete within " + std::to_string(timeout.count()) +
                " s (COHORT_COLLECTIVES_TIMEOUT): every rank must call the same collectives in the "
                "same order with the same count, dtype and op; the communicator is aborted");
        }
        pace = waited > std::chrono::milliseconds(1)     ? Pace::nap
               : waited > std::chrono::microseconds(100) ? Pace::yield
                                                         : Pace::spin;
      }
      if (pace == Pace::nap) {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      } else if (pace == Pace::yield) {
        sched_yield();
      }
    }
  }
};

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::float32: return ncclFloat32;
    case DType::float64: return ncclFloat64;
    case DType::float16: return ncclFloat16;
    case DType::bfloat16: return ncclBfloat16;
    case DType::int32: return ncclInt32;
    case DType::int64: return ncclInt64;
    case DType::uint8: return ncclUint8;
    default: return ncclFloat32;  // not a collective type: refused at the entry points
  }
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
  DeviceOperation(cudaStream_t stream, std::shared_ptr<CommLink> link, std::shared_ptr<EventPool> pool)
      : link_(std::move(link)), pool_(std::move(pool)), event_(pool_->take()) {
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
  void wait() override { link_->wait(event_); }
  bool test() override {
    if (!link_->failure.empty()) throw Error(link_->failure);
    const cudaError_t rc = cudaEventQuery(event_);
    if (rc == cudaErrorNotReady) {
      link_->check();
      return false;
    }
    check_cuda(rc, "cudaEventQuery");
    return true;
  }

 private:
  std::shared_ptr<CommLink> link_;
  std::shared_ptr<EventPool> pool_;  // outlives every operation that holds one of its events
  cudaEvent_t event_ = nullptr;
};

// Every rank learns whether all are ready, then rank 0's id (what make() returns there) or
// its failure reaches every rank, so that none waits for the others.
std::string exchange_over_mpi(MPI_Comm comm, int rank, const std::string& failure,
                              const std::function<std::string()>& make) {
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
}

std::string new_unique_id() {
  ncclUniqueId unique{};
  check_nccl(ncclGetUniqueId(&unique), "ncclGetUniqueId");
  return std::string(unique.internal, sizeof unique.internal);
}

ncclUniqueId unique_id_from(const std::string& id) {
  ncclUniqueId unique{};
  if (id.size() != sizeof unique.internal) {
    throw Error("NCCL unique id of " + std::to_string(id.size()) + " bytes from rank 0, expected " +
                std::to_string(sizeof unique.internal) + ": every rank must run the same cohort and NCCL");
  }
  std::memcpy(unique.internal, id.data(), id.size());
  return unique;
}

// On one rank an average is the sum. NCCL 2.28's ncclAvg of fp64 on one rank, out of
// place, leaves the last count % 4 elements unwritten (seen on an H200).
ncclRedOp_t reduction(ReduceOp op, int size) { return op == ReduceOp::avg && size == 1 ? ncclSum : nccl_op(op); }

}  // namespace

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: clear the sticky error, report none
    return 0;
  }
  return count;
}

MemoryPlace memory_place(const void* ptr) {
  // Without a device every buffer is host memory, and the query would only fail.
  static const bool any_device = cuda_device_count() > 0;
  if (!ptr || !any_device) return {};
  cudaPointerAttributes attributes{};
  const cudaError_t rc = cudaPointerGetAttributes(&attributes, ptr);
  if (rc == cudaErrorInvalidValue) {
    cudaGetLastError();  // memory CUDA never saw (older runtimes say so this way): host
    return {};
  }
  check_cuda(rc, "cudaPointerGetAttributes");
  if (attributes.type == cudaMemoryTypeManaged) return {true, -1};
  if (attributes.type == cudaMemoryTypeDevice) return {true, attributes.device};
  return {};
}

void make_current(int device) noexcept {
  if (device >= 0 && cudaSetDevice(device) != cudaSuccess) cudaGetLastError();
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
  cudaEvent_t caller_work = nullptr;  // recorded on the legacy default stream before each collective
  int size = 1;
  std::shared_ptr<CommLink> link = std::make_shared<CommLink>();
  std::shared_ptr<EventPool> events = std::make_shared<EventPool>();
  std::unique_ptr<DeviceBuffer> token;  // what barrier() reduces

  // The live communicator, with the device current and the stream ordered after the work
  // the caller put on the legacy default stream (kernels, cudaMemcpy and cudaMemset
  // without a stream, which may still run when those calls return).
  ncclComm_t prepare(int device) {
    ncclComm_t comm = link->live();
    check_cuda(cudaSetDevice(device), "cudaSetDevice");
    check_cuda(cudaEventRecord(caller_work, cudaStreamLegacy), "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(stream, caller_work, 0), "cudaStreamWaitEvent");
    return comm;
  }
  std::shared_ptr<Operation> enqueued(ncclResult_t rc, const char* call) {
    check_nccl(settle(link->comm, rc), call, link->comm);
    return std::make_shared<DeviceOperation>(stream, link, events);
  }
  // Waits for everything on the stream; throws (after aborting) when the communicator
  // failed meanwhile.
  void drain() {
    cudaEvent_t done = events->take();
    try {
      check_cuda(cudaEventRecord(done, stream), "cudaEventRecord");
      link->wait(done);
    } catch (...) {
      events->give(done);
      throw;
    }
    events->give(done);
  }
};

NcclEngine::NcclEngine(MPI_Comm comm, int device) : state_(std::make_unique<State>()), device_(device) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  init(rank, size, [&](const std::string& failure, const std::function<std::string()>& make) {
    return exchange_over_mpi(comm, rank, failure, make);
  }, "");
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
  const ncclUniqueId unique = unique_id_from(exchange(why, new_unique_id));

  // Not a blocking stream: the legacy default stream would then wait for every collective
  // before running the caller's next kernel, and nothing would overlap. Ordering after the
  // caller's work is prepare()'s event instead.
  check_cuda(cudaStreamCreateWithFlags(&state_->stream, cudaStreamNonBlocking), "cudaStreamCreate");
  check_cuda(cudaEventCreateWithFlags(&state_->caller_work, cudaEventDisableTiming), "cudaEventCreate");
  state_->size = size;
  ncclComm_t comm = nullptr;
  const ncclResult_t rc = settle(comm, ncclCommInitRank(&comm, size, unique, rank));
  if (rc != ncclSuccess) {
    const std::string message = nccl_message(rc, "ncclCommInitRank", comm);
    if (comm) ncclCommAbort(comm);
    throw Error(message);
  }
  state_->link->comm = comm;
}

NcclEngine::~NcclEngine() {
  if (!state_) return;
  cudaSetDevice(device_);
  CommLink& link = *state_->link;
  if (link.comm && state_->stream) {
    try {
      state_->drain();  // aborts the communicator when a peer is gone
    } catch (const std::exception& e) {
      std::cerr << "cohort: collectives: " << e.what() << "\n";
    }
  }
  if (link.comm) {
    if (ncclCommDestroy(link.comm) != ncclSuccess) std::cerr << "cohort: collectives: ncclCommDestroy failed\n";
    link.comm = nullptr;
  }
  if (state_->caller_work) cudaEventDestroy(state_->caller_work);
  if (state_->stream) cudaStreamDestroy(state_->stream);
  cudaGetLastError();
}

std::shared_ptr<Operation> NcclEngine::allreduce(const void* send, void* recv, std::size_t count,
                                                 DType dtype, ReduceOp op) {
  ncclComm_t comm = state_->prepare(device_);
  return state_->enqueued(
      ncclAllReduce(send, recv, count, nccl_type(dtype), reduction(op, state_->size), comm, state_->stream),
      "ncclAllReduce");
}

std::shared_ptr<Operation> NcclEngine::broadcast(void* buffer, std::size_t count, DType dtype, int root) {
  ncclComm_t comm = state_->prepare(device_);
  return state_->enqueued(ncclBroadcast(buffer, buffer, count, nccl_type(dtype), root, comm, state_->stream),
                          "ncclBroadcast");
}

std::shared_ptr<Operation> NcclEngine::allgather(const void* send, void* recv, std::size_t count,
                                                 DType dtype) {
  ncclComm_t comm = state_->prepare(device_);
  return state_->enqueued(ncclAllGather(send, recv, count, nccl_type(dtype), comm, state_->stream),
                          "ncclAllGather");
}

std::shared_ptr<Operation> NcclEngine::reduce_scatter(const void* send, void* recv, std::size_t count,
                                                      DType dtype, ReduceOp op) {
  ncclComm_t comm = state_->prepare(device_);
  return state_->enqueued(
      ncclReduceScatter(send, recv, count, nccl_type(dtype), reduction(op, state_->size), comm, state_->stream),
      "ncclReduceScatter");
}

std::shared_ptr<Operation> NcclEngine::barrier() {
  if (!state_->token) state_->token = std::make_unique<DeviceBuffer>(sizeof(float), device_);
  ncclComm_t comm = state_->prepare(device_);
  float* token = static_cast<float*>(state_->token->data());
  return state_->enqueued(ncclAllReduce(token, token, 1, ncclFloat32, ncclSum, comm, state_->stream),
                          "ncclAllReduce");
}

void NcclEngine::synchronize() {
  check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  state_->drain();
}

struct PlainNccl::Handles {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  int device = 0;
  int size = 1;
};

PlainNccl::PlainNccl(MPI_Comm comm, int device) : handles_(std::make_unique<Handles>()) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  handles_->device = device;
  handles_->size = size;
  check_cuda(cudaSetDevice(device), "cudaSetDevice");
  const ncclUniqueId id = unique_id_from(exchange_over_mpi(comm, rank, "", new_unique_id));
  check_cuda(cudaStreamCreateWithFlags(&handles_->stream, cudaStreamNonBlocking), "cudaStreamCreate");
  check_nccl(settle(handles_->comm, ncclCommInitRank(&handles_->comm, size, id, rank)), "ncclCommInitRank");
}

PlainNccl::~PlainNccl() {
  cudaSetDevice(handles_->device);
  if (handles_->stream) cudaStreamSynchronize(handles_->stream);
  if (handles_->comm) ncclCommDestroy(handles_->comm);
  if (handles_->stream) cudaStreamDestroy(handles_->stream);
  cudaGetLastError();
}

void PlainNccl::allreduce(const void* send, void* recv, std::size_t count, DType dtype, ReduceOp op) {
  check_nccl(ncclAllReduce(send, recv, count, nccl_type(dtype), reduction(op, handles_->size), handles_->comm,
                           handles_->stream),
             "ncclAllReduce", handles_->comm);
}

void PlainNccl::broadcast(void* buffer, std::size_t count, DType dtype, int root) {
  check_nccl(ncclBroadcast(buffer, buffer, count, nccl_type(dtype), root, handles_->comm, handles_->stream),
             "ncclBroadcast", handles_->comm);
}

void PlainNccl::allgather(const void* send, void* recv, std::size_t count, DType dtype) {
  check_nccl(ncclAllGather(send, recv, count, nccl_type(dtype), handles_->comm, handles_->stream), "ncclAllGather",
             handles_->comm);
}

void PlainNccl::reduce_scatter(const void* send, void* recv, std::size_t count, DType dtype, ReduceOp op) {
  check_nccl(ncclReduceScatter(send, recv, count, nccl_type(dtype), reduction(op, handles_->size), handles_->comm,
                               handles_->stream),
             "ncclReduceScatter", handles_->comm);
}

void PlainNccl::synchronize() {
  check_cuda(cudaSetDevice(handles_->device), "cudaSetDevice");
  check_cuda(cudaStreamSynchronize(handles_->stream), "cudaStreamSynchronize");
}

}  // namespace cohort::collectives::detail
