// python/torch_backend.cpp — cohort._torch: the torch.distributed backend "cohort", a c10d
// ProcessGroup over cohort::collectives::Communicator. `import cohort.torch` registers it.
//
// The only translation unit that includes torch's headers: they take minutes to compile.
//
// Every collective runs on one worker thread per process group, in the order the program
// issued them, so ranks that issue the same operations in the same order meet in the same
// calls, and wait()/futures complete in that order. Each collective starts with one small
// MPI_Iallreduce in which the ranks agree on what they are about to do (the operation, the
// element count and type, the reduction, the root) and whether every rank's tensors are
// usable; a disagreement or a bad tensor on any rank makes every rank's work fail with a
// message, where a plain MPI call would hang or read past a buffer.
//
// Errors reach Python as RuntimeError (what gloo raises), their message starting with
// "cohort backend: ". Point-to-point send/recv are posted at once on an MPI communicator of
// their own, as gloo posts them, so a send and a recv issued in either order on two ranks
// cannot deadlock behind each other.
//
// Ranks not started under MPI (torchrun's) meet through the group's store instead: the
// communicator joins them over TCP and, on one node, shared memory; the agreement is then an
// allreduce of that communicator, on the worker thread with the group's timeout, and
// send/recv go to a gloo group on the same store that cohort.torch makes for them.
//
// Devices: a group may hold a second process group, its device group (NCCL where CUDA is,
// made by cohort.torch), as gloo|nccl device maps do. A call whose tensors are all in CPU
// memory runs on cohort's communicator; one whose tensors are all elsewhere is handed to the
// device group as it is; one that mixes the two fails on every rank through the agreement.
#include <mpi.h>
#include <pybind11/chrono.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/utils/pybind.h>

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "collectives/communicator.hpp"
#include "common/dtype.hpp"
#include "common/error.hpp"
#include "common/serial_worker.hpp"

namespace {

namespace cc = cohort::collectives;
namespace py = pybind11;
using c10d::OpType;
using WorkPtr = c10::intrusive_ptr<c10d::Work>;

constexpr const char* kBackend = "cohort";

std::runtime_error backend_error(const std::string& what, const std::string& message) {
  return std::runtime_error("cohort backend: " + what + ": " + message);
}

// Why a rank cannot take part in a collective: a number that the other ranks learn in the
// agreement step, so that each of them can say which rank failed and why.
enum class Fault : std::int64_t { none, device, layout, dtype, mixed, op, shape, list, root, devices };

const char* describe(Fault fault) {
  switch (fault) {
    case Fault::none: return "nothing";
    case Fault::device: return "a tensor that is not in CPU memory";
    case Fault::layout: return "a non-contiguous or sparse tensor";
    case Fault::dtype: return "a dtype the cohort backend does not carry";
    case Fault::mixed: return "tensors of different dtypes";
    case Fault::op: return "a reduction the cohort backend does not support";
    case Fault::shape: return "output tensors whose sizes do not fit the input";
    case Fault::list: return "a tensor list of the wrong length";
    case Fault::root: return "a root that is not a rank of the group";
    case Fault::devices: return "tensors in CPU memory and on a device in one call";
  }
  return "bad input";
}

std::string dtype_name(at::ScalarType type) {
  return std::string("torch.") + c10::toString(type);
}

std::optional<cohort::DType> dtype_of(at::ScalarType type) {
  switch (type) {
    case at::kHalf: return cohort::DType::float16;
    case at::kBFloat16: return cohort::DType::bfloat16;
    case at::kFloat: return cohort::DType::float32;
    case at::kDouble: return cohort::DType::float64;
    case at::kInt: return cohort::DType::int32;
    case at::kLong: return cohort::DType::int64;
    case at::kByte: return cohort::DType::uint8;
    default: return std::nullopt;
  }
}

// What one rank is about to do. Every rank must agree on everything but the fault.
struct Plan {
  explicit Plan(std::string operation) : what(std::move(operation)) {}

  std::string what;  // the operation, as torch names it
  std::int64_t count = 0;
  cohort::DType dtype = cohort::DType::float32;
  cc::ReduceOp op = cc::ReduceOp::sum;
  std::int64_t root = 0;
  Fault fault = Fault::none;
  std::string message;  // this rank's own account of its fault

  void fail(Fault f, std::string text) {
    if (fault != Fault::none) return;
    fault = f;
    message = std::move(text);
  }

  // Checks one tensor and takes its dtype (the first tensor's, for a list).
  void check(const at::Tensor& t, bool first) {
    if (!t.device().is_cpu()) {
      fail(Fault::device, "a tensor is on " + t.device().str() +
                              " and this group has no device group to hand it to: the cohort backend carries CPU "
                              "tensors itself and CUDA tensors through NCCL, which cohort.torch sets up where "
                              "torch.cuda.is_available() and torch has NCCL (unless COHORT_TORCH_DEVICE_BACKEND=none); "
                              "otherwise use the nccl backend for CUDA tensors (dist.new_group(backend='nccl'))");
    } else if (t.is_sparse() || !t.is_contiguous()) {
      fail(Fault::layout, "a tensor of shape " + c10::str(t.sizes()) +
                              " is not contiguous: pass tensor.contiguous() and copy the result back");
    }
    const auto dtype = dtype_of(t.scalar_type());
    if (!dtype) {
      fail(Fault::dtype, "dtype " + dtype_name(t.scalar_type()) +
                             " is not one the cohort backend carries (float16, bfloat16, float32, float64, "
                             "int32, int64, uint8): convert the tensor, or use gloo for it");
    } else if (first) {
      this->dtype = *dtype;
    } else if (*dtype != this->dtype) {
      fail(Fault::mixed, "the tensors have different dtypes (" + std::string(cohort::to_string(this->dtype)) +
                             " and " + std::string(cohort::to_string(*dtype)) + "): pass tensors of one dtype");
    }
  }

  void reduction(const c10d::ReduceOp& reduce) {
    switch (static_cast<c10d::ReduceOp::RedOpType>(reduce)) {
      case c10d::ReduceOp::SUM: op = cc::ReduceOp::sum; return;
      case c10d::ReduceOp::AVG: op = cc::ReduceOp::avg; return;
      case c10d::ReduceOp::PRODUCT: op = cc::ReduceOp::prod; return;
      case c10d::ReduceOp::MIN: op = cc::ReduceOp::min; return;
      case c10d::ReduceOp::MAX: op = cc::ReduceOp::max; return;
      default:
        fail(Fault::op, "the reduction is not one the cohort backend supports (SUM, AVG, PRODUCT, MIN, MAX): "
                        "gloo has BAND, BOR and BXOR, nccl has PREMUL_SUM");
    }
  }
};

constexpr int kAgreementFields = 6;
using Agreement = std::array<std::int64_t, 2 * kAgreementFields>;

// The agreement step: one allreduce (MAX over each field and its negation, so every rank
// learns both the smallest and the largest value) over the ranks of the group. `reduce_max`
// runs it, or throws when a rank never comes; it may release the values to a request still
// pending then.
void agree(int rank, OpType kind, const Plan& plan, const std::function<void(std::unique_ptr<Agreement>&)>& reduce_max) {
  constexpr int kFields = kAgreementFields;
  const std::int64_t faulty = plan.fault == Fault::none
                                  ? -1
                                  : (static_cast<std::int64_t>(plan.fault) << 32) | rank;
  const std::array<std::int64_t, kFields> fields{
      static_cast<std::int64_t>(kind), plan.count, static_cast<std::int64_t>(plan.dtype),
      static_cast<std::int64_t>(plan.op), plan.root, faulty};
  auto owned = std::make_unique<Agreement>();
  for (int i = 0; i < kFields; ++i) {
    (*owned)[i] = fields[i];
    (*owned)[kFields + i] = -fields[i];
  }
  reduce_max(owned);
  const Agreement& v = *owned;
  const auto lo = [&](int i) { return -v[kFields + i]; };
  if (plan.fault != Fault::none) throw backend_error(plan.what, plan.message);
  if (v[5] >= 0) {
    throw backend_error(plan.what, "rank " + std::to_string(v[5] & 0xffffffff) + " passed " +
                                       describe(static_cast<Fault>(v[5] >> 32)) +
                                       " (its error says more); no rank ran the operation");
  }
  if (lo(0) != v[0]) {
    throw backend_error(plan.what, "the ranks issued different operations at this point (" +
                                       c10d::opTypeToString(static_cast<OpType>(lo(0))) + " and " +
                                       c10d::opTypeToString(static_cast<OpType>(v[0])) +
                                       "): every rank issues the same collectives in the same order");
  }
  if (lo(1) != v[1]) {
    throw backend_error(plan.what, "the ranks pass different numbers of elements (from " + std::to_string(lo(1)) +
                                       " to " + std::to_string(v[1]) + ", this rank " +
                                       std::to_string(plan.count) + "): every rank passes tensors of the same size");
  }
  if (lo(2) != v[2]) {
    throw backend_error(plan.what, "the ranks pass different dtypes (this rank " +
                                       std::string(cohort::to_string(plan.dtype)) +
                                       "): every rank passes tensors of the same dtype");
  }
  if (lo(3) != v[3]) throw backend_error(plan.what, "the ranks ask for different reductions: pass the same op");
  if (lo(4) != v[4]) throw backend_error(plan.what, "the ranks name different roots (src): pass the same one");
}

// A collective's work: completed by the worker thread, with the tensors it wrote as the
// future's value (what DDP's reducer reads). The future is made when someone asks for it:
// completing one (its value list, the storages torch extracts from it, its callbacks) cost
// the worker about as much as an 8-byte collective, on every call, for the plain
// dist.all_reduce that never looks at it.
class CohortWork final : public c10d::Work {
 public:
  CohortWork(OpType type, std::vector<at::Tensor> outputs) : Work(-1, type), outputs_(std::move(outputs)) {}

  void complete(std::exception_ptr error) {
    c10::intrusive_ptr<c10::ivalue::Future> future;
    {
      std::lock_guard lock(future_mutex_);
      settled_ = true;
      error_ = error;
      future = future_;
    }
    // Outside the lock: the future's callbacks may ask this work for it again.
    if (future) settle(*future);
    finish(error);
  }

  std::vector<at::Tensor> result() override { return outputs_; }

  c10::intrusive_ptr<c10::ivalue::Future> getFuture() override {
    std::lock_guard lock(future_mutex_);
    if (!future_) {
      future_ = c10::make_intrusive<c10::ivalue::Future>(c10::ListType::create(c10::TensorType::get()));
      // Asked for after the worker completed the work: nobody else will complete it. A
      // future that nobody has seen yet has no callbacks to run under the lock.
      if (settled_) settle(*future_);
    }
    return future_;
  }

 private:
  void settle(c10::ivalue::Future& future) {
    if (error_) {
      future.setError(error_);
    } else {
      future.markCompleted(c10::IValue(outputs_));
    }
  }

  std::vector<at::Tensor> outputs_;
  std::mutex future_mutex_;
  bool settled_ = false;  // the worker has run the work; error_ says how it ended
  std::exception_ptr error_;
  c10::intrusive_ptr<c10::ivalue::Future> future_;
};

// A send or a recv, posted when issued; waiting is MPI_Wait.
class P2PWork final : public c10d::Work {
 public:
  P2PWork(OpType type, at::Tensor tensor, MPI_Request request, std::int64_t expected, int peer)
      : Work(-1, type), tensor_(std::move(tensor)), request_(request), expected_(expected), peer_(peer) {}
  ~P2PWork() override {
    if (request_ != MPI_REQUEST_NULL) MPI_Wait(&request_, MPI_STATUS_IGNORE);
  }

  bool isCompleted() override {
    std::lock_guard lock(p2p_mutex_);
    if (request_ == MPI_REQUEST_NULL) return true;
    int done = 0;
    MPI_Status status;
    const int rc = MPI_Test(&request_, &done, &status);
    if (done || rc != MPI_SUCCESS) settle(rc, status);
    return done || rc != MPI_SUCCESS;
  }

  bool wait(std::chrono::milliseconds) override {
    {
      std::lock_guard lock(p2p_mutex_);
      if (request_ != MPI_REQUEST_NULL) {
        MPI_Status status;
        settle(MPI_Wait(&request_, &status), status);
      }
    }
    if (error_) std::rethrow_exception(error_);
    return true;
  }

  std::vector<at::Tensor> result() override { return {tensor_}; }

 private:
  void settle(int rc, const MPI_Status& status) {
    const bool recv = opType_ == OpType::RECV;
    const std::string what = recv ? "recv from rank " + std::to_string(peer_) : "send to rank " + std::to_string(peer_);
    request_ = MPI_REQUEST_NULL;
    int received = 0;
    if (rc == MPI_SUCCESS && recv) MPI_Get_count(&status, MPI_BYTE, &received);
    if (rc != MPI_SUCCESS) {
      char text[MPI_MAX_ERROR_STRING] = {};
      int length = 0;
      MPI_Error_string(rc, text, &length);
      error_ = std::make_exception_ptr(backend_error(
          what, std::string(text, length) + " (a recv smaller than its send is truncated: receive into a "
                                            "tensor of the size sent)"));
    } else if (recv && received != expected_) {
      error_ = std::make_exception_ptr(backend_error(
          what, "received " + std::to_string(received) + " bytes into a tensor of " + std::to_string(expected_) +
                    ": receive into a tensor of the size sent"));
    }
  }

  std::mutex p2p_mutex_;
  at::Tensor tensor_;
  MPI_Request request_;
  std::int64_t expected_;
  int peer_;
  std::exception_ptr error_;
};

// Torch's group ranks mapped onto MPI processes through the store torch passes: each member
// publishes its MPI_COMM_WORLD rank, and the group's communicator is made from them in torch's
// order, by the members alone (MPI_Comm_create_group), as new_group needs.
MPI_Comm group_comm(c10d::Store& store, int rank, int size) {
  if (size > 1 && !cc::mpi_launched()) {
    throw cohort::input_error(
        "COHORT_COLLECTIVES_BOOTSTRAP=mpi asks for MPI, and this process was not started by an MPI "
        "launcher: start the ranks with srun --mpi=pmix or mpirun (cohort launch's when SLURM_MPI_TYPE=pmix; torchrun "
        "starts no MPI), or unset it: ranks started without MPI meet through torch's store");
  }
  cc::initialize_mpi();
  int world_rank = 0, world_size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  const std::string mine = std::to_string(world_rank);
  store.set("cohort/mpi_rank/" + std::to_string(rank), std::vector<uint8_t>(mine.begin(), mine.end()));
  std::vector<int> members(size);
  std::vector<int> owner(world_size, -1);
  for (int r = 0; r < size; ++r) {
    const auto bytes = store.get("cohort/mpi_rank/" + std::to_string(r));
    members[r] = std::stoi(std::string(bytes.begin(), bytes.end()));
    if (owner[members[r]] >= 0) {
      throw cohort::input_error("torch ranks " + std::to_string(owner[members[r]]) + " and " + std::to_string(r) +
                                " are one MPI process: start every rank under one MPI launch (srun --mpi=pmix, "
                                "mpirun -n " + std::to_string(size) + ")");
    }
    owner[members[r]] = r;
  }
  MPI_Group world = MPI_GROUP_NULL, group = MPI_GROUP_NULL;
  MPI_Comm_group(MPI_COMM_WORLD, &world);
  MPI_Group_incl(world, size, members.data(), &group);
  MPI_Comm comm = MPI_COMM_NULL;
  const int rc = MPI_Comm_create_group(MPI_COMM_WORLD, group, 0, &comm);
  MPI_Group_free(&group);
  MPI_Group_free(&world);
  if (rc != MPI_SUCCESS) throw cohort::Error("MPI_Comm_create_group failed (error " + std::to_string(rc) + ")");
  return comm;
}

// Where a call's tensors are: in CPU memory (cohort's), elsewhere (the device group's), or
// both. With `cpu_is_device` (a test's hook) CPU tensors count as elsewhere.
class Devices {
 public:
  explicit Devices(bool cpu_is_device) : cpu_is_device_(cpu_is_device) {}

  Devices& add(const at::Tensor& t) {
    if (t.device().is_cpu() && !cpu_is_device_) {
      host = true;
    } else if (!other) {
      other = true;
      device = t.device();
    }
    return *this;
  }
  Devices& add(const std::vector<at::Tensor>& tensors) {
    for (const at::Tensor& t : tensors) add(t);
    return *this;
  }
  Devices& add(const std::vector<std::vector<at::Tensor>>& lists) {
    for (const auto& list : lists) add(list);
    return *this;
  }

  bool host = false;   // some tensor is in CPU memory
  bool other = false;  // some tensor is not
  c10::Device device{c10::kCPU};  // the first that is not

 private:
  bool cpu_is_device_;
};

// The group's store as the directory in which ranks not started under MPI find each other.
class StoreDirectory final : public cc::PeerDirectory {
 public:
  explicit StoreDirectory(c10d::Store& store) : store_(store) {}
  void set(const std::string& key, const std::string& value) override {
    store_.set(key, std::vector<std::uint8_t>(value.begin(), value.end()));
  }
  std::string get(const std::string& key) override {
    const std::vector<std::uint8_t> value = store_.get(key);  // waits, up to the store's timeout
    return std::string(value.begin(), value.end());
  }

 private:
  c10d::Store& store_;
};

class ProcessGroupCohort final : public c10d::ProcessGroup {
 public:
  // `p2p`: for ranks not started under MPI, the group their sends and receives go to; with
  // it, the ranks meet through the store.
  ProcessGroupCohort(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                     std::chrono::milliseconds timeout, c10::intrusive_ptr<c10d::ProcessGroup> device,
                     c10::intrusive_ptr<c10d::ProcessGroup> p2p)
      : ProcessGroup(rank, size), store_(store), timeout_(timeout), device_(std::move(device)), p2p_group_(std::move(p2p)) {
    if (device_ && (device_->getRank() != rank || device_->getSize() != size)) {
      throw cohort::input_error("the device group is rank " + std::to_string(device_->getRank()) + " of " +
                                std::to_string(device_->getSize()) + " where this group is rank " +
                                std::to_string(rank) + " of " + std::to_string(size) +
                                ": make it from the same store, rank and size");
    }
    if (p2p_group_) {
      StoreDirectory directory(*store);
      cc::CommunicatorOptions options;
      options.timeout = timeout_;
      comm_.emplace(cc::Communicator::from_directory(rank, size, directory, options));
      return;
    }
    MPI_Comm comm = group_comm(*store, rank, size);
    try {
      comm_.emplace(cc::Communicator::from_mpi(comm));
      MPI_Comm_free(&comm);
    } catch (...) {
      MPI_Comm_free(&comm);
      throw;
    }
    if (!comm_->overlaps()) {
      throw cohort::input_error("MPI was initialised without MPI_THREAD_MULTIPLE, which the cohort backend "
                                "needs (it communicates on a thread of its own): initialise MPI with "
                                "MPI_THREAD_MULTIPLE (mpi4py's default), or let cohort initialise it");
    }
    MPI_Comm_dup(comm_->mpi_comm(), &p2p_);
    MPI_Comm_set_errhandler(p2p_, MPI_ERRORS_RETURN);
  }

  ~ProcessGroupCohort() override {
    // The last reference may go on a Python thread that holds the GIL while the worker
    // completes a future whose callbacks are Python's and need it: let it go meanwhile.
    std::optional<py::gil_scoped_release> release;
    if (Py_IsInitialized() && PyGILState_Check()) release.emplace();
    worker_.join();
    if (broken_) {
      // A collective is still pending with a rank that never came: freeing the communicators
      // would wait for it. They stay behind for the process's end.
      new cc::Communicator(std::move(*comm_));
      comm_.reset();
      return;
    }
    if (p2p_ != MPI_COMM_NULL) MPI_Comm_free(&p2p_);
    comm_.reset();  // collective over the group, as MPI_Win_free is: still without the GIL
  }

  const std::string getBackendName() const override { return kBackend; }

  // The device group's backend ("nccl"), or nothing when the group has none.
  std::optional<std::string> device_backend() const {
    if (!device_) return std::nullopt;
    return device_->getBackendName();
  }

  // For tests on machines without a GPU: with `on`, CPU tensors count as a device's, so that
  // every call goes to the device group (gloo, in the tests) and none to the communicator.
  void route_to_device_group_for_testing(bool on) {
    if (on && !device_) {
      throw backend_error("_route_to_device_group_for_testing",
                          "this group has no device group: set COHORT_TORCH_DEVICE_BACKEND=gloo before it is made");
    }
    cpu_is_device_ = on;
  }

  // For tests: the calls this group ran on cohort's communicator (collectives and sends).
  std::uint64_t host_calls_for_testing() const { return host_calls_; }

  WorkPtr broadcast(std::vector<at::Tensor>& tensors, const c10d::BroadcastOptions& opts) override {
    Plan plan{"broadcast"};
    if (to_device(plan, devices().add(tensors))) return device_->broadcast(tensors, opts);
    one_tensor(plan, tensors);
    plan.root = opts.rootRank;
    if (opts.rootRank < 0 || opts.rootRank >= size_) {
      plan.fail(Fault::root, "root " + std::to_string(opts.rootRank) + " is not a rank of the group (0.." +
                                 std::to_string(size_ - 1) + ")");
    }
    return enqueue(OpType::BROADCAST, plan, tensors, [this, plan, t = tensors] {
      comm_->broadcast(t[0].data_ptr(), plan.count, plan.dtype, static_cast<int>(plan.root));
    });
  }

  WorkPtr allreduce(std::vector<at::Tensor>& tensors, const c10d::AllreduceOptions& opts) override {
    Plan plan{"allreduce"};
    if (to_device(plan, devices().add(tensors))) return device_->allreduce(tensors, opts);
    one_tensor(plan, tensors);
    plan.reduction(opts.reduceOp);
    return enqueue(OpType::ALLREDUCE, plan, tensors, [this, plan, t = tensors] {
      comm_->allreduce(t[0].data_ptr(), plan.count, plan.dtype, plan.op);
    });
  }

  // One reduction over the tensors laid end to end, as DDP's buckets are.
  WorkPtr allreduce_coalesced(std::vector<at::Tensor>& tensors, const c10d::AllreduceCoalescedOptions& opts) override {
    Plan plan{"allreduce_coalesced"};
    if (to_device(plan, devices().add(tensors))) return device_->allreduce_coalesced(tensors, opts);
    if (tensors.empty()) plan.fail(Fault::list, "the tensor list is empty: pass at least one tensor");
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      plan.check(tensors[i], i == 0);
      plan.count += tensors[i].numel();
    }
    plan.reduction(opts.reduceOp);
    return enqueue(OpType::ALLREDUCE_COALESCED, plan, tensors, [this, plan, t = tensors] {
      at::Tensor flat = flatten(t);
      comm_->allreduce(flat.data_ptr(), plan.count, plan.dtype, plan.op);
      unflatten(flat, t);
    });
  }

  WorkPtr allgather(std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
                    const c10d::AllgatherOptions& opts) override {
    Plan plan{"allgather"};
    if (to_device(plan, devices().add(inputs).add(outputs))) return device_->allgather(outputs, inputs, opts);
    one_tensor(plan, inputs);
    std::vector<at::Tensor> out = outputs.size() == 1 ? outputs[0] : std::vector<at::Tensor>{};
    check_blocks(plan, out, "output");
    return enqueue(OpType::ALLGATHER, plan, out, [this, plan, in = inputs, out] {
      at::Tensor flat = at::empty({plan.count * size_}, in[0].options());
      comm_->allgather(in[0].data_ptr(), flat.data_ptr(), plan.count, plan.dtype);
      unflatten(flat, out);
    });
  }

  WorkPtr _allgather_base(at::Tensor& output, at::Tensor& input, const c10d::AllgatherOptions& opts) override {
    Plan plan{"_allgather_base"};
    if (to_device(plan, devices().add(input).add(output))) return device_->_allgather_base(output, input, opts);
    one_tensor(plan, {input});
    check_whole(plan, output, "output");
    return enqueue(OpType::_ALLGATHER_BASE, plan, {output}, [this, plan, input, output] {
      comm_->allgather(input.data_ptr(), output.data_ptr(), plan.count, plan.dtype);
    });
  }

  WorkPtr reduce_scatter(std::vector<at::Tensor>& outputs, std::vector<std::vector<at::Tensor>>& inputs,
                         const c10d::ReduceScatterOptions& opts) override {
    Plan plan{"reduce_scatter"};
    if (to_device(plan, devices().add(outputs).add(inputs))) return device_->reduce_scatter(outputs, inputs, opts);
    one_tensor(plan, outputs);
    plan.reduction(opts.reduceOp);
    std::vector<at::Tensor> in = inputs.size() == 1 ? inputs[0] : std::vector<at::Tensor>{};
    check_blocks(plan, in, "input");
    return enqueue(OpType::REDUCE_SCATTER, plan, outputs, [this, plan, in, out = outputs] {
      at::Tensor flat = flatten(in);
      comm_->reduce_scatter(flat.data_ptr(), out[0].data_ptr(), plan.count, plan.dtype, plan.op);
    });
  }

  WorkPtr _reduce_scatter_base(at::Tensor& output, at::Tensor& input, const c10d::ReduceScatterOptions& opts) override {
    Plan plan{"_reduce_scatter_base"};
    if (to_device(plan, devices().add(output).add(input))) return device_->_reduce_scatter_base(output, input, opts);
    one_tensor(plan, {output});
    plan.reduction(opts.reduceOp);
    check_whole(plan, input, "input");
    return enqueue(OpType::_REDUCE_SCATTER_BASE, plan, {output}, [this, plan, input, output] {
      comm_->reduce_scatter(input.data_ptr(), output.data_ptr(), plan.count, plan.dtype, plan.op);
    });
  }

  // The agreement step is itself a barrier: no rank leaves it before every rank entered it.
  // With a device group, that group's barrier is issued now, in its own order of calls, and
  // the work is done when both are.
  WorkPtr barrier(const c10d::BarrierOptions& opts) override {
    if (cpu_is_device_) return device_->barrier(opts);
    if (!device_) return enqueue(OpType::BARRIER, Plan{"barrier"}, {}, [] {});
    return enqueue(OpType::BARRIER, Plan{"barrier"}, {}, [device = device_->barrier(opts)] { device->wait(); });
  }

  WorkPtr send(std::vector<at::Tensor>& tensors, int dst, int tag) override {
    Plan plan{"send"};
    if (to_device(plan, devices().add(tensors))) return device_->send(tensors, dst, tag);
    return post(plan, OpType::SEND, tensors, dst, tag);
  }
  WorkPtr recv(std::vector<at::Tensor>& tensors, int src, int tag) override {
    Plan plan{"recv"};
    if (to_device(plan, devices().add(tensors))) return device_->recv(tensors, src, tag);
    return post(plan, OpType::RECV, tensors, src, tag);
  }

  // The baseline of `cohort bench torch`: the communicator's own allreduce (SUM) of `tensor`,
  // `iterations` times in a C++ loop on the group's worker, after the ranks agreed as for
  // any collective; seconds per call, as this rank timed them. What dist.all_reduce costs
  // beyond this is the backend's.
  double communicator_allreduce_seconds(at::Tensor& tensor, int iterations) {
    std::vector<at::Tensor> tensors{tensor};
    Plan plan{"communicator allreduce"};
    one_tensor(plan, tensors);
    if (iterations < 1) plan.fail(Fault::shape, "iterations must be at least 1");
    auto seconds = std::make_shared<double>(0);
    auto work = enqueue(OpType::ALLREDUCE, plan, tensors, [this, plan, t = tensors, iterations, seconds] {
      const auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < iterations; ++i) comm_->allreduce(t[0].data_ptr(), plan.count, plan.dtype, plan.op);
      *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iterations;
    });
    work->wait();
    return *seconds;
  }

  // What cohort's communicator lacks, the device group may have for its own tensors.
  WorkPtr reduce(std::vector<at::Tensor>& tensors, const c10d::ReduceOptions& opts) override {
    if (on_device(devices().add(tensors))) return device_->reduce(tensors, opts);
    unsupported("reduce");
  }
  WorkPtr gather(std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
                 const c10d::GatherOptions& opts) override {
    if (on_device(devices().add(outputs).add(inputs))) return device_->gather(outputs, inputs, opts);
    unsupported("gather");
  }
  WorkPtr scatter(std::vector<at::Tensor>& outputs, std::vector<std::vector<at::Tensor>>& inputs,
                  const c10d::ScatterOptions& opts) override {
    if (on_device(devices().add(outputs).add(inputs))) return device_->scatter(outputs, inputs, opts);
    unsupported("scatter");
  }
  WorkPtr alltoall(std::vector<at::Tensor>& outputs, std::vector<at::Tensor>& inputs,
                   const c10d::AllToAllOptions& opts) override {
    if (on_device(devices().add(outputs).add(inputs))) return device_->alltoall(outputs, inputs, opts);
    unsupported("alltoall");
  }
  WorkPtr alltoall_base(at::Tensor& output, at::Tensor& input, std::vector<int64_t>& output_counts,
                        std::vector<int64_t>& input_counts, const c10d::AllToAllOptions& opts) override {
    if (on_device(devices().add(output).add(input))) {
      return device_->alltoall_base(output, input, output_counts, input_counts, opts);
    }
    unsupported("alltoall_base");
  }
  WorkPtr allgather_coalesced(std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
                              const c10d::AllgatherOptions& opts) override {
    if (on_device(devices().add(outputs).add(inputs))) return device_->allgather_coalesced(outputs, inputs, opts);
    unsupported("allgather_coalesced");
  }
  WorkPtr recvAnysource(std::vector<at::Tensor>& tensors, int tag) override {
    if (on_device(devices().add(tensors))) return device_->recvAnysource(tensors, tag);
    unsupported("recv from any source");
  }

 private:
  // Every rank issues the unsupported operation, so every rank raises: nobody waits.
  [[noreturn]] static void unsupported(const std::string& what) {
    throw backend_error(what, "the cohort backend does not support it: gloo does (dist.new_group(backend='gloo') "
                              "gives a group of the same ranks to run it on)");
  }

  Devices devices() const { return Devices{cpu_is_device_}; }

  bool on_device(const Devices& devices) const { return device_ && devices.other && !devices.host; }

  // Whether a call goes to the device group. One that mixes CPU tensors with a device's stays
  // here with a fault, so that every rank's call fails alike and none waits for it.
  bool to_device(Plan& plan, const Devices& devices) const {
    if (on_device(devices)) return true;
    if (device_ && devices.host && devices.other) {
      plan.fail(Fault::devices, "the call mixes tensors in CPU memory with tensors on " + devices.device.str() +
                                    ": the cohort backend carries CPU tensors itself and hands a device's to its "
                                    "device group (" + device_->getBackendName() +
                                    "), a whole call to one or the other: pass the tensors of one call on one "
                                    "device (tensor.to(...))");
    }
    return false;
  }

  static void one_tensor(Plan& plan, const std::vector<at::Tensor>& tensors) {
    if (tensors.size() != 1) {
      plan.fail(Fault::list, "the list holds " + std::to_string(tensors.size()) +
                                 " tensors; the cohort backend takes one tensor per process (all_reduce_coalesced "
                                 "takes a list)");
      return;
    }
    plan.check(tensors[0], true);
    plan.count = tensors[0].numel();
  }

  // A list of one block per rank, each of the plan's size and dtype.
  void check_blocks(Plan& plan, const std::vector<at::Tensor>& blocks, const char* which) const {
    if (static_cast<int>(blocks.size()) != size_) {
      plan.fail(Fault::list, std::string("the ") + which + " list holds " + std::to_string(blocks.size()) +
                                 " tensors for a group of " + std::to_string(size_) + " ranks: pass one per rank");
      return;
    }
    for (const at::Tensor& b : blocks) {
      plan.check(b, false);
      if (b.numel() != plan.count) {
        plan.fail(Fault::shape, std::string("an ") + which + " tensor holds " + std::to_string(b.numel()) +
                                    " elements where each must hold " + std::to_string(plan.count));
      }
    }
  }

  // One tensor that holds a block per rank.
  void check_whole(Plan& plan, const at::Tensor& whole, const char* which) const {
    plan.check(whole, false);
    if (whole.numel() != plan.count * size_) {
      plan.fail(Fault::shape, std::string("the ") + which + " tensor holds " + std::to_string(whole.numel()) +
                                  " elements where " + std::to_string(size_) + " ranks × " +
                                  std::to_string(plan.count) + " = " + std::to_string(plan.count * size_) +
                                  " are needed");
    }
  }

  static at::Tensor flatten(const std::vector<at::Tensor>& tensors) {
    if (tensors.size() == 1) return tensors[0].view({-1});
    std::vector<at::Tensor> flat;
    flat.reserve(tensors.size());
    for (const at::Tensor& t : tensors) flat.push_back(t.view({-1}));
    return at::cat(flat);
  }

  static void unflatten(const at::Tensor& flat, const std::vector<at::Tensor>& tensors) {
    std::int64_t offset = 0;
    for (const at::Tensor& t : tensors) {
      const std::int64_t n = t.numel();
      if (flat.data_ptr() != t.data_ptr() || offset != 0) t.view({-1}).copy_(flat.narrow(0, offset, n));
      offset += n;
    }
  }

  WorkPtr enqueue(OpType type, const Plan& plan, std::vector<at::Tensor> outputs, std::function<void()> body) {
    ++host_calls_;
    auto work = c10::make_intrusive<CohortWork>(type, std::move(outputs));
    worker_.post([this, work, type, plan, body = std::move(body)] {
      std::exception_ptr error;
      try {
        if (broken_) {
          throw backend_error(plan.what, "an earlier collective of this group timed out (" + broken_what_ +
                                             "), so the group cannot be used any more: destroy it and start again");
        }
        ++sequence_;
        agree(rank_, type, plan, [&](std::unique_ptr<Agreement>& v) { reduce_max(v, plan); });
        body();
      } catch (const std::runtime_error& e) {
        // cohort::Error included: torch's callers expect RuntimeError, with the backend named.
        const std::string text = e.what();
        error = std::make_exception_ptr(text.rfind("cohort backend: ", 0) == 0 ? std::runtime_error(text)
                                                                               : backend_error(plan.what, text));
      } catch (...) {
        error = std::current_exception();
      }
      work->complete(error);
    });
    return work;
  }

  WorkPtr post(Plan& plan, OpType type, std::vector<at::Tensor>& tensors, int peer, int tag) {
    const bool recv = type == OpType::RECV;
    one_tensor(plan, tensors);
    if (peer < 0 || peer >= size_) {
      plan.fail(Fault::root, "rank " + std::to_string(peer) + " is not a rank of the group (0.." +
                                 std::to_string(size_ - 1) + ")");
    }
    if (plan.fault != Fault::none) throw backend_error(plan.what, plan.message);
    if (p2p_group_) {
      ++host_calls_;
      return recv ? p2p_group_->recv(tensors, peer, tag) : p2p_group_->send(tensors, peer, tag);
    }
    const at::Tensor& t = tensors[0];
    const std::int64_t bytes = t.numel() * static_cast<std::int64_t>(t.element_size());
    MPI_Request request = MPI_REQUEST_NULL;
    const int rc = recv ? MPI_Irecv(t.data_ptr(), static_cast<int>(bytes), MPI_BYTE, peer, tag, p2p_, &request)
                        : MPI_Isend(t.data_ptr(), static_cast<int>(bytes), MPI_BYTE, peer, tag, p2p_, &request);
    if (rc != MPI_SUCCESS) {
      throw backend_error(plan.what, "MPI could not post it (error " + std::to_string(rc) +
                                         "; tags must be 0.." + std::to_string(MPI_TAG_UB) + " or less)");
    }
    ++host_calls_;
    return c10::make_intrusive<P2PWork>(type, t, request, bytes, peer);
  }

  // The agreement's allreduce: over MPI where the ranks are MPI's, else on the communicator.
  void reduce_max(std::unique_ptr<Agreement>& v, const Plan& plan) {
    const int n = static_cast<int>(v->size());
    if (comm_->mpi_comm() != MPI_COMM_NULL) {
      MPI_Request request = MPI_REQUEST_NULL;
      const int rc = MPI_Iallreduce(MPI_IN_PLACE, v->data(), n, MPI_INT64_T, MPI_MAX, comm_->mpi_comm(), &request);
      if (rc != MPI_SUCCESS) throw backend_error(plan.what, "MPI_Iallreduce failed (error " + std::to_string(rc) + ")");
      await(
          [&] {
            int done = 0;
            MPI_Test(&request, &done, MPI_STATUS_IGNORE);
            return done != 0;
          },
          [&] { v.release(); }, plan);
      return;
    }
    // On this thread: a hand-over to the communicator's progress thread and back cost more
    // than the agreement itself. The communicator's own timeout is the group's, and it names
    // the rank it waited for.
    try {
      comm_->allreduce(v->data(), v->size(), cohort::DType::int64, cc::ReduceOp::max);
    } catch (const cc::PeerTimeout& e) {
      timed_out(plan, std::to_string(e.peer()));
    }
  }

  [[noreturn]] void timed_out(const Plan& plan, const std::string& missing) {
    broken_ = true;
    broken_what_ = plan.what;
    throw backend_error(plan.what, "rank(s) " + (missing.empty() ? std::string("?") : missing) +
                                       " did not arrive within " + std::to_string(timeout_.count() / 1000) +
                                       " s (the group's timeout, init_process_group(timeout=...)); the group cannot "
                                       "be used any more");
  }

  // Waits until `done` within the group's timeout. A rank still waiting after a second says
  // so in the store, so that when the timeout comes every waiting rank can name the ranks
  // that never came; `abandon` then lets go of what the pending operation still writes to.
  void await(const std::function<bool()>& done, const std::function<void()>& abandon, const Plan& plan) {
    const auto start = std::chrono::steady_clock::now();
    const std::string prefix = "cohort/waiting/" + std::to_string(sequence_) + "/";
    bool said = false;
    for (;;) {
      if (done()) return;
      const auto waited = std::chrono::steady_clock::now() - start;
      if (!said && waited > std::chrono::seconds(1)) {
        store_->set(prefix + std::to_string(rank_), std::vector<uint8_t>{'1'});
        said = true;
      }
      if (waited > timeout_) break;
      // A peer on another core arrives within microseconds; one still computing (the rest of
      // DDP's backward) needs this core more than a poll does: then nap, as cohort's
      // node-local allreduce does.
      if (waited < std::chrono::microseconds(200)) {
        std::this_thread::yield();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    }
    std::vector<std::string> keys;
    for (int r = 0; r < size_; ++r) keys.push_back(prefix + std::to_string(r));
    try {
      store_->wait(keys, std::chrono::milliseconds(2000));
    } catch (const std::exception&) {
      // Some never said so: they are the ones named below.
    }
    std::string missing;
    for (int r = 0; r < size_; ++r) {
      if (!store_->check({keys[r]})) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
    }
    abandon();
    timed_out(plan, missing);
  }

  c10::intrusive_ptr<c10d::Store> store_;
  std::chrono::milliseconds timeout_;
  std::uint64_t sequence_ = 0;  // collectives this group has run: the same on every rank
  bool broken_ = false;         // a collective timed out (the worker's own)
  std::string broken_what_;
  std::optional<cc::Communicator> comm_;
  MPI_Comm p2p_ = MPI_COMM_NULL;
  c10::intrusive_ptr<c10d::ProcessGroup> device_;  // for tensors not in CPU memory; may be null
  c10::intrusive_ptr<c10d::ProcessGroup> p2p_group_;  // sends and receives without MPI; may be null
  bool cpu_is_device_ = false;                     // route_to_device_group_for_testing
  std::atomic<std::uint64_t> host_calls_{0};
  cohort::SerialWorker worker_;  // runs the collectives, in the order issued
};

c10::intrusive_ptr<c10d::ProcessGroup> process_group(const py::object& group, const char* name, const char* example) {
  if (group.is_none()) return {};
  try {
    return group.cast<c10::intrusive_ptr<c10d::ProcessGroup>>();
  } catch (const py::cast_error&) {
    throw std::runtime_error(std::string("cohort backend: ") + name + ": " + std::string(py::str(group.get_type())) +
                             " is not a torch.distributed ProcessGroup: pass one (" + example + ") or None");
  }
}

c10::intrusive_ptr<ProcessGroupCohort> create(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                              std::chrono::duration<float> timeout, const py::object& device_group,
                                              const py::object& p2p_group) {
  auto device = process_group(device_group, "device_group", "ProcessGroupNCCL");
  auto p2p = process_group(p2p_group, "p2p_group", "ProcessGroupGloo");
  try {
    py::gil_scoped_release release;  // the store's gets wait for the other ranks
    return c10::make_intrusive<ProcessGroupCohort>(
        store, rank, size, std::chrono::duration_cast<std::chrono::milliseconds>(timeout), std::move(device),
        std::move(p2p));
  } catch (const cohort::Error& e) {
    throw std::runtime_error(std::string("cohort backend: ") + e.what());
  }
}

}  // namespace

PYBIND11_MODULE(_torch, m) {
  m.doc() = "The torch.distributed backend 'cohort' (import cohort.torch registers it).";
  m.def("mpi_launched", &cc::mpi_launched,
        "Whether MPI knows this process's ranks (MPI initialised, or started by an MPI launcher).");
  // The base class's Python type must exist before ours derives from it.
  py::module_::import("torch.distributed");
  py::class_<ProcessGroupCohort, c10d::ProcessGroup, c10::intrusive_ptr<ProcessGroupCohort>>(m, "ProcessGroupCohort")
      .def(py::init(&create), py::arg("store"), py::arg("rank"), py::arg("size"), py::arg("timeout"),
           py::arg("device_group") = py::none(), py::arg("p2p_group") = py::none())
      .def_property_readonly("device_backend", &ProcessGroupCohort::device_backend)
      .def("_route_to_device_group_for_testing", &ProcessGroupCohort::route_to_device_group_for_testing,
           py::arg("on"))
      .def("_host_calls_for_testing", &ProcessGroupCohort::host_calls_for_testing)
      .def("_communicator_allreduce_seconds", &ProcessGroupCohort::communicator_allreduce_seconds,
           py::arg("tensor"), py::arg("iterations"), py::call_guard<py::gil_scoped_release>());
}
