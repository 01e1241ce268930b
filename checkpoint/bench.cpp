// `cohort ckpt bench`: checkpoint save and load throughput against raw write+fsync and read
// of the same bytes, measured in the same run on the same directory.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <iostream>

#include "checkpoint/bench.hpp"
#include "checkpoint/checkpoint.hpp"
#include "checkpoint/internal.hpp"
#include "common/fd.hpp"
#include "common/options.hpp"
#include "common/stats.hpp"
#include "common/text.hpp"

namespace cohort::checkpoint {

using namespace detail;
namespace po = options::po;

namespace {

// Initialises MPI for the benchmark when the program has not, and finalises it after.
class MpiSession {
 public:
  MpiSession() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
      owned_ = true;
    }
  }
  ~MpiSession() {
    if (owned_) MPI_Finalize();
  }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

 private:
  bool owned_ = false;
};

std::uint64_t parse_bytes(const std::string& text) {
  const auto bytes = parse_byte_size(text);
  if (!bytes || *bytes == 0) throw input_error("--bytes " + text + ": expected a positive size such as 4096, 64M or 1G");
  return *bytes;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The slowest rank's time: the job waits for it.
double slowest(double mine) {
  double out = mine;
  MPI_Allreduce(&mine, &out, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

Fd open_file(const fs::path& path, int flags) {
  Fd fd(::open(path.c_str(), flags | O_CLOEXEC, 0644));
  if (!fd) throw Error(system_message("open " + path.string(), errno));
  return fd;
}

// Writes and fsyncs, or reads, `size` bytes in 64 MiB calls.
void raw_io(const fs::path& path, std::byte* data, std::uint64_t size, bool write) {
  Fd fd = open_file(path, write ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY);
  constexpr std::uint64_t kCall = 64ull << 20;
  for (std::uint64_t done = 0; done < size;) {
    auto n = static_cast<size_t>(std::min(kCall, size - done));
    ssize_t got = write ? ::write(fd.get(), data + done, n) : ::read(fd.get(), data + done, n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) throw Error(system_message((write ? "write " : "read ") + path.string(), got < 0 ? errno : EIO));
    done += static_cast<std::uint64_t>(got);
  }
  if (write && ::fsync(fd.get()) != 0) throw Error(system_message("fsync " + path.string(), errno));
}

// The bench's own directory, removed however the bench ends, unless it is to be kept
// after a run that finished: a failed run (a full disk, say) leaves nothing behind.
class Scratch {
 public:
  Scratch(fs::path path, bool owner) : path_(std::move(path)), owner_(owner) {}
  ~Scratch() {
    if (!owner_ || keep_) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void keep() { keep_ = true; }

 private:
  fs::path path_;
  bool owner_;
  bool keep_ = false;
};

// Drops a file's clean pages from the page cache so that the next read goes to storage.
void drop_cache(const fs::path& path) {
  Fd fd = open_file(path, O_RDONLY);
  ::fdatasync(fd.get());
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED);
}

}  // namespace

int bench_command(const std::vector<std::string>& args) {
  std::string dir_text, bytes_text = "1G";
  int tensors = 100, repeat = 3;
  options::Parser parser(
      {"ckpt bench",
       {"--dir D [--bytes N] [--tensors K] [--repeat R] [--async] [--keep] [--json]"},
       "Saves and loads a synthetic state of N bytes (all ranks together) in K float32 tensors,\n"
       "sharded by rows, through the checkpointer; in the same run writes the same bytes raw\n"
       "(write + fsync, one file per rank) and reads them back, as the limit. Page caches of\n"
       "both are dropped before reading. It repeats R times, alternating which goes first, and\n"
       "each figure is the median. Run it under mpirun or srun for several ranks.",
       {"mpirun -n 2 cohort ckpt bench --dir /scratch/bench --bytes 1G --tensors 100 --async"}});
  parser.add()("dir", po::value(&dir_text)->required()->value_name("D"), "directory to write in (shared by all ranks)")(
      "bytes", po::value(&bytes_text)->value_name("N"), "state size, all ranks together (default 1G)")(
      "tensors", po::value(&tensors)->value_name("K"), "number of tensors (default 100)")(
      "repeat", po::value(&repeat)->value_name("R"), "repetitions; each figure is their median (default 3)")(
      "async", "also measure how long save_async blocks the caller")(
      "keep", "leave the checkpoint in its directory under --dir (a failed run leaves nothing)")(
      "json", "print JSON instead of a table");
  auto parsed = parser.parse(args);
  if (!parsed) return 0;
  const po::variables_map& vm = parsed->values;
  const std::uint64_t total = parse_bytes(bytes_text);
  if (tensors < 1) throw input_error("--tensors " + std::to_string(tensors) + ": must be at least 1");
  if (repeat < 1) throw input_error("--repeat " + std::to_string(repeat) + ": must be at least 1");
  const fs::path dir = dir_text;

  MpiSession mpi;
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);

  // K float32 tensors of equal size, each split by rows over the ranks.
  const std::uint64_t elements = std::max<std::uint64_t>(1, total / 4 / static_cast<std::uint64_t>(tensors));
  const std::uint64_t mine = elements / static_cast<std::uint64_t>(ranks) +
                             (static_cast<std::uint64_t>(rank) < elements % static_cast<std::uint64_t>(ranks) ? 1 : 0);
  std::vector<std::vector<float>> data(static_cast<size_t>(tensors));
  std::vector<Tensor> state_tensors;
  std::vector<TensorSlot> slots;
  for (int t = 0; t < tensors; ++t) {
    auto& d = data[static_cast<size_t>(t)];
    d.resize(mine);
    for (std::uint64_t i = 0; i < mine; ++i) d[i] = static_cast<float>((i * 2654435761u + static_cast<unsigned>(t)) % 1000003);
    std::string name = "bench.t" + std::to_string(t);
    state_tensors.push_back({name, DType::float32, {mine}, Sharding::rows, d.data()});
    slots.push_back({name, DType::float32, {mine}, Sharding::rows, d.data()});
  }
  const std::uint64_t my_bytes = mine * 4 * static_cast<std::uint64_t>(tensors);
  std::uint64_t all_bytes = 0;
  MPI_Allreduce(&my_bytes, &all_bytes, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);

  // A directory of the bench's own inside --dir: what it writes and removes is never
  // anything that was there before (a run's checkpoints, say).
  char work_name[4096] = {};
  if (rank == 0) {
    fs::create_directories(dir);
    std::string templ = (dir / "cohort-ckpt-bench.XXXXXX").string();
    if (templ.size() >= sizeof work_name || !::mkdtemp(templ.data())) {
      std::snprintf(work_name, sizeof work_name, "%s", "");
    } else {
      std::snprintf(work_name, sizeof work_name, "%s", templ.c_str());
    }
  }
  MPI_Bcast(work_name, sizeof work_name, MPI_CHAR, 0, MPI_COMM_WORLD);
  if (!*work_name) throw Error("--dir " + dir.string() + ": cannot make a directory to bench in there");
  const fs::path work = work_name;
  Scratch scratch(work, rank == 0);
  const fs::path ckpt_dir = work / "ckpt";
  const fs::path raw = work / ("raw-" + std::to_string(rank) + ".bin");
  const std::int64_t kSyncStep = 10, kAsyncStep = 100;  // sync saves use 10, 11, …

  // Raw: the same bytes, one contiguous buffer per rank.
  std::vector<std::byte> buffer(my_bytes);
  for (int t = 0; t < tensors; ++t) {
    std::memcpy(buffer.data() + static_cast<std::uint64_t>(t) * mine * 4, data[static_cast<size_t>(t)].data(), mine * 4);
  }
  // Storage throughput drifts while the disk and its caches settle: raw and checkpoint
  // runs alternate, and each figure is the median over the repetitions.
  std::vector<double> raw_writes, raw_reads, saves, loads;
  Options opts;
  // A failed asynchronous save reaches the bench through its future, which reports it once.
  opts.warn = [](const std::string&) {};
  Checkpointer ckpt(ckpt_dir, MPI_COMM_WORLD, opts);
  auto timed = [](auto&& body) {
    MPI_Barrier(MPI_COMM_WORLD);
    auto start = std::chrono::steady_clock::now();
    body();
    return slowest(seconds_since(start));
  };
  for (int rep = 0; rep < repeat; ++rep) {
    const std::int64_t step = kSyncStep + rep;
    // Whichever goes second may meet the storage still flushing the first: the order
    // alternates between repetitions so that neither side always pays for it.
    const bool raw_first = rep % 2 == 0;
    auto raw_write = [&] { raw_writes.push_back(timed([&] { raw_io(raw, buffer.data(), my_bytes, true); })); };
    auto ckpt_write = [&] { saves.push_back(timed([&] { ckpt.save(step, State{state_tensors, {}}); })); };
    auto raw_read = [&] { raw_reads.push_back(timed([&] { raw_io(raw, buffer.data(), my_bytes, false); })); };
    auto ckpt_read = [&] { loads.push_back(timed([&] { ckpt.load(step, slots); })); };
    if (raw_first) {
      raw_write();
      ckpt_write();
    } else {
      ckpt_write();
      raw_write();
    }
    drop_cache(raw);
    if (rank == 0) drop_cache(checkpoint_path(ckpt_dir, step) / kStateFile);
    if (raw_first) {
      raw_read();
      ckpt_read();
    } else {
      ckpt_read();
      raw_read();
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0 && rep + 1 < repeat) fs::remove_all(checkpoint_path(ckpt_dir, step));
  }
  fs::remove(raw);
  buffer = {};
  const double raw_write = median(raw_writes), raw_read = median(raw_reads);
  const double save_s = median(saves), load_s = median(loads);

  double blocked_s = -1, first_blocked_s = -1, async_total_s = -1;
  if (vm.count("async")) {
    // Twice: the first save also allocates the staging buffers, which later saves reuse,
    // as a training loop's periodic saves do.
    for (auto step : {kAsyncStep, kAsyncStep + 1}) {
      MPI_Barrier(MPI_COMM_WORLD);
      auto start = std::chrono::steady_clock::now();
      auto future = ckpt.save_async(step, State{state_tensors, {}});
      double blocked = slowest(seconds_since(start));
      future.get();
      double total = slowest(seconds_since(start));
      if (step == kAsyncStep) {
        first_blocked_s = blocked;
      } else {
        blocked_s = blocked;
        async_total_s = total;
      }
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (vm.count("keep")) scratch.keep();

  if (rank != 0) return 0;
  const double gb = static_cast<double>(all_bytes) / 1e9;
  json::Value out = json::Value::object();
  out.set("bytes", all_bytes);
  out.set("tensors", tensors);
  out.set("ranks", ranks);
  out.set("repeat", repeat);
  out.set("write_GBps", gb / save_s);
  out.set("raw_write_GBps", gb / raw_write);
  out.set("read_GBps", gb / load_s);
  out.set("raw_read_GBps", gb / raw_read);
  out.set("sync_save_s", save_s);
  out.set("async_blocked_s", blocked_s >= 0 ? json::Value(blocked_s) : json::Value());
  out.set("async_first_blocked_s", first_blocked_s >= 0 ? json::Value(first_blocked_s) : json::Value());
  out.set("async_total_s", async_total_s >= 0 ? json::Value(async_total_s) : json::Value());
  if (vm.count("keep")) out.set("kept", ckpt_dir.string());
  if (vm.count("json")) {
    std::cout << json::write(out) << "\n";
    return 0;
  }
  char line[256];
  std::printf("cohort ckpt bench: %.3f GB in %d tensors, %d rank(s), %s\n", gb, tensors, ranks, dir.c_str());
  std::printf("%-12s %12s %12s\n", "", "write GB/s", "read GB/s");
  std::printf("%-12s %12.2f %12.2f\n", "raw", gb / raw_write, gb / raw_read);
  std::printf("%-12s %12.2f %12.2f\n", "checkpoint", gb / save_s, gb / load_s);
  std::printf("%-12s %12.2f %12.2f\n", "ratio", raw_write / save_s, raw_read / load_s);
  std::snprintf(line, sizeof line, "sync save %.3f s", save_s);
  std::cout << line;
  if (blocked_s >= 0) {
    std::snprintf(line, sizeof line,
                  "\nasync save blocked the caller %.3f s (%.1f%% of sync; first save %.3f s), done after %.3f s",
                  blocked_s, 100.0 * blocked_s / save_s, first_blocked_s, async_total_s);
    std::cout << line;
  }
  std::cout << "\n";
  if (vm.count("keep")) std::cout << "checkpoint kept in " << ckpt_dir.string() << "\n";
  return 0;
}

}  // namespace cohort::checkpoint
