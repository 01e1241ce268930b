#include "collectives/mpi_backend.hpp"

#include <climits>
#include <cstring>
#include <mutex>
#include <string>

#include "collectives/dtype.hpp"
#include "common/error.hpp"

namespace cohort::collectives::detail {

void check_mpi(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw Error(std::string(call) + ": " + std::string(text, static_cast<std::size_t>(len)));
}

namespace {

// MPI has no 16-bit float types or operations: they travel as 16-bit words, reduced by
// user operations that widen to f32.
template <DType D, ReduceOp Op>
void reduce16(void* in, void* inout, int* len, MPI_Datatype*) {
  const void* srcs[2] = {inout, in};
  reduce(inout, srcs, 2, static_cast<std::size_t>(*len), D, Op, 1);
}

struct HalfOps {
  MPI_Op f16[4];
  MPI_Op bf16[4];
};

const HalfOps& half_ops() {
  static HalfOps ops;
  static std::once_flag once;
  std::call_once(once, [] {
    MPI_Op_create(&reduce16<DType::float16, ReduceOp::sum>, 1, &ops.f16[0]);
    MPI_Op_create(&reduce16<DType::float16, ReduceOp::min>, 1, &ops.f16[1]);
    MPI_Op_create(&reduce16<DType::float16, ReduceOp::max>, 1, &ops.f16[2]);
    MPI_Op_create(&reduce16<DType::float16, ReduceOp::prod>, 1, &ops.f16[3]);
    MPI_Op_create(&reduce16<DType::bfloat16, ReduceOp::sum>, 1, &ops.bf16[0]);
    MPI_Op_create(&reduce16<DType::bfloat16, ReduceOp::min>, 1, &ops.bf16[1]);
    MPI_Op_create(&reduce16<DType::bfloat16, ReduceOp::max>, 1, &ops.bf16[2]);
    MPI_Op_create(&reduce16<DType::bfloat16, ReduceOp::prod>, 1, &ops.bf16[3]);
  });
  return ops;
}

}  // namespace

MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case DType::float32: return MPI_FLOAT;
    case DType::float64: return MPI_DOUBLE;
    case DType::float16: return MPI_UINT16_T;
    case DType::bfloat16: return MPI_UINT16_T;
    case DType::int32: return MPI_INT32_T;
    case DType::int64: return MPI_INT64_T;
    case DType::uint8: return MPI_UINT8_T;
    default: return MPI_DATATYPE_NULL;  // not a collective type: refused at the entry points
  }
}

// avg is computed as a sum, divided afterwards.
MPI_Op mpi_op(DType dtype, ReduceOp op) {
  const int index = op == ReduceOp::min ? 1 : op == ReduceOp::max ? 2 : op == ReduceOp::prod ? 3 : 0;
  if (dtype == DType::float16) return half_ops().f16[index];
  if (dtype == DType::bfloat16) return half_ops().bf16[index];
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::avg: return MPI_SUM;
    case ReduceOp::min: return MPI_MIN;
    case ReduceOp::max: return MPI_MAX;
    case ReduceOp::prod: return MPI_PROD;
  }
  return MPI_OP_NULL;
}

namespace {

int checked_int(std::size_t count, const char* what) {
  if (count > static_cast<std::size_t>(INT_MAX)) {
    throw input_error(std::string(what) + ": " + std::to_string(count) +
                      " elements per rank is more than MPI's limit of " + std::to_string(INT_MAX) +
                      ": split the buffer into smaller calls");
  }
  return static_cast<int>(count);
}

}  // namespace

MpiEngine::MpiEngine(MPI_Comm comm, MpiSettings settings) : settings_(settings) {
  check_mpi(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
  // Failures come back as return codes that become cohort::Error, rather than aborting.
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

MpiEngine::~MpiEngine() {
  node_.reset();
  ring_.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void MpiEngine::verify(const char* what, int kind, std::size_t count, DType dtype, int extra) {
  if (settings_.verify) check_agreement(what, kind, count, dtype, extra);
}

void MpiEngine::check_agreement(const char* what, int kind, std::size_t count, DType dtype, int extra) {
  // max(x) == -max(-x) exactly when every rank has the same x.
  const long long mine[4] = {kind, static_cast<long long>(count), static_cast<long long>(dtype), extra};
  long long both[8];
  for (int i = 0; i < 4; ++i) {
    both[i] = mine[i];
    both[4 + i] = -mine[i];
  }
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, both, 8, MPI_LONG_LONG, MPI_MAX, comm_), "MPI_Allreduce");
  for (int i = 0; i < 4; ++i) {
    if (both[i] != -both[4 + i]) {
      static constexpr const char* kField[4] = {"operation", "count", "dtype", "op or root"};
      throw Error(std::string(what) + ": ranks disagree about the " + kField[i] + " (rank " +
                  std::to_string(rank_) + " has " + std::to_string(mine[i]) +
                  "): every rank must call the same collectives in the same order with the "
                  "same count, dtype and op");
    }
  }
}

void MpiEngine::allreduce(const void* send, void* recv, std::size_t count, DType dtype,
                          ReduceOp op) {
  verify("allreduce", 1, count, dtype, static_cast<int>(op));
  const std::size_t bytes = count * size_of(dtype);
  AllreduceAlgorithm algorithm = settings_.algorithm;
  if (algorithm == AllreduceAlgorithm::automatic) {
    if (settings_.node_local) {
      algorithm = bytes < settings_.threshold_bytes ? AllreduceAlgorithm::mpi : AllreduceAlgorithm::node;
    } else {
      algorithm = bytes < settings_.ring_threshold_bytes ? AllreduceAlgorithm::mpi : AllreduceAlgorithm::ring;
    }
  }
  if (algorithm == AllreduceAlgorithm::node) {
    if (!settings_.node_local) {
      throw input_error("allreduce algorithm 'node' needs every rank on one node; these ranks "
                        "span several: use COHORT_ALLREDUCE_ALGORITHM=auto or ring");
    }
    if (!node_) node_ = std::make_unique<NodeAllreduce>(comm_, settings_.chunk_bytes);
    node_->run(send, recv, count, dtype, op);
    return;
  }
  if (algorithm == AllreduceAlgorithm::ring) {
    // A disagreement would otherwise leave ranks waiting for segments that never come; one
    // small allreduce is nothing beside a message worth the ring.
    if (!settings_.verify) check_agreement("allreduce", 1, count, dtype, static_cast<int>(op));
    if (!ring_) ring_ = std::make_unique<RingAllreduce>(comm_);
    ring_->run(send, recv, count, dtype, op);
    return;
  }
  const auto* in = static_cast<const std::byte*>(send);
  auto* out = static_cast<std::byte*>(recv);
  const std::size_t elem = size_of(dtype);
  // MPI counts are ints: larger messages go in pieces.
  const std::size_t piece = static_cast<std::size_t>(INT_MAX);
  std::size_t done = 0;
  do {
    const std::size_t n = std::min(piece, count - done);
    const void* s = send == recv ? MPI_IN_PLACE : static_cast<const void*>(in + done * elem);
    check_mpi(MPI_Allreduce(s, out + done * elem, static_cast<int>(n), mpi_type(dtype),
                            mpi_op(dtype, op), comm_),
              "MPI_Allreduce");
    done += n;
  } while (done < count);
  if (op == ReduceOp::avg) divide(recv, count, dtype, size_);
}

void MpiEngine::broadcast(void* buffer, std::size_t count, DType dtype, int root) {
  verify("broadcast", 2, count, dtype, root);
  auto* bytes = static_cast<std::byte*>(buffer);
  const std::size_t elem = size_of(dtype);
  const std::size_t piece = static_cast<std::size_t>(INT_MAX);
  std::size_t done = 0;
  do {
    const std::size_t n = std::min(piece, count - done);
    check_mpi(MPI_Bcast(bytes + done * elem, static_cast<int>(n), mpi_type(dtype), root, comm_),
              "MPI_Bcast");
    done += n;
  } while (done < count);
}

void MpiEngine::allgather(const void* send, void* recv, std::size_t count, DType dtype) {
  verify("allgather", 3, count, dtype, 0);
  const int n = checked_int(count, "allgather");
  const auto* mine = static_cast<const std::byte*>(recv) + static_cast<std::size_t>(rank_) * count * size_of(dtype);
  const void* s = send == mine ? MPI_IN_PLACE : send;
  check_mpi(MPI_Allgather(s, n, mpi_type(dtype), recv, n, mpi_type(dtype), comm_), "MPI_Allgather");
}

void MpiEngine::reduce_scatter(const void* send, void* recv, std::size_t count, DType dtype,
                               ReduceOp op) {
  verify("reduce_scatter", 4, count, dtype, static_cast<int>(op));
  const int n = checked_int(count, "reduce_scatter");
  const auto* mine = static_cast<const std::byte*>(send) + static_cast<std::size_t>(rank_) * count * size_of(dtype);
  if (recv == mine) {
    // MPI's in-place form leaves the result at the start of the buffer; cohort's leaves it
    // in the rank's own block, where the caller looks for it.
    check_mpi(MPI_Reduce_scatter_block(MPI_IN_PLACE, const_cast<void*>(send), n, mpi_type(dtype),
                                       mpi_op(dtype, op), comm_),
              "MPI_Reduce_scatter_block");
    if (rank_ != 0) std::memmove(recv, send, count * size_of(dtype));
  } else {
    check_mpi(MPI_Reduce_scatter_block(send, recv, n, mpi_type(dtype), mpi_op(dtype, op), comm_),
              "MPI_Reduce_scatter_block");
  }
  if (op == ReduceOp::avg) divide(recv, count, dtype, size_);
}

void MpiEngine::barrier() {
  verify("barrier", 5, 0, DType::uint8, 0);
  check_mpi(MPI_Barrier(comm_), "MPI_Barrier");
}

}  // namespace cohort::collectives::detail
