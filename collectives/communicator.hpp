// collectives/communicator.hpp — collective operations between the ranks of a job.
//
// A Communicator joins the ranks that the launch contract (RANK, WORLD_SIZE, LOCAL_RANK)
// or an existing MPI communicator describes, and reduces, broadcasts and gathers buffers
// between them:
//
//   namespace cc = cohort::collectives;
//   auto comm = cc::Communicator::from_environment();
//   std::vector<float> grads(n);
//   comm.allreduce(grads.data(), n, cohort::DType::float32, cc::ReduceOp::avg);
//
//   cc::Request r = comm.iallreduce(grads.data(), n, cohort::DType::float32,
//                                   cc::ReduceOp::sum);
//   ...                  // overlap other work
//   r.wait();
//
// Backends. Host buffers go over MPI. cohort's own allreduce takes over from MPI_Allreduce
// above a message size: a bandwidth-optimal reduce-scatter + allgather, through persistent,
// pre-faulted shared memory when every rank shares one node, else as a ring of MPI messages
// through persistent staging buffers; both chunked so that reduction overlaps transfer.
// Device buffers go over NCCL when cohort was built with CUDA and NCCL (the unique id
// travels over MPI, or over TCP between ranks that met at MASTER_ADDR:MASTER_PORT without
// MPI). COHORT_COLLECTIVES_BACKEND=auto|mpi|nccl chooses explicitly. Ranks that share no MPI
// and meet through a directory (from_directory: torch's store, under torchrun) carry host
// buffers over TCP, and through the same shared-memory allreduce where all share a node.
//
// Every rank calls the same operations in the same order with the same count, dtype and op,
// as with MPI and NCCL. cohort checks that agreement on its own allreduce paths always, and
// on every call when CommunicatorOptions::verify (COHORT_COLLECTIVES_VERIFY=1) is set; a
// disagreement is a cohort::Error on every rank, not a hang.
#pragma once

#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/dtype.hpp"
#include "common/error.hpp"

namespace cohort::collectives {

// Element types are cohort::DType (common/dtype.hpp). Collectives handle float32, float64,
// float16, bfloat16, int32, int64 and uint8: the types returned by collective_dtypes().
// Another type is an input error.
std::span<const DType> collective_dtypes();

// Reductions. avg is the sum divided by the number of ranks (integer division for integer
// types). float16 and bfloat16 are reduced in float32: the node-local path sums every
// rank's values in float32 and rounds once; MPI and the ring round after each pairwise step.
enum class ReduceOp { sum, avg, min, max, prod };

enum class BackendKind { mpi, nccl };

std::string_view to_string(ReduceOp op);  // "sum", "avg", "min", "max", "prod"
std::string_view to_string(BackendKind backend);  // "mpi", "nccl"
// Throws an input error naming the accepted reductions when `text` is none of them.
ReduceOp parse_op(std::string_view text);

// Which allreduce algorithm serves a host buffer.
enum class AllreduceAlgorithm {
  automatic,  // at or above the threshold cohort's node-local path (all ranks on one node)
              // or its ring (several nodes); MPI_Allreduce below
  mpi,        // always MPI_Allreduce
  node,       // always cohort's node-local path (every rank must share one node)
  ring,       // always cohort's ring over MPI point-to-point messages
};

struct CommunicatorOptions {
  // Backend: unset means COHORT_COLLECTIVES_BACKEND, else auto (device buffers → NCCL).
  std::optional<std::string> backend;
  // How from_environment's ranks find each other: mpi, tcp, or auto. Unset means
  // COHORT_COLLECTIVES_BOOTSTRAP, else auto: MPI when it is initialised or an MPI launcher
  // started the process, tcp when only the launch contract (RANK, WORLD_SIZE, MASTER_ADDR,
  // MASTER_PORT) describes the ranks, as under torchrun or `cohort launch` without
  // --mpi=pmix. tcp needs no MPI: host buffers go over TCP and shared memory, CUDA device
  // buffers over NCCL when every rank sees a device.
  std::optional<std::string> bootstrap;
  // Host allreduce algorithm; COHORT_ALLREDUCE_ALGORITHM=auto|mpi|node|ring overrides
  // automatic.
  AllreduceAlgorithm algorithm = AllreduceAlgorithm::automatic;
  // Message size (bytes) from which cohort's own algorithm is used. Unset: COHORT_ALLREDUCE_
  // THRESHOLD, else the value measured for this rank count (docs/performance.md).
  std::optional<std::size_t> threshold_bytes;
  // Check on every call that all ranks agree on count, dtype and op (one extra small
  // allreduce per call). Unset: COHORT_COLLECTIVES_VERIFY=1 turns it on.
  std::optional<bool> verify;
  // How long a rank of a communicator made without MPI waits inside one collective for
  // a peer before it throws, naming the peer. Unset: COHORT_COLLECTIVES_TIMEOUT, else 30
  // minutes.
  std::optional<std::chrono::milliseconds> timeout;
  // CUDA device for the NCCL backend; -1 picks LOCAL_RANK (else SLURM_LOCALID, else Open
  // MPI's local rank) modulo the visible devices.
  int device = -1;
};

// Thrown by a communicator made by from_directory when a peer did not take its part in an
// operation within the timeout. peer() is the rank this one waited for: the rank that did
// not come, where every rank shares the node; round a ring across nodes, the neighbour it
// waited on, which may itself be waiting for another.
class PeerTimeout : public Error {
 public:
  PeerTimeout(std::string message, int peer) : Error(std::move(message)), peer_(peer) {}
  int peer() const { return peer_; }

 private:
  int peer_;
};

// Where ranks that share no MPI publish how to reach them and learn how to reach the
// others: a key-value store every rank reaches, such as PyTorch's c10d store (cohort.torch
// adapts it). get() waits until the key is set, or throws when the store gives up.
class PeerDirectory {
 public:
  virtual ~PeerDirectory() = default;
  virtual void set(const std::string& key, const std::string& value) = 0;
  virtual std::string get(const std::string& key) = 0;
};

namespace detail {
class Operation;
class CommunicatorImpl;
}  // namespace detail

// A non-blocking operation in flight. Its buffers must stay alive and untouched until
// wait() returns or test() has returned true. Destroying a pending Request waits for it.
class Request {
 public:
  Request() = default;
  explicit Request(std::shared_ptr<detail::Operation> op) : op_(std::move(op)) {}
  Request(Request&&) noexcept = default;
  Request& operator=(Request&&) noexcept;
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;
  ~Request();

  // Blocks until the operation is complete; rethrows its cohort::Error, once.
  void wait();
  // True when complete (then wait() returns at once); never blocks.
  bool test();
  bool valid() const { return op_ != nullptr; }

 private:
  std::shared_ptr<detail::Operation> op_;
};

// Whether MPI knows this process's ranks: MPI is initialised, or an MPI launcher (mpirun,
// srun --mpi=pmix, Hydra) started the process. What from_environment's auto bootstrap asks.
bool mpi_launched();

// Initialises MPI (MPI_THREAD_MULTIPLE) unless the program or an earlier call has, and then
// finalizes it at exit. What from_environment does before it joins ranks over MPI; for
// callers that choose the ranks themselves and pass them to from_mpi.
void initialize_mpi();

class Communicator {
 public:
  // Joins the ranks of the launch contract. Over MPI (see CommunicatorOptions::bootstrap),
  // MPI is initialised (MPI_THREAD_MULTIPLE) when the program has not done so; with RANK
  // and WORLD_SIZE set, cohort's ranks follow RANK and WORLD_SIZE must equal the number of
  // MPI processes; without them (a plain mpirun), the ranks are MPI_COMM_WORLD's. Over tcp
  // (ranks started as torchrun starts them, cohort launch's included), rank 0 listens on
  // MASTER_PORT and the others connect to MASTER_ADDR, within COHORT_RENDEZVOUS_TIMEOUT
  // seconds (default 600), and learn there how to reach each other: host buffers then go
  // over TCP and shared memory as from_directory's do, device buffers over NCCL when every
  // rank sees a CUDA device. A rank that cannot take part (backend mpi; backend nccl
  // without a device) makes every rank throw its reason.
  static Communicator from_environment(const CommunicatorOptions& options = {});
  // Joins `size` ranks that share no MPI (torchrun's, or a program's own launcher's), each
  // passing its own `rank`: each publishes in `directory` where it listens and connects to
  // the others over TCP; where all run on one node, allreduce goes through shared memory as
  // under MPI. Host buffers only (options.backend nccl is refused); non-blocking and
  // blocking operations run in the order they were issued, on one progress thread.
  static Communicator from_directory(int rank, int size, PeerDirectory& directory,
                                     const CommunicatorOptions& options = {});
  // Joins the ranks of `comm`, which cohort duplicates and leaves to its owner.
  static Communicator from_mpi(MPI_Comm comm, const CommunicatorOptions& options = {});

  Communicator(Communicator&&) noexcept;
  Communicator& operator=(Communicator&&) noexcept;
  ~Communicator();

  int rank() const;
  int size() const;
  // The backend device buffers would use: nccl when built with it and a device is visible.
  BackendKind device_backend() const;
  // The CUDA device the NCCL backend uses, or -1 when there is none.
  int device() const;
  // Whether non-blocking operations progress in the background (MPI was given
  // MPI_THREAD_MULTIPLE); otherwise they complete inside the call that starts them.
  bool overlaps() const;
  // The message size from which cohort's own allreduce is used (SIZE_MAX when never).
  std::size_t allreduce_threshold() const;

  // `count` elements of `send` reduced across ranks into `recv`; send == recv is in place.
  void allreduce(const void* send, void* recv, std::size_t count, DType dtype, ReduceOp op);
  void allreduce(void* buffer, std::size_t count, DType dtype, ReduceOp op) {
    allreduce(buffer, buffer, count, dtype, op);
  }
  // `count` elements from `root` to every rank.
  void broadcast(void* buffer, std::size_t count, DType dtype, int root);
  // Each rank contributes `count` elements; `recv` holds size() × count, rank order.
  // send == recv + rank() × count × size_of(dtype) is in place.
  void allgather(const void* send, void* recv, std::size_t count, DType dtype);
  // `send` holds size() × `count` elements; rank r receives block r reduced across ranks.
  // recv == send + rank() × count × size_of(dtype) is in place.
  void reduce_scatter(const void* send, void* recv, std::size_t count, DType dtype,
                      ReduceOp op);
  void barrier();

  // Non-blocking forms: same arguments, completion through the Request.
  Request iallreduce(const void* send, void* recv, std::size_t count, DType dtype, ReduceOp op);
  Request iallreduce(void* buffer, std::size_t count, DType dtype, ReduceOp op) {
    return iallreduce(buffer, buffer, count, dtype, op);
  }
  Request ibroadcast(void* buffer, std::size_t count, DType dtype, int root);
  Request iallgather(const void* send, void* recv, std::size_t count, DType dtype);
  Request ireduce_scatter(const void* send, void* recv, std::size_t count, DType dtype,
                          ReduceOp op);
  Request ibarrier();

  // The duplicated MPI communicator blocking host operations run on (for interoperation:
  // e.g. a baseline MPI call on the same ranks); MPI_COMM_NULL for ranks that met over tcp.
  MPI_Comm mpi_comm() const;

 private:
  explicit Communicator(std::unique_ptr<detail::CommunicatorImpl> impl);
  std::unique_ptr<detail::CommunicatorImpl> impl_;
};

}  // namespace cohort::collectives
