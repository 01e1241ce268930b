#include "collectives/bench.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "collectives/bucketing.hpp"
#include "collectives/communicator.hpp"
#include "collectives/dtype.hpp"
#include "collectives/mpi_backend.hpp"
#include "collectives/reference.hpp"
#include "collectives/resnet50.hpp"
#include "common/error.hpp"
#include "common/text.hpp"
#if COHORT_HAVE_NCCL
#include "collectives/nccl_backend.hpp"
#endif

namespace cohort {
namespace {

constexpr const char* kUsage =
    "usage: cohort bench collectives [options]     (run under mpirun or srun; rank 0 prints)\n\n"
    "Times cohort's collectives in nccl-tests' format, checks every result (#wrong), and with\n"
    "--baseline mpi (host buffers) or --baseline nccl (device buffers) times the plain MPI or NCCL\n"
    "call on the same buffers in the same run.\n\n";

constexpr const char* kExample =
    "\nexamples:\n"
    "  mpirun -n 2 cohort bench collectives --sizes 8:64M --baseline mpi\n"
    "  mpirun -n 2 cohort bench collectives --op allgather --dtype bf16 --json\n"
    "  mpirun -n 2 cohort bench collectives --grads resnet50\n"
    "  cohort bench collectives --backend nccl --sizes 8:1G     (device buffers, one GPU)\n"
    "  mpirun -n 8 cohort bench collectives --backend nccl --sizes 8:1G --baseline nccl\n";

enum class Op { allreduce, allgather, reduce_scatter, broadcast };

struct Settings {
  Op op = Op::allreduce;
  std::string op_name = "allreduce";
  DType dtype = DType::float32;
  ReduceOp redop = ReduceOp::sum;
  std::size_t min_bytes = 8;
  std::size_t max_bytes = 64u << 20;
  int iters = 20;
  int warmup = 5;
  int rounds = 3;
  bool baseline = false;  // time the plain call too: MPI's on host buffers, NCCL's on device ones
  std::string baseline_name;  // "mpi" or "nccl"
  bool json = false;
  std::string grads;
  std::size_t bucket_bytes = 25u << 20;
};

std::size_t parse_size(const std::string& text) {
  const auto bytes = parse_byte_size(text);
  if (!bytes) throw input_error("--sizes: '" + text + "' is not a size (use bytes with an optional K, M or G: 8, 64K, 1G)");
  return static_cast<std::size_t>(*bytes);
}

// Buffers for one direction: host memory, or device memory for the NCCL backend.
class Buffer {
 public:
  Buffer(std::size_t bytes, int device) : bytes_(bytes) {
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
  std::size_t bytes_;
  std::vector<std::byte> host_;
#if COHORT_HAVE_NCCL
  std::unique_ptr<detail::DeviceBuffer> device_;
#endif
};

struct Row {
  std::size_t size;
  std::size_t count;
  double time_us;
  double algbw;
  double busbw;
  long long wrong;
  std::optional<double> baseline_us;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Mean time of one call over `iters` calls, the slowest rank's, in microseconds.
// `finish` waits for calls that return no request (the plain NCCL baseline's stream).
template <class Call>
double time_us(Communicator& comm, const Settings& s, Call&& call, const std::function<void()>& finish = {}) {
  std::vector<Request> pending;
  for (int i = 0; i < s.warmup; ++i) pending.push_back(call());
  for (auto& r : pending) r.wait();
  if (finish) finish();
  pending.clear();
  comm.barrier();
  const auto t0 = std::chrono::steady_clock::now();
  // Device operations are queued back to back and waited for at the end, as nccl-tests does.
  for (int i = 0; i < s.iters; ++i) pending.push_back(call());
  for (auto& r : pending) r.wait();
  if (finish) finish();
  double us = seconds_since(t0) * 1e6 / s.iters;
  MPI_Allreduce(MPI_IN_PLACE, &us, 1, MPI_DOUBLE, MPI_MAX, comm.mpi_comm());
  return us;
}

double bus_factor(Op op, int n) {
  switch (op) {
    case Op::allreduce: return 2.0 * (n - 1) / n;
    case Op::allgather:
    case Op::reduce_scatter: return static_cast<double>(n - 1) / n;
    case Op::broadcast: return 1.0;
  }
  return 1.0;
}

double memcpy_gbps(std::size_t bytes) {
  bytes = std::max<std::size_t>(bytes, 1u << 20);
  std::vector<std::byte> a(bytes, std::byte{1}), b(bytes, std::byte{2});
  for (int i = 0; i < 2; ++i) std::memcpy(b.data(), a.data(), bytes);
  const int iters = 10;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) {
    std::memcpy(i % 2 ? a.data() : b.data(), i % 2 ? b.data() : a.data(), bytes);
  }
  return static_cast<double>(bytes) * iters / seconds_since(t0) / 1e9;
}

std::string fmt(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

int run_sweep(Communicator& comm, const Settings& s) {
  const int n = comm.size();
  const int rank = comm.rank();
  const DType dt = s.dtype;
  const std::size_t elem = size_of(dt);
  const int device = comm.device() >= 0 && comm.device_backend() == BackendKind::nccl ? comm.device() : -1;
  if (s.baseline && (device >= 0) != (s.baseline_name == "nccl")) {
    throw input_error(device >= 0 ? "--baseline mpi times host buffers and the nccl backend uses device buffers: "
                                    "use --baseline nccl, or --backend mpi"
                                  : "--baseline nccl times device buffers and this run uses host buffers (backend "
                                    "mpi, or no CUDA device): use --baseline mpi, or --backend nccl on a GPU");
  }
#if COHORT_HAVE_NCCL
  // NCCL's own calls on a communicator and stream of their own, with nothing of cohort's
  // around them: what nccl-tests would time on this machine.
  std::unique_ptr<detail::PlainNccl> plain_nccl;
  if (s.baseline && device >= 0) plain_nccl = std::make_unique<detail::PlainNccl>(comm.mpi_comm(), device);
  const std::function<void()> plain_finish = [&] {
    if (plain_nccl) plain_nccl->synchronize();
  };
#else
  const std::function<void()> plain_finish;
#endif
  // nccl-tests' sizes: allgather's is the gathered result, reduce_scatter's the input.
  const bool per_rank_block = s.op == Op::allgather || s.op == Op::reduce_scatter;
  Buffer send(s.max_bytes, device), recv(s.max_bytes, device);

  // One core copying while the other ranks wait: the machine's memcpy, not a share of it.
  double memcpy_bw = 0;
  comm.barrier();
  if (rank == 0) memcpy_bw = memcpy_gbps(std::min<std::size_t>(s.max_bytes, 256u << 20));
  MPI_Bcast(&memcpy_bw, 1, MPI_DOUBLE, 0, comm.mpi_comm());

  std::vector<Row> rows;
  const std::string redop = s.op == Op::allreduce || s.op == Op::reduce_scatter ? std::string(to_string(s.redop)) : "none";
  auto print_header = [&] {
    std::printf("# cohort bench collectives: %s, %d ranks, backend %s%s\n", s.op_name.c_str(), n,
                std::string(to_string(device >= 0 ? BackendKind::nccl : BackendKind::mpi)).c_str(),
                device >= 0 ? "" : (", cohort's allreduce from " + std::to_string(comm.allreduce_threshold()) + " B").c_str());
    std::printf("#\n# %10s %12s %8s %6s %10s %8s %8s %7s", "size", "count", "type", "redop", "time", "algbw",
                "busbw", "#wrong");
    if (s.baseline) std::printf(" %10s %8s", (s.baseline_name + " time").c_str(), "speedup");
    std::printf("\n# %10s %12s %8s %6s %10s %8s %8s %7s", "(B)", "(elements)", "", "", "(us)", "(GB/s)",
                "(GB/s)", "");
    if (s.baseline) std::printf(" %10s %8s", "(us)", "");
    std::printf("\n");
    std::fflush(stdout);
  };
  if (rank == 0 && !s.json) print_header();

  for (std::size_t size = s.min_bytes; size <= s.max_bytes; size *= 2) {
    const std::size_t total = size / elem;
    const std::size_t count = per_rank_block ? total / static_cast<std::size_t>(n) : total;
    void* in = send.data();
    void* out = recv.data();
    auto call = [&]() -> Request {
      switch (s.op) {
        case Op::allreduce:
          if (device >= 0) return comm.iallreduce(in, out, count, dt, s.redop);
          comm.allreduce(in, out, count, dt, s.redop);
          return {};
        case Op::allgather:
          if (device >= 0) return comm.iallgather(in, out, count, dt);
          comm.allgather(in, out, count, dt);
          return {};
        case Op::reduce_scatter:
          if (device >= 0) return comm.ireduce_scatter(in, out, count, dt, s.redop);
          comm.reduce_scatter(in, out, count, dt, s.redop);
          return {};
        case Op::broadcast:
          if (device >= 0) return comm.ibroadcast(out, count, dt, 0);
          comm.broadcast(out, count, dt, 0);
          return {};
      }
      return {};
    };
    Row row{};
    row.size = size;
    row.count = count;
    MPI_Comm mc = comm.mpi_comm();
    const MPI_Datatype mt = detail::mpi_type(dt);
    const MPI_Op mo = detail::mpi_op(dt, s.redop);
    const int c = static_cast<int>(count);
    auto plain_call = [&]() -> Request {
#if COHORT_HAVE_NCCL
      if (plain_nccl) {
        switch (s.op) {
          case Op::allreduce: plain_nccl->allreduce(in, out, count, dt, s.redop); break;
          case Op::allgather: plain_nccl->allgather(in, out, count, dt); break;
          case Op::reduce_scatter: plain_nccl->reduce_scatter(in, out, count, dt, s.redop); break;
          case Op::broadcast: plain_nccl->broadcast(out, count, dt, 0); break;
        }
        return {};
      }
#endif
      switch (s.op) {
        case Op::allreduce:
          MPI_Allreduce(in, out, c, mt, mo, mc);
          if (s.redop == ReduceOp::avg) detail::divide(out, count, dt, n);
          break;
        case Op::allgather: MPI_Allgather(in, c, mt, out, c, mt, mc); break;
        case Op::reduce_scatter:
          MPI_Reduce_scatter_block(in, out, c, mt, mo, mc);
          if (s.redop == ReduceOp::avg) detail::divide(out, count, dt, n);
          break;
        case Op::broadcast: MPI_Bcast(out, c, mt, 0, mc); break;
      }
      return {};
    };
    // Rounds of cohort and the baseline alternate, so that a burst of other load on the
    // machine hits both alike; each keeps its best round.
    row.time_us = 1e300;
    for (int round = 0; round < s.rounds; ++round) {
      row.time_us = std::min(row.time_us, time_us(comm, s, call));
      if (s.baseline) {
        row.baseline_us = std::min(row.baseline_us.value_or(1e300), time_us(comm, s, plain_call, plain_finish));
      }
    }

    // One more call on fresh inputs, checked against the reference.
    const ReduceOp ref_op = s.op == Op::allreduce || s.op == Op::reduce_scatter ? s.redop : ReduceOp::sum;
    const std::size_t in_count = s.op == Op::reduce_scatter ? count * static_cast<std::size_t>(n) : count;
    std::vector<std::byte> input = detail::filled(rank, in_count, dt, ref_op);
    if (s.op == Op::broadcast) {
      recv.upload(input, count * elem);
    } else {
      send.upload(input, in_count * elem);
    }
    call().wait();
    const std::size_t out_count = s.op == Op::allgather ? count * static_cast<std::size_t>(n) : count;
    std::vector<std::byte> got = recv.download(out_count * elem);
    long long wrong = 0;
    switch (s.op) {
      case Op::allreduce: wrong = static_cast<long long>(detail::count_wrong(got.data(), count, n, dt, s.redop)); break;
      case Op::reduce_scatter:
        wrong = static_cast<long long>(detail::count_wrong(got.data(), count, n, dt, s.redop,
                                                           static_cast<std::size_t>(rank) * count));
        break;
      case Op::broadcast: {
        const auto want = detail::filled(0, count, dt, ReduceOp::sum);
        for (std::size_t i = 0; i < count; ++i) {
          wrong += std::memcmp(got.data() + i * elem, want.data() + i * elem, elem) != 0;
        }
        break;
      }
      case Op::allgather:
        for (int r = 0; r < n; ++r) {
          const auto want = detail::filled(r, count, dt, ReduceOp::sum);
          const std::byte* block = got.data() + static_cast<std::size_t>(r) * count * elem;
          for (std::size_t i = 0; i < count; ++i) wrong += std::memcmp(block + i * elem, want.data() + i * elem, elem) != 0;
        }
        break;
    }
    MPI_Allreduce(MPI_IN_PLACE, &wrong, 1, MPI_LONG_LONG, MPI_SUM, comm.mpi_comm());
    row.wrong = wrong;
    row.algbw = row.time_us > 0 ? static_cast<double>(size) / row.time_us / 1e3 : 0;
    row.busbw = row.algbw * bus_factor(s.op, n);
    rows.push_back(row);
    if (rank == 0 && !s.json) {
      std::printf("  %10zu %12zu %8s %6s %10.2f %8.2f %8.2f %7lld", row.size, row.count,
                  std::string(detail::nccl_tests_name(dt)).c_str(), redop.c_str(), row.time_us, row.algbw, row.busbw, row.wrong);
      if (row.baseline_us) std::printf(" %10.2f %8.2f", *row.baseline_us, *row.baseline_us / row.time_us);
      std::printf("\n");
      std::fflush(stdout);
    }
  }

  long long wrong_total = 0;
  double busbw_sum = 0;
  for (const Row& r : rows) {
    wrong_total += r.wrong;
    busbw_sum += r.busbw;
  }
  if (rank == 0) {
    if (s.json) {
      std::ostringstream js;
      js << "{\"op\":\"" << s.op_name << "\",\"dtype\":\"" << detail::nccl_tests_name(dt) << "\",\"redop\":\"" << redop
         << "\",\"ranks\":" << n << ",\"backend\":\"" << to_string(device >= 0 ? BackendKind::nccl : BackendKind::mpi)
         << "\",\"rows\":[";
      for (std::size_t i = 0; i < rows.size(); ++i) {
        const Row& r = rows[i];
        js << (i ? "," : "") << "{\"size\":" << r.size << ",\"count\":" << r.count
           << ",\"time_us\":" << fmt("%.3f", r.time_us) << ",\"algbw\":" << fmt("%.4f", r.algbw)
           << ",\"busbw\":" << fmt("%.4f", r.busbw) << ",\"wrong\":" << r.wrong;
        if (r.baseline_us) {
          js << ",\"baseline_time_us\":" << fmt("%.3f", *r.baseline_us)
             << ",\"speedup\":" << fmt("%.4f", *r.baseline_us / r.time_us);
        }
        js << "}";
      }
      js << "],\"memcpy_GBps\":" << fmt("%.4f", memcpy_bw) << "}";
      std::cout << js.str() << std::endl;
    } else {
      std::printf("# Out of bounds values : %lld %s\n", wrong_total, wrong_total ? "FAILED" : "OK");
      std::printf("# Avg bus bandwidth    : %.3f GB/s\n", rows.empty() ? 0.0 : busbw_sum / rows.size());
      std::printf("# memcpy bandwidth     : %.3f GB/s (the limit line: one core copying %zu B)\n", memcpy_bw,
                  std::max<std::size_t>(std::min<std::size_t>(s.max_bytes, 256u << 20), 1u << 20));
    }
  }
  return wrong_total ? 1 : 0;
}

int run_grads(Communicator& comm, const Settings& s) {
  if (s.grads != "resnet50") {
    throw input_error("--grads " + s.grads + ": unknown gradient list (use resnet50)");
  }
  const int n = comm.size();
  const auto params = detail::resnet50_parameters();
  std::vector<std::vector<float>> grads;
  std::size_t total = 0;
  for (const auto& p : params) {
    grads.emplace_back(p.count(), 0.0f);
    total += p.count();
  }
  auto fill = [&] {
    std::size_t base = 0;
    for (auto& g : grads) {
      for (std::size_t i = 0; i < g.size(); ++i) {
        g[i] = static_cast<float>(detail::input_value(comm.rank(), base + i, DType::float32, ReduceOp::sum));
      }
      base += g.size();
    }
  };
  auto check = [&] {
    long long wrong = 0;
    std::size_t base = 0;
    for (auto& g : grads) {
      wrong += static_cast<long long>(detail::count_wrong(g.data(), g.size(), n, DType::float32, ReduceOp::sum, base));
      base += g.size();
    }
    MPI_Allreduce(MPI_IN_PLACE, &wrong, 1, MPI_LONG_LONG, MPI_SUM, comm.mpi_comm());
    return wrong;
  };

  // Backpropagation produces gradients last layer first.
  auto per_tensor = [&]() -> Request {
    for (std::size_t k = grads.size(); k-- > 0;) {
      MPI_Allreduce(MPI_IN_PLACE, grads[k].data(), static_cast<int>(grads[k].size()), MPI_FLOAT, MPI_SUM,
                    comm.mpi_comm());
    }
    return {};
  };
  BucketOptions options;
  options.bucket_bytes = s.bucket_bytes;
  GradientBuckets buckets(comm, options);
  std::vector<std::size_t> ids(grads.size());
  for (std::size_t k = grads.size(); k-- > 0;) ids[k] = buckets.add(grads[k].data(), grads[k].size(), DType::float32);
  auto bucketed = [&]() -> Request {
    for (std::size_t k = grads.size(); k-- > 0;) buckets.mark_ready(ids[k]);
    buckets.wait();
    return {};
  };

  // The same gradients living in their buckets (DDP's gradient_as_bucket_view): no copies.
  GradientBuckets views(comm, options);
  std::vector<std::size_t> view_ids(grads.size());
  for (std::size_t k = grads.size(); k-- > 0;) view_ids[k] = views.add_view(grads[k].size(), DType::float32);
  auto bucketed_views = [&]() -> Request {
    for (std::size_t k = grads.size(); k-- > 0;) views.mark_ready(view_ids[k]);
    views.wait();
    return {};
  };

  fill();
  per_tensor();
  long long wrong = check();
  fill();
  bucketed();
  wrong += check();
  fill();
  for (std::size_t k = 0; k < grads.size(); ++k) {
    std::memcpy(views.data(view_ids[k]), grads[k].data(), grads[k].size() * sizeof(float));
  }
  bucketed_views();
  for (std::size_t k = 0; k < grads.size(); ++k) {
    std::memcpy(grads[k].data(), views.data(view_ids[k]), grads[k].size() * sizeof(float));
  }
  wrong += check();
  double per_tensor_us = 1e300, bucketed_us = 1e300, views_us = 1e300;
  for (int round = 0; round < s.rounds; ++round) {
    per_tensor_us = std::min(per_tensor_us, time_us(comm, s, per_tensor));
    bucketed_us = std::min(bucketed_us, time_us(comm, s, bucketed));
    views_us = std::min(views_us, time_us(comm, s, bucketed_views));
  }
  if (comm.rank() == 0) {
    if (s.json) {
      std::cout << "{\"model\":\"resnet50\",\"tensors\":" << grads.size() << ",\"parameters\":" << total
                << ",\"ranks\":" << n << ",\"bucket_bytes\":" << s.bucket_bytes
                << ",\"buckets\":" << buckets.bucket_count() << ",\"per_tensor_ms\":" << fmt("%.3f", per_tensor_us / 1e3)
                << ",\"bucketed_ms\":" << fmt("%.3f", bucketed_us / 1e3)
                << ",\"speedup\":" << fmt("%.3f", per_tensor_us / bucketed_us)
                << ",\"bucket_views_ms\":" << fmt("%.3f", views_us / 1e3)
                << ",\"views_speedup\":" << fmt("%.3f", per_tensor_us / views_us) << ",\"wrong\":" << wrong << "}"
                << std::endl;
    } else {
      std::printf("# cohort bench collectives --grads resnet50: %zu tensors, %zu parameters (f32), %d ranks\n",
                  grads.size(), total, n);
      std::printf("# %-34s %12s %8s\n", "gradient allreduce, one step", "time (ms)", "speedup");
      std::printf("  %-34s %12.2f %8.2f\n", "one MPI_Allreduce per tensor", per_tensor_us / 1e3, 1.0);
      const std::string label = std::to_string(buckets.bucket_count()) + " buckets of <= " +
                                std::to_string(s.bucket_bytes >> 20) + " MiB";
      std::printf("  %-34s %12.2f %8.2f\n", label.c_str(), bucketed_us / 1e3, per_tensor_us / bucketed_us);
      std::printf("  %-34s %12.2f %8.2f\n", "the same, gradients as bucket views", views_us / 1e3,
                  per_tensor_us / views_us);
      std::printf("# Out of bounds values : %lld %s\n", wrong, wrong ? "FAILED" : "OK");
    }
  }
  return wrong ? 1 : 0;
}

}  // namespace

int bench_command(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << "usage: cohort bench collectives [options]\n\nbenchmarks:\n"
                 "  collectives   allreduce, allgather, reduce_scatter, broadcast; gradient buckets\n"
              << kExample;
    if (args.empty()) throw input_error("name a benchmark: cohort bench collectives");
    return 0;
  }
  if (args[0] != "collectives") {
    throw input_error("unknown benchmark '" + args[0] + "' (available: collectives)");
  }
  Settings s;
  std::string op = "allreduce", dtype = "float", redop = "sum", sizes = "8:64M", baseline,
              backend = "auto", algorithm = "auto", bucket = "25M", iters = "20", warmup = "5", rounds = "3";
  bool help = false;
  // Long options only, as "--name value" or "--name=value"; the table is the help text.
  struct Option {
    const char* name;
    std::string* value;  // null for a switch
    bool* flag;
    const char* help;
  };
  const Option table[] = {
      {"op", &op, nullptr, "allreduce | allgather | reduce_scatter | broadcast (allreduce)"},
      {"dtype", &dtype, nullptr, "f32 | f64 | f16 | bf16 | int32 | int64 | uint8 (f32)"},
      {"redop", &redop, nullptr, "sum | avg | min | max | prod (sum)"},
      {"sizes", &sizes, nullptr, "MIN:MAX bytes, doubling, with K, M, G (8:64M)"},
      {"iters", &iters, nullptr, "timed calls per size (20)"},
      {"warmup", &warmup, nullptr, "untimed calls per size before them (5)"},
      {"rounds", &rounds, nullptr, "rounds of --iters, alternating with the baseline; best kept (3)"},
      {"baseline", &baseline, nullptr, "mpi or nccl: also time the plain MPI or NCCL call on the same buffers"},
      {"backend", &backend, nullptr, "auto | mpi | nccl; nccl times device buffers (auto)"},
      {"algorithm", &algorithm, nullptr, "host allreduce: auto | mpi | node | ring (auto)"},
      {"grads", &s.grads, nullptr, "resnet50: bucketed against per-tensor gradient allreduce"},
      {"bucket-bytes", &bucket, nullptr, "bucket size for --grads (25M)"},
      {"json", nullptr, &s.json, "print one JSON object instead of the table"},
      {"help", nullptr, &help, "show this help"},
  };
  for (std::size_t i = 1; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg == "-h") arg = "--help";
    if (arg.rfind("--", 0) != 0) {
      throw input_error("unexpected argument '" + arg + "' (options start with --; see --help)");
    }
    std::string name = arg.substr(2);
    std::optional<std::string> inline_value;
    if (const auto eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name.resize(eq);
    }
    const Option* found = nullptr;
    for (const Option& o : table) {
      if (name == o.name) found = &o;
    }
    if (!found) throw input_error("unknown option '--" + name + "' (see --help)");
    if (found->flag) {
      if (inline_value) throw input_error("--" + name + " takes no value");
      *found->flag = true;
    } else if (inline_value) {
      *found->value = *inline_value;
    } else if (i + 1 < args.size()) {
      *found->value = args[++i];
    } else {
      throw input_error("--" + name + " needs a value");
    }
  }
  if (help) {
    std::cout << kUsage << "options:\n";
    for (const Option& o : table) {
      std::string left = std::string("  --") + o.name + (o.value ? " VALUE" : "");
      left.resize(std::max<std::size_t>(left.size() + 1, 24), ' ');
      std::cout << left << o.help << "\n";
    }
    std::cout << kExample;
    return 0;
  }
  auto whole = [](const std::string& name, const std::string& text) {
    std::size_t pos = 0;
    int value = -1;
    try {
      value = std::stoi(text, &pos);
    } catch (const std::exception&) {
      pos = 0;
    }
    if (pos == 0 || pos != text.size()) throw input_error("--" + name + " " + text + ": expected a whole number");
    return value;
  };
  s.iters = whole("iters", iters);
  s.warmup = whole("warmup", warmup);
  s.rounds = whole("rounds", rounds);
  if (op == "allreduce") s.op = Op::allreduce;
  else if (op == "allgather") s.op = Op::allgather;
  else if (op == "reduce_scatter") s.op = Op::reduce_scatter;
  else if (op == "broadcast") s.op = Op::broadcast;
  else throw input_error("--op " + op + ": unknown operation (use allreduce, allgather, reduce_scatter or broadcast)");
  s.op_name = op;
  s.dtype = parse_dtype(dtype, collective_dtypes());
  s.redop = parse_op(redop);
  const auto colon = sizes.find(':');
  s.min_bytes = parse_size(sizes.substr(0, colon));
  s.max_bytes = colon == std::string::npos ? s.min_bytes : parse_size(sizes.substr(colon + 1));
  if (s.min_bytes == 0 || s.max_bytes < s.min_bytes) {
    throw input_error("--sizes " + sizes + ": need 0 < MIN <= MAX (for example 8:64M)");
  }
  if (s.iters < 1 || s.warmup < 0 || s.rounds < 1) {
    throw input_error("--iters and --rounds must be at least 1, --warmup at least 0");
  }
  if (!baseline.empty()) {
    if (baseline != "mpi" && baseline != "nccl") {
      throw input_error("--baseline " + baseline + ": unknown baseline (use mpi for host buffers, nccl for device ones)");
    }
    s.baseline = true;
    s.baseline_name = baseline;
  }
  s.bucket_bytes = parse_size(bucket);

  CommunicatorOptions options;
  options.backend = backend;
  // The benchmark times MPI beside cohort and gathers its figures over MPI.
  options.bootstrap = "mpi";
  if (algorithm == "auto") options.algorithm = AllreduceAlgorithm::automatic;
  else if (algorithm == "mpi") options.algorithm = AllreduceAlgorithm::mpi;
  else if (algorithm == "node") options.algorithm = AllreduceAlgorithm::node;
  else if (algorithm == "ring") options.algorithm = AllreduceAlgorithm::ring;
  else throw input_error("--algorithm " + algorithm + ": unknown algorithm (use auto, mpi, node or ring)");
  Communicator comm = Communicator::from_environment(options);
  if (!s.grads.empty()) return run_grads(comm, s);
  return run_sweep(comm, s);
}

}  // namespace cohort
