#include "collectives/communicator.hpp"

#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <string>

#include "collectives/dtype.hpp"
#include "collectives/mpi_backend.hpp"
#include "collectives/operation.hpp"
#include "collectives/rendezvous.hpp"
#include "collectives/tcp_backend.hpp"
#include "common/environment.hpp"
#include "common/error.hpp"
#include "common/serial_worker.hpp"
#include "common/text.hpp"
#if COHORT_HAVE_NCCL
#include "collectives/nccl_backend.hpp"
#endif

namespace cohort::collectives {
namespace detail {
namespace {

// Finalizes MPI at exit when cohort initialised it. A function-local static constructed on
// first use is destroyed after any object created later, communicators held in statics
// included.
struct MpiFinalizer {
  ~MpiFinalizer() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
};

void ensure_mpi() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return;
  int provided = 0;
  // Non-blocking operations progress on a thread of their own, which needs MULTIPLE.
  check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
  static MpiFinalizer finalizer;
}

std::optional<long long> env_integer(const char* name) {
  const char* text = std::getenv(name);
  if (!text || !*text) return std::nullopt;
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0') {
    throw input_error(std::string(name) + "=" + text + ": expected a whole number");
  }
  return value;
}

std::size_t parse_bytes(const std::string& name, const std::string& text) {
  const auto bytes = parse_byte_size(text);
  if (!bytes) throw input_error(name + "=" + text + ": expected a size in bytes such as 65536, 64K or 4M");
  return static_cast<std::size_t>(*bytes);
}

// Where cohort's node-local allreduce overtakes MPI_Allreduce, from `cohort bench collectives
// --algorithm node --baseline mpi` (docs/performance.md). Two ranks were measured on the
// reference machine (2 cores): the node-local path wins from 4 KiB. More ranks per node
// could not be measured there without oversubscription; they keep 64 KiB, where the
// two-rank node-local path was already twice as fast as MPI, until measured on a wider node
// (COHORT_ALLREDUCE_THRESHOLD overrides).
std::size_t measured_threshold(int ranks) {
  struct Row {
    int max_ranks;
    std::size_t bytes;
  };
  static constexpr Row kTable[] = {
      {2, 4 * 1024},
      {1 << 30, 64 * 1024},
  };
  for (const auto& row : kTable) {
    if (ranks <= row.max_ranks) return row.bytes;
  }
  return kTable[std::size(kTable) - 1].bytes;
}

// Across nodes the ring takes over from 1 MiB. This has not been measured over a network
// (the reference machine is one node): it is where MPI_Allreduce's per-call temporary
// buffers start to cost page faults that the ring's persistent staging avoids, while below
// it MPI's latency-optimised algorithms keep the small messages.
constexpr std::size_t kRingThreshold = 1u << 20;

constexpr const char* kNoNccl =
    "this cohort was built without CUDA and NCCL; rebuild with them installed, or use "
    "COHORT_COLLECTIVES_BACKEND=mpi with the ranks started under MPI";

AllreduceAlgorithm parse_algorithm(const std::string& text) {
  if (text == "auto") return AllreduceAlgorithm::automatic;
  if (text == "mpi") return AllreduceAlgorithm::mpi;
  if (text == "node") return AllreduceAlgorithm::node;
  if (text == "ring") return AllreduceAlgorithm::ring;
  throw input_error("COHORT_ALLREDUCE_ALGORITHM=" + text + ": unknown algorithm (use auto, mpi, node or ring)");
}

// The directory of ranks that meet at MASTER_ADDR:MASTER_PORT without MPI: what each rank
// sets before it first asks is exchanged in one rendezvous round (rank 0 gathers every
// rank's entries and sends them all back), so every entry is set before any is read. A
// rank's `failure` (why it cannot take part) fails every rank at that round.
class GatheredDirectory : public PeerDirectory {
 public:
  GatheredDirectory(RendezvousOptions options, std::string failure)
      : options_(std::move(options)), failure_(std::move(failure)) {}

  void set(const std::string& key, const std::string& value) override {
    if (gathered_) throw Error("rendezvous: '" + key + "' was published after the ranks met");
    mine_[key] = value;
  }
  std::string get(const std::string& key) override {
    if (!gathered_) gather();
    const auto it = all_.find(key);
    if (it == all_.end()) throw Error("rendezvous: no rank published '" + key + "'");
    return it->second;
  }

 private:
  // Entries travel as "key\0value\0" pairs: keys and values hold no NUL.
  void gather() {
    std::string mine;
    for (const auto& [key, value] : mine_) mine += key + '\0' + value + '\0';
    for (const auto& part : rendezvous_gather(options_, failure_, mine)) {
      std::size_t at = 0;
      while (at < part.size()) {
        const auto key_end = part.find('\0', at);
        const auto value_end = key_end == std::string::npos ? key_end : part.find('\0', key_end + 1);
        if (value_end == std::string::npos) throw Error("rendezvous: a rank's entries are malformed");
        all_[part.substr(at, key_end - at)] = part.substr(key_end + 1, value_end - key_end - 1);
        at = value_end + 1;
      }
    }
    gathered_ = true;
  }

  RendezvousOptions options_;
  std::string failure_;
  std::map<std::string, std::string> mine_, all_;
  bool gathered_ = false;
};

void warn(const std::string& message) noexcept {
  try {
    std::cerr << "cohort: collectives: " << message << "\n";
  } catch (...) {
  }
}

}  // namespace

class CommunicatorImpl {
 public:
  CommunicatorImpl(MPI_Comm comm, const CommunicatorOptions& options) {
    int provided = MPI_THREAD_SINGLE;
    MPI_Query_thread(&provided);
    overlaps_ = provided == MPI_THREAD_MULTIPLE;

    backend_ = choose_backend(options);
#if !COHORT_HAVE_NCCL
    if (backend_ == "nccl") throw input_error("backend 'nccl': " + std::string(kNoNccl));
#endif

    MpiSettings settings;
    settings.algorithm = options.algorithm;
    if (const char* text = std::getenv("COHORT_ALLREDUCE_ALGORITHM");
        text && *text && options.algorithm == AllreduceAlgorithm::automatic) {
      settings.algorithm = parse_algorithm(text);
    }
    MPI_Comm_rank(comm, &rank_);
    MPI_Comm_size(comm, &size_);
    settings.node_local = NodeAllreduce::spans_one_node(comm);
    if (options.threshold_bytes) {
      settings.threshold_bytes = *options.threshold_bytes;
      settings.ring_threshold_bytes = *options.threshold_bytes;
    } else if (const char* text = std::getenv("COHORT_ALLREDUCE_THRESHOLD"); text && *text) {
      settings.threshold_bytes = parse_bytes("COHORT_ALLREDUCE_THRESHOLD", text);
      settings.ring_threshold_bytes = settings.threshold_bytes;
    } else {
      settings.threshold_bytes = measured_threshold(size_);
      settings.ring_threshold_bytes = kRingThreshold;
    }
    settings.verify = options.verify ? *options.verify : env_integer("COHORT_COLLECTIVES_VERIFY").value_or(0) != 0;
    if (const char* text = std::getenv("COHORT_ALLREDUCE_CHUNK"); text && *text) {
      settings.chunk_bytes = parse_bytes("COHORT_ALLREDUCE_CHUNK", text);
      if (settings.chunk_bytes < 4096) {
        throw input_error(std::string("COHORT_ALLREDUCE_CHUNK=") + text + ": chunks must be at least 4K");
      }
    }
    settings_ = settings;

    sync_ = std::make_unique<MpiEngine>(comm, settings);
    // Background operations get a communicator of their own, so that they never interleave
    // with blocking ones on the same MPI context.
    if (overlaps_) async_ = std::make_unique<MpiEngine>(comm, settings);

#if COHORT_HAVE_NCCL
    choose_device(options, rank_on_node(sync_->comm()));
    // Every rank learns whether all of them see a device, so that either all create the
    // NCCL communicator (at once with backend nccl, at the first device buffer with auto)
    // or all report the missing device: one rank going to MPI while the others set up
    // NCCL would pair unrelated MPI calls.
    int have = devices_ > 0 ? 1 : 0;
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, &have, 1, MPI_INT, MPI_MIN, sync_->comm()), "MPI_Allreduce");
    every_rank_has_device_ = have == 1;
    if (backend_ == "nccl") {
      if (!have) {
        throw input_error(devices_ > 0 ? std::string("backend 'nccl': another rank sees no CUDA device")
                                       : std::string("backend 'nccl': no CUDA device is visible to rank ") +
                                             std::to_string(rank_) +
                                             " (check CUDA_VISIBLE_DEVICES and the job's --gpus), "
                                             "or use COHORT_COLLECTIVES_BACKEND=mpi");
      }
      nccl_ = std::make_unique<NcclEngine>(sync_->comm(), device_);
    }
#endif
  }

  // Ranks that met over TCP at MASTER_ADDR:MASTER_PORT (no MPI), as torchrun starts them:
  // host buffers over TCP and shared memory, as for ranks that meet through a directory,
  // and device buffers over NCCL when every rank sees a CUDA device. A rank that cannot take
  // part (backend mpi; backend nccl without a device or without NCCL in this build) says so
  // at the rendezvous, and every rank fails with its reason.
  CommunicatorImpl(const RendezvousOptions& rendezvous, const CommunicatorOptions& options)
      : rank_(rendezvous.rank), size_(rendezvous.size), overlaps_(true), backend_(choose_backend(options)) {
    met_over_tcp_ = true;
    std::string failure;
    if (backend_ == "mpi") {
      failure = "backend 'mpi' (COHORT_COLLECTIVES_BACKEND) needs the ranks started under MPI, and they met "
                "over MASTER_ADDR:MASTER_PORT: use COHORT_COLLECTIVES_BACKEND=auto, or start them under MPI";
    }
    bool has_device = false;
#if COHORT_HAVE_NCCL
    choose_device(options, -1);
    has_device = devices_ > 0;
    if (failure.empty() && backend_ == "nccl" && !has_device) {
      failure = "backend 'nccl': no CUDA device is visible (check CUDA_VISIBLE_DEVICES and the job's --gpus)";
    }
#else
    if (failure.empty() && backend_ == "nccl") failure = "backend 'nccl': " + std::string(kNoNccl);
#endif
    // A setting this rank cannot use fails every rank at the meeting, not this one alone.
    TcpSettings settings;
    try {
      settings = host_settings(options);
    } catch (const Error& e) {
      if (failure.empty()) failure = e.what();
    }
    GatheredDirectory directory(rendezvous, failure);
    directory.set("cohort/device/" + std::to_string(rank_), has_device ? "1" : "0");
    start_host_engine(directory, settings);
#if COHORT_HAVE_NCCL
    // Every rank read the same entries, so all of them form the NCCL communicator, in a
    // second meeting, or none does.
    bool every_rank = true;
    for (int r = 0; r < size_; ++r) every_rank = every_rank && directory.get("cohort/device/" + std::to_string(r)) == "1";
    if (every_rank) {
      nccl_ = std::make_unique<NcclEngine>(rendezvous, device_, "");
    } else {
      devices_ = 0;  // host buffers only
    }
#endif
  }

  // Ranks that met through a directory (no MPI): host buffers over TCP and shared memory,
  // every operation on the progress thread in the order issued.
  CommunicatorImpl(int rank, int size, PeerDirectory& directory, const CommunicatorOptions& options)
      : rank_(rank), size_(size), overlaps_(true), backend_(choose_backend(options)) {
    if (backend_ == "nccl") {
      throw input_error("backend 'nccl': ranks that meet through a directory carry host buffers only: use "
                        "COHORT_COLLECTIVES_BACKEND=auto, and NCCL (torch's nccl backend) for device tensors");
    }
    start_host_engine(directory, host_settings(options));
  }

  // The settings of the TCP and shared-memory engine, from `options` and the environment.
  static TcpSettings host_settings(const CommunicatorOptions& options) {
    TcpSettings settings;
    settings.algorithm = options.algorithm;
    if (const char* text = std::getenv("COHORT_ALLREDUCE_ALGORITHM");
        text && *text && options.algorithm == AllreduceAlgorithm::automatic) {
      settings.algorithm = parse_algorithm(text);
    }
    if (settings.algorithm == AllreduceAlgorithm::mpi) settings.algorithm = AllreduceAlgorithm::automatic;
    if (const char* text = std::getenv("COHORT_ALLREDUCE_CHUNK"); text && *text) {
      settings.chunk_bytes = parse_bytes("COHORT_ALLREDUCE_CHUNK", text);
      if (settings.chunk_bytes < 4096) {
        throw input_error(std::string("COHORT_ALLREDUCE_CHUNK=") + text + ": chunks must be at least 4K");
      }
    }
    settings.timeout = options.timeout.value_or(std::chrono::milliseconds(0));
    return settings;
  }

  // The TCP and shared-memory engine of ranks without MPI.
  void start_host_engine(PeerDirectory& directory, const TcpSettings& settings) {
    tcp_engine_ = std::make_unique<TcpEngine>(rank_, size_, directory, settings);
    if (settings.algorithm == AllreduceAlgorithm::node && !tcp_engine_->node_local()) {
      throw input_error("allreduce algorithm 'node' needs every rank on one node; these ranks "
                        "span several: use COHORT_ALLREDUCE_ALGORITHM=auto or ring");
    }
    settings_.node_local = tcp_engine_->node_local();
    settings_.algorithm = settings_.node_local && settings.algorithm != AllreduceAlgorithm::ring
                              ? AllreduceAlgorithm::node
                              : AllreduceAlgorithm::ring;
  }

  ~CommunicatorImpl() { worker_.join(); }  // before the engines its operations run on

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool overlaps() const { return overlaps_; }
  MPI_Comm comm() const { return sync_ ? sync_->comm() : MPI_COMM_NULL; }
  std::size_t threshold() const {
    if (settings_.algorithm == AllreduceAlgorithm::mpi) return SIZE_MAX;
    if (settings_.algorithm != AllreduceAlgorithm::automatic) return 0;
    return settings_.node_local ? settings_.threshold_bytes : settings_.ring_threshold_bytes;
  }
  BackendKind device_backend() const {
#if COHORT_HAVE_NCCL
    if (backend_ != "mpi" && devices_ > 0) return BackendKind::nccl;
#endif
    return BackendKind::mpi;
  }

  // Whether this call's buffers go to NCCL; rejects buffers the chosen backend cannot use.
  bool use_nccl(const char* what, const void* a, const void* b) {
#if COHORT_HAVE_NCCL
    if (tcp_engine_ && !nccl_) {
      if ((a && memory_place(a).device) || (b && memory_place(b).device)) {
        throw input_error(std::string(what) + ": the buffer is CUDA device memory, and " +
                          (met_over_tcp_ ? "not every rank sees a CUDA device, so these ranks, started without MPI, "
                                           "formed no NCCL communicator: give every rank a GPU, or pass host buffers"
                                         : "these ranks met through a directory, which carries host buffers: copy "
                                           "it to host memory, or use NCCL for it"));
      }
      return false;
    }
    if (devices_ == 0) return false;  // the nccl backend with no device was refused at creation
    // One driver query per distinct buffer: on GPU nodes every host-buffer call pays for it.
    const MemoryPlace pa = memory_place(a);
    const MemoryPlace pb = b && b != a ? memory_place(b) : pa;
    if (a && b && pa.device != pb.device) {
      throw input_error(std::string(what) + ": one buffer is CUDA device memory and the other host memory: "
                        "pass both on this rank's device (" + std::to_string(device_) + "), or both in host memory");
    }
    const bool device = pa.device || pb.device;
    for (const MemoryPlace& p : {pa, pb}) {
      if (p.device && p.index >= 0 && p.index != device_) {
        throw input_error(std::string(what) + ": the buffer is on CUDA device " + std::to_string(p.index) +
                          " and this rank's communicator uses device " + std::to_string(device_) +
                          " (from LOCAL_RANK, SLURM_LOCALID or the rank's place on its node, or "
                          "CommunicatorOptions::device): allocate it on device " + std::to_string(device_));
      }
    }
    if (backend_ == "mpi" && device) {
      throw input_error(std::string(what) + ": the buffer is CUDA device memory and the backend is "
                        "mpi: use COHORT_COLLECTIVES_BACKEND=auto or nccl, or a host buffer");
    }
    if (backend_ == "nccl" && !device && (a || b)) {
      throw input_error(std::string(what) + ": the buffer is host memory and the backend is nccl: "
                        "use a CUDA device buffer, or COHORT_COLLECTIVES_BACKEND=auto");
    }
    if (device && !nccl_) {
      if (!every_rank_has_device_) {
        throw input_error(std::string(what) + ": the buffer is CUDA device memory and another rank sees no "
                          "CUDA device, so the ranks cannot form a NCCL communicator: give every rank a GPU "
                          "(the job's --gpus, CUDA_VISIBLE_DEVICES), or pass host buffers");
      }
      nccl_ = std::make_unique<NcclEngine>(sync_->comm(), device_);
    }
    return device;
#else
    (void)what, (void)a, (void)b;
    return false;
#endif
  }

#if COHORT_HAVE_NCCL
  NcclEngine& nccl() { return *nccl_; }
  void synchronize_device() {
    if (nccl_) nccl_->synchronize();
  }
#else
  void synchronize_device() {}
#endif

  // Runs a blocking host operation: at once over MPI (non-blocking ones have an MPI
  // communicator of their own); otherwise behind the non-blocking ones issued before it, on
  // the calling thread when there are none (a hand-over to the progress thread and back
  // costs more than a small collective).
  void run(const std::function<void(HostEngine&)>& work) {
    if (sync_) return work(*sync_);
    std::unique_lock order(order_);
    if (queued_ == 0) {
      // Free: the progress thread holds the engine only while an operation is queued. Taken
      // before order_ is let go, so that an operation submitted from now on runs after this.
      std::lock_guard engine(engine_);
      order.unlock();
      return work(*tcp_engine_);
    }
    order.unlock();
    submit(work)->wait();
  }

  // Blocking when `wait`, else through the returned operation.
  std::shared_ptr<Operation> barrier(bool wait) {
    synchronize_device();
    if (wait) {
      run([](HostEngine& e) { e.barrier(); });
      return nullptr;
    }
    return submit([](HostEngine& e) { e.barrier(); });
  }
  int device() const {
#if COHORT_HAVE_NCCL
    if (backend_ != "mpi" && devices_ > 0) return device_;
#endif
    return -1;
  }

  // Runs work on the progress thread, or at once when MPI cannot take calls from two
  // threads.
  std::shared_ptr<Operation> submit(std::function<void(HostEngine&)> work) {
    auto op = std::make_shared<HostOperation>();
    if (!overlaps_) {
      try {
        work(*sync_);
        op->finish(nullptr);
      } catch (...) {
        op->finish(std::current_exception());
      }
      return op;
    }
    std::lock_guard lock(order_);
    ++queued_;
    worker_.post([this, op, work = std::move(work)] {
      std::exception_ptr error;
      try {
        // Over TCP a blocking call may run on its caller's thread: one at a time.
        std::unique_lock engine(engine_, std::defer_lock);
        if (tcp_engine_) engine.lock();
        work(tcp_engine_ ? static_cast<HostEngine&>(*tcp_engine_) : *async_);
      } catch (...) {
        error = std::current_exception();
      }
      {
        std::lock_guard lock(order_);
        --queued_;
      }
      op->finish(error);
    });
    return op;
  }

 private:

  static std::string choose_backend(const CommunicatorOptions& options) {
    const char* env_backend = std::getenv("COHORT_COLLECTIVES_BACKEND");
    std::string backend = options.backend ? *options.backend : (env_backend && *env_backend ? env_backend : "auto");
    if (backend != "auto" && backend != "mpi" && backend != "nccl") {
      throw input_error("backend '" + backend + "' (COHORT_COLLECTIVES_BACKEND): unknown backend "
                        "(use auto, mpi or nccl)");
    }
    return backend;
  }

#if COHORT_HAVE_NCCL
  // `node_rank`: this rank's place among the ranks on its node, where MPI tells it (-1
  // where not), for launchers that export none of the names below.
  void choose_device(const CommunicatorOptions& options, int node_rank) {
    devices_ = cuda_device_count();
    device_ = options.device;
    if (device_ < 0 && devices_ > 0) {
      // The launch contract's name first, then the launchers' own (Slurm, Open MPI, MPICH
      // and Intel MPI).
      long long local = -1;
      for (const char* name : {"LOCAL_RANK", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"}) {
        if (local < 0) local = env_integer(name).value_or(-1);
      }
      if (local < 0) local = std::max(node_rank, 0);
      device_ = static_cast<int>(local % devices_);
    }
    // The CUDA runtime's context goes to the current device: make it this rank's, or every
    // rank of a node would create one on device 0 with its first CUDA call.
    if (devices_ > 0) make_current(device_);
  }
  static int rank_on_node(MPI_Comm comm) {
    MPI_Comm node = MPI_COMM_NULL;
    check_mpi(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
    int rank = 0;
    MPI_Comm_rank(node, &rank);
    MPI_Comm_free(&node);
    return rank;
  }
#endif

  int rank_ = 0;
  int size_ = 1;
  bool overlaps_ = false;
  std::string backend_;
  MpiSettings settings_;
  std::unique_ptr<MpiEngine> sync_;
  std::unique_ptr<MpiEngine> async_;
  std::unique_ptr<TcpEngine> tcp_engine_;  // ranks without MPI: through a directory, or over TCP
  bool met_over_tcp_ = false;               // at MASTER_ADDR:MASTER_PORT, not through a directory
#if COHORT_HAVE_NCCL
  int devices_ = 0;
  int device_ = 0;
  bool every_rank_has_device_ = false;
  std::unique_ptr<NcclEngine> nccl_;
#endif
  std::mutex order_;        // guards queued_
  std::size_t queued_ = 0;  // operations submitted and not yet finished
  std::mutex engine_;       // over TCP: held by whichever thread runs an operation
  SerialWorker worker_;     // the progress thread of non-blocking operations
};

}  // namespace detail

// ---- Request --------------------------------------------------------------------------

Request& Request::operator=(Request&& other) noexcept {
  if (this != &other) {
    if (op_) {
      try {
        op_->wait();
      } catch (const std::exception& e) {
        detail::warn(std::string("a replaced request failed: ") + e.what());
      }
    }
    op_ = std::move(other.op_);
  }
  return *this;
}

Request::~Request() {
  if (!op_) return;
  try {
    op_->wait();
  } catch (const std::exception& e) {
    detail::warn(std::string("a request destroyed without wait() failed: ") + e.what());
  }
}

void Request::wait() {
  if (!op_) return;
  auto op = std::move(op_);
  op->wait();
}

bool Request::test() {
  if (!op_) return true;
  return op_->test();
}

// ---- Communicator ---------------------------------------------------------------------

Communicator::Communicator(std::unique_ptr<detail::CommunicatorImpl> impl) : impl_(std::move(impl)) {}
Communicator::Communicator(Communicator&&) noexcept = default;
Communicator& Communicator::operator=(Communicator&&) noexcept = default;
Communicator::~Communicator() = default;

Communicator Communicator::from_directory(int rank, int size, PeerDirectory& directory,
                                          const CommunicatorOptions& options) {
  return Communicator(std::make_unique<detail::CommunicatorImpl>(rank, size, directory, options));
}

Communicator Communicator::from_mpi(MPI_Comm comm, const CommunicatorOptions& options) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    throw Error("Communicator::from_mpi: MPI is not initialised: call MPI_Init_thread first, "
                "or use Communicator::from_environment");
  }
  return Communicator(std::make_unique<detail::CommunicatorImpl>(comm, options));
}

namespace detail {
namespace {

// RANK and WORLD_SIZE of the launch contract, checked; nothing when neither is set.
// How the ranks find each other: "mpi" or "tcp" (MASTER_ADDR:MASTER_PORT, no MPI).
std::string choose_bootstrap(const CommunicatorOptions& options) {
  const char* env = std::getenv("COHORT_COLLECTIVES_BOOTSTRAP");
  const std::string chosen = options.bootstrap ? *options.bootstrap : (env && *env ? env : "auto");
  if (chosen == "mpi" || chosen == "tcp") return chosen;
  if (chosen != "auto") {
    throw input_error("bootstrap '" + chosen + "' (COHORT_COLLECTIVES_BOOTSTRAP): unknown bootstrap "
                      "(use auto, mpi or tcp)");
  }
  if (mpi_launched()) return "mpi";
  // Started as torchrun starts ranks: only the contract knows them.
  const auto ranks = contract_ranks();
  const char* master = std::getenv("MASTER_ADDR");
  if (ranks && ranks->second > 1 && master && *master) return "tcp";
  return "mpi";
}

}  // namespace
}  // namespace detail

void initialize_mpi() { detail::ensure_mpi(); }

bool mpi_launched() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  return initialized || started_by_mpi_launcher();
}

Communicator Communicator::from_environment(const CommunicatorOptions& options) {
  if (detail::choose_bootstrap(options) == "tcp") {
    const auto ranks = cohort::contract_ranks();
    if (!ranks) {
      throw input_error("COHORT_COLLECTIVES_BOOTSTRAP=tcp: RANK and WORLD_SIZE are not set: the ranks meet "
                        "at MASTER_ADDR:MASTER_PORT as the launch contract numbers them (cohort launch sets "
                        "all four)");
    }
    const auto rendezvous = detail::rendezvous_from_environment(ranks->first, ranks->second);
    return Communicator(std::make_unique<detail::CommunicatorImpl>(rendezvous, options));
  }
  detail::ensure_mpi();
  int world_size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  const auto ranks = cohort::contract_ranks();
  if (!ranks) return from_mpi(MPI_COMM_WORLD, options);
  const auto [rank, size] = *ranks;
  if (size != world_size) {
    throw input_error("WORLD_SIZE=" + std::to_string(size) + " but MPI started " +
                      std::to_string(world_size) +
                      " processes: start every rank under one launch (srun --mpi=pmix, "
                      "mpirun -n " + std::to_string(size) + ") or correct WORLD_SIZE");
  }
  // Order the ranks by RANK, then check that no two processes claimed the same one.
  MPI_Comm ordered = MPI_COMM_NULL;
  detail::check_mpi(MPI_Comm_split(MPI_COMM_WORLD, 0, rank, &ordered), "MPI_Comm_split");
  int got = 0;
  MPI_Comm_rank(ordered, &got);
  int all_match = got == rank ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &all_match, 1, MPI_INT, MPI_MIN, ordered);
  if (!all_match) {
    MPI_Comm_free(&ordered);
    throw input_error("RANK: two processes have the same RANK (this one has RANK=" +
                      std::to_string(rank) + "): each rank of the launch needs its own");
  }
  try {
    Communicator comm = from_mpi(ordered, options);
    MPI_Comm_free(&ordered);
    return comm;
  } catch (...) {
    MPI_Comm_free(&ordered);
    throw;
  }
}

int Communicator::rank() const { return impl_->rank(); }
int Communicator::size() const { return impl_->size(); }
BackendKind Communicator::device_backend() const { return impl_->device_backend(); }
int Communicator::device() const { return impl_->device(); }
bool Communicator::overlaps() const { return impl_->overlaps(); }
std::size_t Communicator::allreduce_threshold() const { return impl_->threshold(); }
MPI_Comm Communicator::mpi_comm() const { return impl_->comm(); }

namespace {

void require_arguments(const char* what, std::size_t count, DType dtype, const void* a, const void* b) {
  detail::require_collective_dtype(what, dtype);
  if (count > 0 && (!a || !b)) {
    throw input_error(std::string(what) + ": a null buffer with count " + std::to_string(count) +
                      ": pass buffers of at least count elements");
  }
}

void require_root(int root, int size) {
  if (root < 0 || root >= size) {
    throw input_error("broadcast: root " + std::to_string(root) + " is not a rank (ranks are 0.." +
                      std::to_string(size - 1) + ")");
  }
}

void copy_if_apart(const void* send, void* recv, std::size_t bytes) {
  if (send != recv && bytes) std::memmove(recv, send, bytes);
}

}  // namespace

void Communicator::allreduce(const void* send, void* recv, std::size_t count, DType dtype,
                             ReduceOp op) {
  require_arguments("allreduce", count, dtype, send, recv);
#if COHORT_HAVE_NCCL
  if (impl_->use_nccl("allreduce", send, recv)) return impl_->nccl().allreduce(send, recv, count, dtype, op)->wait();
#else
  impl_->use_nccl("allreduce", send, recv);
#endif
  if (size() == 1) return copy_if_apart(send, recv, count * size_of(dtype));
  impl_->run([&](detail::HostEngine& e) { e.allreduce(send, recv, count, dtype, op); });
}

void Communicator::broadcast(void* buffer, std::size_t count, DType dtype, int root) {
  require_arguments("broadcast", count, dtype, buffer, buffer);
  require_root(root, size());
#if COHORT_HAVE_NCCL
  if (impl_->use_nccl("broadcast", buffer, nullptr)) return impl_->nccl().broadcast(buffer, count, dtype, root)->wait();
#else
  impl_->use_nccl("broadcast", buffer, nullptr);
#endif
  if (size() == 1) return;
  impl_->run([&](detail::HostEngine& e) { e.broadcast(buffer, count, dtype, root); });
}

void Communicator::allgather(const void* send, void* recv, std::size_t count, DType dtype) {
  require_arguments("allgather", count, dtype, send, recv);
#if COHORT_HAVE_NCCL
  if (impl_->use_nccl("allgather", send, recv)) return impl_->nccl().allgather(send, recv, count, dtype)->wait();
#else
  impl_->use_nccl("allgather", send, recv);
#endif
  if (size() == 1) return copy_if_apart(send, recv, count * size_of(dtype));
  impl_->run([&](detail::HostEngine& e) { e.allgather(send, recv, count, dtype); });
}

void Communicator::reduce_scatter(const void* send, void* recv, std::size_t count, DType dtype,
                                  ReduceOp op) {
  require_arguments("reduce_scatter", count, dtype, send, recv);
#if COHORT_HAVE_NCCL
  if (impl_->use_nccl("reduce_scatter", send, recv)) {
    return impl_->nccl().reduce_scatter(send, recv, count, dtype, op)->wait();
  }
#else
  impl_->use_nccl("reduce_scatter", send, recv);
#endif
  if (size() == 1) return copy_if_apart(send, recv, count * size_of(dtype));
  impl_->run([&](detail::HostEngine& e) { e.reduce_scatter(send, recv, count, dtype, op); });
}

void Communicator::barrier() { impl_->barrier(true); }

Request Communicator::iallreduce(const void* send, void* recv, std::size_t count, DType dtype,
                                 ReduceOp op) {
  require_arguments("allreduce", count, dtype, send, recv);
#if COHORT_HAVE_NCCL
  if (impl_->use_nccl("allreduce", send, recv)) return Request(impl_->nccl().allreduce(send, recv, count, dtype, op));
#else
  impl_->use_nccl("allreduce", send, recv);
#endif
  if (size() == 1) {
    copy_if_apart(send, recv, count * size_of(dtype));
    return Request();
  }
  return Request(impl_->submit([=](detail::HostEngine& e) { e.allreduce(send, recv, count, dtype, op); }));
}

Request Communicator::ibroadcast(void* buffer, std::size_t count, DType dtype, int root) {
  require_arguments("broadcast", count, dtype, buffer, buffer);
  require_root(root, size());
#if COHORT_HAVE_NCCL
  if (impl_->use_nccl("broadcast", buffer, nullptr)) return Request(impl_->nccl().broadcast(buffer, count, dtype, root));
#else
  impl_->use_nccl("broadcast", buffer, nullptr);
#endif
  if (size() == 1) return Request();
  return Request(impl_->submit([=](detail::HostEngine& e) { e.broadcast(buffer, count, dtype, root); }));
}

Request Communicator::iallgather(const void* send, void* recv, std::size_t count, DType dtype) {
  require_arguments("allgather", count, dtype, send, recv);
#if COHORT_HAVE_NCCL
  if (impl_->use_nccl("allgather", send, recv)) return Request(impl_->nccl().allgather(send, recv, count, dtype));
#else
  impl_->use_nccl("allgather", send, recv);
#endif
  if (size() == 1) {
    copy_if_apart(send, recv, count * size_of(dtype));
    return Request();
  }
  return Request(impl_->submit([=](detail::HostEngine& e) { e.allgather(send, recv, count, dtype); }));
}

Request Communicator::ireduce_scatter(const void* send, void* recv, std::size_t count,
                                      DType dtype, ReduceOp op) {
  require_arguments("reduce_scatter", count, dtype, send, recv);
#if COHORT_HAVE_NCCL
  if (impl_->use_nccl("reduce_scatter", send, recv)) {
    return Request(impl_->nccl().reduce_scatter(send, recv, count, dtype, op));
  }
#else
  impl_->use_nccl("reduce_scatter", send, recv);
#endif
  if (size() == 1) {
    copy_if_apart(send, recv, count * size_of(dtype));
    return Request();
  }
  return Request(impl_->submit([=](detail::HostEngine& e) { e.reduce_scatter(send, recv, count, dtype, op); }));
}

Request Communicator::ibarrier() { return Request(impl_->barrier(false)); }

}  // namespace cohort::collectives
