#include "collectives/bench.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "collectives/bucketing.hpp"
#include "collectives/communicator.hpp"
#include "collectives/dtype.hpp"
#include "collectives/mpi_backend.hpp"
#include "collectives/reference.hpp"
#include "collectives/resnet50.hpp"
#include "common/bench.hpp"
#include "common/error.hpp"
#include "common/options.hpp"
#if COHORT_HAVE_NCCL
#include "collectives/nccl_backend.hpp"
#endif

namespace cohort::collectives {
namespace {

namespace po = options::po;

// One call's buffers and arguments, as every operation of the table reads them.
struct Call {
  void* in;
  void* out;
  std::size_t count;  // as the operation counts it: per rank for allgather and reduce_scatter
  DType dtype;
  ReduceOp redop;
  int rank;
  int ranks;
  MPI_Comm comm;

  int mpi_count() const { return static_cast<int>(count); }
  MPI_Datatype mpi_type() const { return detail::mpi_type(dtype); }
  MPI_Op mpi_op() const { return detail::mpi_op(dtype, redop); }
};

// Wrong elements among `blocks` blocks of k.count, block r holding what rank r put in.
long long differing(const Call& k, const std::byte* got, int blocks) {
  const std::size_t elem = size_of(k.dtype);
  long long wrong = 0;
  for (int r = 0; r < blocks; ++r) {
    const auto want = detail::filled(r, k.count, k.dtype, ReduceOp::sum);
    const std::byte* block = got + static_cast<std::size_t>(r) * k.count * elem;
    for (std::size_t i = 0; i < k.count; ++i) wrong += std::memcmp(block + i * elem, want.data() + i * elem, elem) != 0;
  }
  return wrong;
}

#if COHORT_HAVE_NCCL
using PlainNccl = detail::PlainNccl;
#else
// Without NCCL there are no device buffers, and so no plain NCCL to time: a stand-in, never
// made, that lets one table of operations serve both builds.
struct PlainNccl {
  PlainNccl(MPI_Comm, int) { throw Error("this cohort was built without NCCL"); }
  template <class... Args> void allreduce(Args&&...) {}
  template <class... Args> void allgather(Args&&...) {}
  template <class... Args> void reduce_scatter(Args&&...) {}
  template <class... Args> void broadcast(Args&&...) {}
  void synchronize() {}
};
#endif

// Each blocking call as cohort's communicator and plain NCCL both spell it.
template <class T> void allreduce_on(T& t, const Call& k) { t.allreduce(k.in, k.out, k.count, k.dtype, k.redop); }
template <class T> void allgather_on(T& t, const Call& k) { t.allgather(k.in, k.out, k.count, k.dtype); }
template <class T> void reduce_scatter_on(T& t, const Call& k) { t.reduce_scatter(k.in, k.out, k.count, k.dtype, k.redop); }
template <class T> void broadcast_on(T& t, const Call& k) { t.broadcast(k.out, k.count, k.dtype, 0); }

// Wrong elements of a reduction's k.count results, the first of which is element `first`.
long long reduced_wrong(const Call& k, const std::byte* got, std::size_t first) {
  return static_cast<long long>(detail::count_wrong(got, k.count, k.ranks, k.dtype, k.redop, first));
}

// One collective as the benchmark runs it, as nccl-tests' struct testColl: how nccl-tests'
// size maps to its counts, cohort's call (blocking on host buffers, non-blocking on device
// buffers, where calls queue back to back), the plain MPI and NCCL calls that are the
// baseline, the check of its result, and its bus bandwidth factor. One loop runs them all.
struct Collective {
  const char* name;
  bool reduces;   // takes --redop; the others are checked against a sum's inputs
  bool gathers;   // the output holds every rank's block: count × ranks (nccl-tests' size)
  bool scatters;  // the input holds every rank's block: count × ranks (nccl-tests' size)
  bool in_place;  // the input is the output buffer: broadcast from rank 0
  double (*bus_factor)(int ranks);
  void (*call)(Communicator&, const Call&);
  Request (*start)(Communicator&, const Call&);
  void (*mpi)(const Call&);
  void (*nccl)(PlainNccl&, const Call&);
  long long (*check)(const Call&, const std::byte* out);
};

constexpr Collective kCollectives[] = {
    {"allreduce", true, false, false, false, [](int n) { return 2.0 * (n - 1) / n; }, &allreduce_on<Communicator>,
     [](Communicator& c, const Call& k) { return c.iallreduce(k.in, k.out, k.count, k.dtype, k.redop); },
     [](const Call& k) { MPI_Allreduce(k.in, k.out, k.mpi_count(), k.mpi_type(), k.mpi_op(), k.comm); },
     &allreduce_on<PlainNccl>, [](const Call& k, const std::byte* got) { return reduced_wrong(k, got, 0); }},
    {"allgather", false, true, false, false, [](int n) { return static_cast<double>(n - 1) / n; },
     &allgather_on<Communicator>,
     [](Communicator& c, const Call& k) { return c.iallgather(k.in, k.out, k.count, k.dtype); },
     [](const Call& k) {
       MPI_Allgather(k.in, k.mpi_count(), k.mpi_type(), k.out, k.mpi_count(), k.mpi_type(), k.comm);
     },
     &allgather_on<PlainNccl>, [](const Call& k, const std::byte* got) { return differing(k, got, k.ranks); }},
    {"reduce_scatter", true, false, true, false, [](int n) { return static_cast<double>(n - 1) / n; },
     &reduce_scatter_on<Communicator>,
     [](Communicator& c, const Call& k) { return c.ireduce_scatter(k.in, k.out, k.count, k.dtype, k.redop); },
     [](const Call& k) { MPI_Reduce_scatter_block(k.in, k.out, k.mpi_count(), k.mpi_type(), k.mpi_op(), k.comm); },
     &reduce_scatter_on<PlainNccl>,
     [](const Call& k, const std::byte* got) { return reduced_wrong(k, got, k.count * static_cast<std::size_t>(k.rank)); }},
    {"broadcast", false, false, false, true, [](int) { return 1.0; }, &broadcast_on<Communicator>,
     [](Communicator& c, const Call& k) { return c.ibroadcast(k.out, k.count, k.dtype, 0); },
     [](const Call& k) { MPI_Bcast(k.out, k.mpi_count(), k.mpi_type(), 0, k.comm); }, &broadcast_on<PlainNccl>,
     [](const Call& k, const std::byte* got) { return differing(k, got, 1); }},
};

struct Settings {
  const Collective* op = &kCollectives[0];
  DType dtype = DType::float32;
  ReduceOp redop = ReduceOp::sum;
  std::size_t min_bytes = 8;
  std::size_t max_bytes = 64u << 20;
  int iters = 20;
  int warmup = 5;
  int rounds = 3;
  std::string baseline;  // "mpi" (host buffers), "nccl" (device buffers), or none
  bool json = false;
  std::string grads;
  std::size_t bucket_bytes = 25u << 20;
};

// Buffers for one direction: host memory, or device memory for the NCCL backend.
class Buffer {
 public:
  Buffer(std::size_t bytes, int device) {
#if COHORT_HAVE_NCCL
    if (device >= 0) {
      device_ = std::make_unique<detail::DeviceBuffer>(bytes, device);
      return;
    }
#else
    (void)device;
#endif
    host_.assign(bytes + 1, std::byte{0});  // touched now: no page faults while timing
  }
  void* data() {
#if COHORT_HAVE_NCCL
    if (device_) return device_->data();
#endif
    return host_.data();
  }
  void upload(const std::vector<std::byte>& from, std::size_t bytes) {
#if COHORT_HAVE_NCCL
    if (device_) return device_->upload(from.data(), bytes);
#endif
    std::memcpy(host_.data(), from.data(), bytes);
  }
  std::vector<std::byte> download(std::size_t bytes) {
    std::vector<std::byte> out(bytes + 1);
#if COHORT_HAVE_NCCL
    if (device_) {
      device_->download(out.data(), bytes);
      return out;
    }
#endif
    std::memcpy(out.data(), host_.data(), bytes);
    return out;
  }

 private:
  std::vector<std::byte> host_;
#if COHORT_HAVE_NCCL
  std::unique_ptr<detail::DeviceBuffer> device_;
#endif
};

// Mean time of one call over `iters` calls, the slowest rank's, in microseconds.
// `finish` waits for calls that return no request (the plain NCCL baseline's stream).
template <class Start>
double time_us(Communicator& comm, const Settings& s, Start&& call, const std::function<void()>& finish = {}) {
  std::vector<Request> pending;
  for (int i = 0; i < s.warmup; ++i) pending.push_back(call());
  for (auto& r : pending) r.wait();
  if (finish) finish();
  pending.clear();
  comm.barrier();
  // Device operations are queued back to back and waited for at the end, as nccl-tests does.
  double us = bench::seconds([&] {
                for (int i = 0; i < s.iters; ++i) pending.push_back(call());
                for (auto& r : pending) r.wait();
                if (finish) finish();
              }) *
              1e6 / s.iters;
  MPI_Allreduce(MPI_IN_PLACE, &us, 1, MPI_DOUBLE, MPI_MAX, comm.mpi_comm());
  return us;
}

// One core copying `bytes` (at least 1 MiB), in GB/s: the limit line.
double memcpy_gbps(std::size_t bytes) {
  std::vector<std::byte> a(bytes, std::byte{1}), b(bytes, std::byte{2});
  for (int i = 0; i < 2; ++i) std::memcpy(b.data(), a.data(), bytes);
  const int iters = 10;
  const double seconds = bench::seconds([&] {
    for (int i = 0; i < iters; ++i) std::memcpy(i % 2 ? a.data() : b.data(), i % 2 ? b.data() : a.data(), bytes);
  });
  return static_cast<double>(bytes) * iters / seconds / 1e9;
}

// nccl-tests' sweep of one operation over the sizes: each size timed in rounds that
// alternate with the baseline, then checked on fresh inputs; one row a size.
class Sweep {
 public:
  Sweep(Communicator& comm, const Settings& s);
  int run();

 private:
  void add_row(std::size_t size);
  long long check(const Call& k);
  Call call_for(std::size_t count) {
    return {send_.data(), recv_.data(), count, s_.dtype, s_.redop, comm_.rank(), comm_.size(), comm_.mpi_comm()};
  }
  Request cohort(const Call& k) {
    if (device_ >= 0) return op_.start(comm_, k);
    op_.call(comm_, k);
    return {};
  }
  Request plain(const Call& k);
  void finish_plain() {
    if (plain_nccl_) plain_nccl_->synchronize();
  }

  Communicator& comm_;
  const Settings& s_;
  const Collective& op_;
  int device_;  // the CUDA device whose buffers are timed; -1 for host buffers
  Buffer send_, recv_;
  long long wrong_ = 0;
  double busbw_sum_ = 0;
  // NCCL's own calls on a communicator and stream of their own, with nothing of cohort's
  // around them: what nccl-tests would time on this machine.
  std::unique_ptr<PlainNccl> plain_nccl_;
  bench::Report report_{"collectives"};
  bench::Table* table_ = nullptr;
};

// The CUDA device whose buffers are timed, or -1 for host buffers; the baseline must time
// the same kind.
int device_of(Communicator& comm, const Settings& s) {
  const int device = comm.device() >= 0 && comm.device_backend() == BackendKind::nccl ? comm.device() : -1;
  if (!s.baseline.empty() && (device >= 0) != (s.baseline == "nccl")) {
    throw input_error(device >= 0 ? "--baseline mpi times host buffers and the nccl backend uses device buffers: "
                                    "use --baseline nccl, or --backend mpi"
                                  : "--baseline nccl times device buffers and this run uses host buffers (backend "
                                    "mpi, or no CUDA device): use --baseline mpi, or --backend nccl on a GPU");
  }
  return device;
}

Sweep::Sweep(Communicator& comm, const Settings& s)
    : comm_(comm), s_(s), op_(*s.op), device_(device_of(comm, s)), send_(s.max_bytes, device_), recv_(s.max_bytes, device_) {
  if (s.baseline == "nccl") plain_nccl_ = std::make_unique<PlainNccl>(comm.mpi_comm(), device_);
}

Request Sweep::plain(const Call& k) {
  if (plain_nccl_) {
    op_.nccl(*plain_nccl_, k);
    return {};
  }
  op_.mpi(k);
  // MPI has no average: the sum, divided, as cohort's MPI backend does.
  if (op_.reduces && k.redop == ReduceOp::avg) detail::divide(k.out, k.count, k.dtype, k.ranks);
  return {};
}

// One more call on fresh inputs, checked against the reference; wrong elements of all ranks.
long long Sweep::check(const Call& k) {
  const std::size_t elem = size_of(k.dtype);
  const std::size_t in_count = op_.scatters ? k.count * static_cast<std::size_t>(k.ranks) : k.count;
  const std::size_t out_count = op_.gathers ? k.count * static_cast<std::size_t>(k.ranks) : k.count;
  (op_.in_place ? recv_ : send_).upload(detail::filled(k.rank, in_count, k.dtype, op_.reduces ? k.redop : ReduceOp::sum),
                                        in_count * elem);
  cohort(k).wait();
  long long wrong = op_.check(k, recv_.download(out_count * elem).data());
  MPI_Allreduce(MPI_IN_PLACE, &wrong, 1, MPI_LONG_LONG, MPI_SUM, comm_.mpi_comm());
  return wrong;
}

void Sweep::add_row(std::size_t size) {
  const int n = comm_.size();
  const std::size_t count = size / size_of(s_.dtype) / (op_.gathers || op_.scatters ? static_cast<std::size_t>(n) : 1);
  const Call k = call_for(count);
  // Rounds of cohort and of the baseline alternate, so that a burst of other load on the
  // machine hits both alike; each keeps its best round.
  std::vector<std::function<double()>> measures{[&] { return time_us(comm_, s_, [&] { return cohort(k); }); }};
  if (!s_.baseline.empty()) {
    measures.push_back([&] { return time_us(comm_, s_, [&] { return plain(k); }, [&] { finish_plain(); }); });
  }
  const auto times = bench::alternate({0, s_.rounds}, measures);
  const double time = times[0].min;
  const double algbw = time > 0 ? static_cast<double>(size) / time / 1e3 : 0;
  const double busbw = algbw * op_.bus_factor(n);
  const long long wrong = check(k);
  wrong_ += wrong;
  busbw_sum_ += busbw;
  std::vector<json::Value> row{size, count, std::string(detail::nccl_tests_name(s_.dtype)),
                               op_.reduces ? std::string(to_string(s_.redop)) : "none", time, algbw, busbw, wrong};
  if (!s_.baseline.empty()) {
    row.push_back(times[1].min);
    row.push_back(bench::number(times[1].min / time));
  }
  table_->add(std::move(row));
}

int Sweep::run() {
  const int rank = comm_.rank();
  // One core copying while the other ranks wait: the machine's memcpy, not a share of it.
  const std::size_t memcpy_bytes = std::max<std::size_t>(std::min<std::size_t>(s_.max_bytes, 256u << 20), 1u << 20);
  double memcpy_bw = 0;
  comm_.barrier();
  if (rank == 0) memcpy_bw = memcpy_gbps(memcpy_bytes);
  MPI_Bcast(&memcpy_bw, 1, MPI_DOUBLE, 0, comm_.mpi_comm());

  report_.context("op", op_.name);
  report_.context("ranks", comm_.size());
  report_.context("backend", std::string(to_string(device_ >= 0 ? BackendKind::nccl : BackendKind::mpi)));
  if (device_ < 0) {
    const std::size_t from = comm_.allreduce_threshold();  // SIZE_MAX: never
    report_.context("allreduce_from_bytes", from == SIZE_MAX ? json::Value() : json::Value(from));
  }
  report_.context("iters", s_.iters);
  report_.context("warmup", s_.warmup);
  report_.context("rounds", s_.rounds);
  report_.context("baseline", s_.baseline.empty() ? json::Value() : json::Value(s_.baseline));
  if (rank == 0 && !s_.json) report_.stream(std::cout);
  std::vector<bench::Column> columns{{.name = "size", .unit = "B", .width = 10},
                                     {.name = "count", .unit = "elements", .width = 12},
                                     {.name = "type", .text = true, .width = 8},
                                     {.name = "redop", .text = true, .width = 6},
                                     {.name = "time", .unit = "us", .width = 10},
                                     {.name = "algbw", .unit = "GB/s", .width = 8},
                                     {.name = "busbw", .unit = "GB/s", .width = 8},
                                     {.name = "wrong", .width = 7}};
  if (!s_.baseline.empty()) {
    columns.push_back({.name = "baseline", .unit = "us", .width = 10});
    columns.push_back({.name = "speedup", .width = 8});
  }
  table_ = &report_.table(op_.name, "", columns);
  for (std::size_t size = s_.min_bytes; size <= s_.max_bytes; size *= 2) add_row(size);

  const std::size_t rows = table_->rows().size();
  const double avg_busbw = rows ? busbw_sum_ / static_cast<double>(rows) : 0.0;
  report_.figure({"wrong", "Out of bounds values", wrong_, "", 0, wrong_ ? "FAILED" : "OK"});
  report_.figure({"avg_busbw_GBps", "Avg bus bandwidth", avg_busbw, "GB/s", 3});
  report_.figure({"memcpy_GBps", "memcpy bandwidth", memcpy_bw, "GB/s", 3,
                  "(the limit line: one core copying " + std::to_string(memcpy_bytes) + " B)"});
  if (rank == 0) report_.print(std::cout, s_.json);
  return wrong_ ? 1 : 0;
}

// ResNet-50's gradients, last layer first as backpropagation produces them: one
// MPI_Allreduce per tensor against cohort's buckets, copied in or living in them.
class Gradients {
 public:
  Gradients(Communicator& comm, const Settings& s);
  int run();

 private:
  void fill();
  long long check();
  void per_tensor();
  void bucketed();
  void in_views();

  Communicator& comm_;
  const Settings& s_;
  std::vector<std::vector<float>> grads_;
  std::size_t parameters_ = 0;
  GradientBuckets buckets_, views_;
  std::vector<std::size_t> ids_, view_ids_;
};

BucketOptions bucket_options(std::size_t bytes) {
  BucketOptions options;
  options.bucket_bytes = bytes;
  return options;
}

Gradients::Gradients(Communicator& comm, const Settings& s)
    : comm_(comm), s_(s), buckets_(comm, bucket_options(s.bucket_bytes)), views_(comm, bucket_options(s.bucket_bytes)) {
  if (s.grads != "resnet50") throw input_error("--grads " + s.grads + ": unknown gradient list (use resnet50)");
  for (const auto& p : detail::resnet50_parameters()) {
    grads_.emplace_back(p.count(), 0.0f);
    parameters_ += p.count();
  }
  ids_.resize(grads_.size());
  view_ids_.resize(grads_.size());
  for (std::size_t k = grads_.size(); k-- > 0;) {
    ids_[k] = buckets_.add(grads_[k].data(), grads_[k].size(), DType::float32);
    // The same gradients living in their buckets (DDP's gradient_as_bucket_view): no copies.
    view_ids_[k] = views_.add_view(grads_[k].size(), DType::float32);
  }
}

void Gradients::fill() {
  std::size_t base = 0;
  for (auto& g : grads_) {
    for (std::size_t i = 0; i < g.size(); ++i) {
      g[i] = static_cast<float>(detail::input_value(comm_.rank(), base + i, DType::float32, ReduceOp::sum));
    }
    base += g.size();
  }
}

long long Gradients::check() {
  long long wrong = 0;
  std::size_t base = 0;
  for (auto& g : grads_) {
    wrong += static_cast<long long>(detail::count_wrong(g.data(), g.size(), comm_.size(), DType::float32,
                                                        ReduceOp::sum, base));
    base += g.size();
  }
  MPI_Allreduce(MPI_IN_PLACE, &wrong, 1, MPI_LONG_LONG, MPI_SUM, comm_.mpi_comm());
  return wrong;
}

void Gradients::per_tensor() {
  for (std::size_t k = grads_.size(); k-- > 0;) {
    MPI_Allreduce(MPI_IN_PLACE, grads_[k].data(), static_cast<int>(grads_[k].size()), MPI_FLOAT, MPI_SUM,
                  comm_.mpi_comm());
  }
}

void Gradients::bucketed() {
  for (std::size_t k = grads_.size(); k-- > 0;) buckets_.mark_ready(ids_[k]);
  buckets_.wait();
}

void Gradients::in_views() {
  for (std::size_t k = grads_.size(); k-- > 0;) views_.mark_ready(view_ids_[k]);
  views_.wait();
}

int Gradients::run() {
  fill();
  per_tensor();
  long long wrong = check();
  fill();
  bucketed();
  wrong += check();
  fill();
  for (std::size_t k = 0; k < grads_.size(); ++k) {
    std::memcpy(views_.data(view_ids_[k]), grads_[k].data(), grads_[k].size() * sizeof(float));
  }
  in_views();
  for (std::size_t k = 0; k < grads_.size(); ++k) {
    std::memcpy(grads_[k].data(), views_.data(view_ids_[k]), grads_[k].size() * sizeof(float));
  }
  wrong += check();
  auto timed = [&](void (Gradients::*step)()) {
    return [this, step] { return time_us(comm_, s_, [&]() -> Request { (this->*step)(); return {}; }); };
  };
  const auto times = bench::alternate(
      {0, s_.rounds}, {timed(&Gradients::per_tensor), timed(&Gradients::bucketed), timed(&Gradients::in_views)});
  const double base_ms = times[0].min / 1e3;

  bench::Report report("collectives");
  report.context("grads", s_.grads);
  report.context("tensors", grads_.size());
  report.context("parameters", parameters_);
  report.context("type", std::string(detail::nccl_tests_name(DType::float32)));
  report.context("ranks", comm_.size());
  report.context("bucket_bytes", s_.bucket_bytes);
  report.context("buckets", buckets_.bucket_count());
  report.context("iters", s_.iters);
  report.context("rounds", s_.rounds);
  auto& table = report.table("grads", "gradient allreduce, one step",
                             {{.name = "method", .text = true}, {.name = "time", .unit = "ms"}, {.name = "speedup"}});
  const std::string buckets = std::to_string(buckets_.bucket_count()) + " buckets of <= " +
                              std::to_string(s_.bucket_bytes >> 20) + " MiB";
  table.add({"one MPI_Allreduce per tensor", base_ms, 1.0});
  table.add({buckets, times[1].min / 1e3, bench::number(times[0].min / times[1].min)});
  table.add({"the same, gradients as bucket views", times[2].min / 1e3, bench::number(times[0].min / times[2].min)});
  report.figure({"wrong", "Out of bounds values", wrong, "", 0, wrong ? "FAILED" : "OK"});
  if (comm_.rank() == 0) report.print(std::cout, s_.json);
  return wrong ? 1 : 0;
}

options::Help help() {
  return {"bench collectives",
          {"[options]     (run under mpirun or srun; rank 0 prints)"},
          "Times cohort's collectives in nccl-tests' format, checks every result (wrong), and with\n"
          "--baseline mpi (host buffers) or --baseline nccl (device buffers) times the plain MPI or NCCL\n"
          "call on the same buffers in the same run.",
          {"mpirun -n 2 cohort bench collectives --sizes 8:64M --baseline mpi",
           "mpirun -n 2 cohort bench collectives --op allgather --dtype bf16 --json",
           "mpirun -n 2 cohort bench collectives --grads resnet50",
           "cohort bench collectives --backend nccl --sizes 8:1G     (device buffers, one GPU)",
           "mpirun -n 8 cohort bench collectives --backend nccl --sizes 8:1G --baseline nccl"}};
}

// The options' text as given, checked and read into Settings and the communicator's options.
struct Given {
  std::string op = "allreduce", dtype = "float", redop = "sum", sizes = "8:64M", baseline, backend = "auto",
              algorithm = "auto", bucket = "25M", iters = "20", warmup = "5", rounds = "3";
};

options::Parser make_parser(Given& g, Settings& s) {
  options::Parser parser(help());
  parser.add()("op", po::value(&g.op)->value_name("OP"), "allreduce | allgather | reduce_scatter | broadcast (allreduce)")(
      "dtype", po::value(&g.dtype)->value_name("TYPE"), "f32 | f64 | f16 | bf16 | int32 | int64 | uint8 (f32)")(
      "redop", po::value(&g.redop)->value_name("OP"), "sum | avg | min | max | prod (sum)")(
      "sizes", po::value(&g.sizes)->value_name("MIN:MAX"), "bytes, doubling, with K, M, G (8:64M)")(
      "iters", po::value(&g.iters)->value_name("N"), "timed calls per size (20)")(
      "warmup", po::value(&g.warmup)->value_name("N"), "untimed calls per size before them (5)")(
      "rounds", po::value(&g.rounds)->value_name("N"), "rounds of --iters, alternating with the baseline; best kept (3)")(
      "baseline", po::value(&g.baseline)->value_name("NAME"),
      "mpi or nccl: also time the plain MPI or NCCL call on the same buffers")(
      "backend", po::value(&g.backend)->value_name("NAME"), "auto | mpi | nccl; nccl times device buffers (auto)")(
      "algorithm", po::value(&g.algorithm)->value_name("NAME"), "host allreduce: auto | mpi | node | ring (auto)")(
      "grads", po::value(&s.grads)->value_name("MODEL"), "resnet50: bucketed against per-tensor gradient allreduce")(
      "bucket-bytes", po::value(&g.bucket)->value_name("N"), "bucket size for --grads (25M)")(
      "json", po::bool_switch(&s.json), "print one JSON object instead of the table");
  return parser;
}

const Collective& collective(const std::string& name) {
  for (const auto& c : kCollectives) {
    if (name == c.name) return c;
  }
  throw input_error("--op " + name + ": unknown operation (use allreduce, allgather, reduce_scatter or broadcast)");
}

void read(const Given& g, Settings& s) {
  s.iters = static_cast<int>(options::whole_number("--iters", g.iters, 1, 1000000));
  s.warmup = static_cast<int>(options::whole_number("--warmup", g.warmup, 0, 1000000));
  s.rounds = static_cast<int>(options::whole_number("--rounds", g.rounds, 1, 1000));
  s.op = &collective(g.op);
  s.dtype = parse_dtype(g.dtype, collective_dtypes());
  s.redop = parse_op(g.redop);
  const auto colon = g.sizes.find(':');
  s.min_bytes = options::byte_size("--sizes", g.sizes.substr(0, colon));
  s.max_bytes = colon == std::string::npos ? s.min_bytes : options::byte_size("--sizes", g.sizes.substr(colon + 1));
  if (s.min_bytes == 0 || s.max_bytes < s.min_bytes) {
    throw input_error("--sizes " + g.sizes + ": need 0 < MIN <= MAX (for example 8:64M)");
  }
  if (!g.baseline.empty() && g.baseline != "mpi" && g.baseline != "nccl") {
    throw input_error("--baseline " + g.baseline + ": unknown baseline (use mpi for host buffers, nccl for device ones)");
  }
  s.baseline = g.baseline;
  s.bucket_bytes = options::byte_size("--bucket-bytes", g.bucket, 1);
}

AllreduceAlgorithm algorithm(const std::string& name) {
  constexpr std::pair<std::string_view, AllreduceAlgorithm> kAlgorithms[] = {
      {"auto", AllreduceAlgorithm::automatic},
      {"mpi", AllreduceAlgorithm::mpi},
      {"node", AllreduceAlgorithm::node},
      {"ring", AllreduceAlgorithm::ring}};
  for (const auto& [text, value] : kAlgorithms) {
    if (name == text) return value;
  }
  throw input_error("--algorithm " + name + ": unknown algorithm (use auto, mpi, node or ring)");
}

}  // namespace

int bench_command(const std::vector<std::string>& args) {
  Given given;
  Settings s;
  if (!make_parser(given, s).parse(args)) return 0;
  read(given, s);
  CommunicatorOptions options;
  options.backend = given.backend;
  // The benchmark times MPI beside cohort and gathers its figures over MPI.
  options.bootstrap = "mpi";
  options.algorithm = algorithm(given.algorithm);
  Communicator comm = Communicator::from_environment(options);
  if (!s.grads.empty()) return Gradients(comm, s).run();
  return Sweep(comm, s).run();
}

}  // namespace cohort::collectives
