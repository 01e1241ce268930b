// `cohort bench ckpt`: checkpoint save and load throughput against raw write+fsync and read
// of the same bytes, measured in the same run on the same directory.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <iostream>
#include <optional>

#include "checkpoint/bench.hpp"
#include "checkpoint/checkpoint.hpp"
#include "checkpoint/group.hpp"
#include "checkpoint/layout.hpp"
#include "common/bench.hpp"
#include "common/environment.hpp"
#include "common/fd.hpp"
#include "common/options.hpp"

namespace cohort::checkpoint {

using namespace detail;
namespace po = options::po;

namespace {

// Ranks that only have the launch contract (torchrun, `cohort launch` without MPI): the
// bench then runs as the checkpointer does there, agreeing through files, with no MPI at all.
bool plain_ranks() {
  if (started_by_mpi_launcher()) return false;
  const auto contract = contract_ranks();
  return contract && contract->second > 1;
}

// Initialises MPI for the benchmark when the program has not and the ranks are not plain
// ones, and finalises it after.
class MpiSession {
 public:
  MpiSession() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized && !plain_ranks()) {
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

// The slowest rank's time: the job waits for it.
double slowest(const Group& group, double mine) {
  const auto all = group.allgather(mine);
  return *std::max_element(all.begin(), all.end());
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


struct Settings {
  fs::path dir;
  std::uint64_t bytes = 0;
  int tensors = 100;
  int repeat = 3;
  bool async = false;
  bool keep = false;
  bool json = false;
};

std::optional<Settings> parse(const std::vector<std::string>& args) {
  Settings s;
  std::string dir, bytes = "1G", tensors = "100", repeat = "5";
  options::Parser parser(
      {"bench ckpt",
       {"--dir D [--bytes N] [--tensors K] [--repeat R] [--async] [--keep] [--json]"},
       "Saves and loads a synthetic state of N bytes (all ranks together) in K float32 tensors,\n"
       "sharded by rows, through the checkpointer; in the same run writes the same bytes raw\n"
       "(write + fsync, one file per rank) and reads them back, as the limit. Page caches of\n"
       "both are dropped before reading. It repeats R times, alternating which goes first, and\n"
       "each figure is the median; when the raw baseline itself moves by more than 20% between\n"
       "repetitions it says so instead of giving a ratio. Run it under mpirun or srun for several ranks,\n"
       "or as ranks that only have the launch contract (RANK, WORLD_SIZE: torchrun, cohort launch without\n"
       "MPI), which agree through files in D/.agreement-0/ as a checkpointer does.",
       {"mpirun -n 2 cohort bench ckpt --dir /scratch/bench --bytes 1G --tensors 100 --async",
        "for r in 0 1; do RANK=$r WORLD_SIZE=2 cohort bench ckpt --dir /scratch/bench & done; wait"}});
  parser.add()("dir", po::value(&dir)->required()->value_name("D"), "directory to write in (shared by all ranks)")(
      "bytes", po::value(&bytes)->value_name("N"), "state size, all ranks together (default 1G)")(
      "tensors", po::value(&tensors)->value_name("K"), "number of tensors (default 100)")(
      "repeat", po::value(&repeat)->value_name("R"), "repetitions; each figure is their median (default 5)")(
      "async", po::bool_switch(&s.async), "also measure how long save_async blocks the caller")(
      "keep", po::bool_switch(&s.keep), "leave the checkpoint in its directory under --dir (a failed run leaves nothing)")(
      "json", po::bool_switch(&s.json), "print JSON instead of a table");
  if (!parser.parse(args)) return std::nullopt;
  s.dir = dir;
  s.bytes = options::byte_size("--bytes", bytes, 1);
  s.tensors = static_cast<int>(options::whole_number("--tensors", tensors, 1, 1'000'000));
  s.repeat = static_cast<int>(options::whole_number("--repeat", repeat, 1, 1000));
  return s;
}

// The synthetic state: K float32 tensors of equal size, each split by rows over the ranks,
// and the same bytes in one buffer for the raw writes and reads.
struct Synthetic {
  std::vector<std::vector<float>> data;
  std::vector<Tensor> state_tensors;
  std::vector<TensorSlot> slots;
  std::vector<std::byte> buffer;
  std::uint64_t my_bytes = 0;
  std::uint64_t all_bytes = 0;  // of all ranks together

  Synthetic(const Settings& s, const Group& group) : data(static_cast<size_t>(s.tensors)) {
    const int rank = group.rank(), ranks = group.size();
    const std::uint64_t elements = std::max<std::uint64_t>(1, s.bytes / 4 / static_cast<std::uint64_t>(s.tensors));
    const std::uint64_t mine = elements / static_cast<std::uint64_t>(ranks) +
                               (static_cast<std::uint64_t>(rank) < elements % static_cast<std::uint64_t>(ranks) ? 1 : 0);
    for (int t = 0; t < s.tensors; ++t) {
      auto& d = data[static_cast<size_t>(t)];
      d.resize(mine);
      for (std::uint64_t i = 0; i < mine; ++i) d[i] = static_cast<float>((i * 2654435761u + static_cast<unsigned>(t)) % 1000003);
      std::string name = "bench.t" + std::to_string(t);
      state_tensors.push_back({name, DType::float32, {mine}, Sharding::rows, d.data()});
      slots.push_back({name, DType::float32, {mine}, Sharding::rows, d.data()});
    }
    my_bytes = mine * 4 * static_cast<std::uint64_t>(s.tensors);
    for (auto bytes : group.allgather(my_bytes)) all_bytes += bytes;
    buffer.resize(my_bytes);
    for (int t = 0; t < s.tensors; ++t) {
      std::memcpy(buffer.data() + static_cast<std::uint64_t>(t) * mine * 4, data[static_cast<size_t>(t)].data(), mine * 4);
    }
  }
};

// A directory of the bench's own inside --dir, made by rank 0 and named to all: what it
// writes and removes is never anything that was there before (a run's checkpoints, say).
fs::path work_directory(const fs::path& dir, const Group& group) {
  std::string name;
  if (group.rank() == 0) {
    std::string templ = (dir / "cohort-ckpt-bench.XXXXXX").string();
    if (::mkdtemp(templ.data())) name = templ;
  }
  name = group.broadcast(name);
  if (name.empty()) throw Error("--dir " + dir.string() + ": cannot make a directory to bench in there");
  return name;
}

// The slowest rank's time of `body`, all ranks starting together.
double timed(const Group& group, const std::function<void()>& body) {
  group.barrier();
  return slowest(group, bench::seconds(body));
}

// Seconds of each repetition, raw and through the checkpointer.
struct Times {
  std::vector<double> raw_writes, saves, raw_reads, loads;
};

// Storage throughput drifts while the disk and its caches settle: raw and checkpoint runs
// alternate, and whichever goes second may meet the storage still flushing the first, so
// the order alternates between repetitions and neither side always pays for it.
Times measure(const Settings& s, const Group& group, Synthetic& state, Checkpointer& ckpt, const fs::path& ckpt_dir,
              const fs::path& raw) {
  const int rank = group.rank();
  const std::int64_t kFirstStep = 10;  // the saves use 10, 11, …
  Times times;
  for (int rep = 0; rep < s.repeat; ++rep) {
    const std::int64_t step = kFirstStep + rep;
    const bool raw_first = rep % 2 == 0;
    auto pair = [&](std::vector<double>& raw_times, const std::function<void()>& raw_call,
                    std::vector<double>& ckpt_times, const std::function<void()>& ckpt_call) {
      if (raw_first) raw_times.push_back(timed(group, raw_call));
      ckpt_times.push_back(timed(group, ckpt_call));
      if (!raw_first) raw_times.push_back(timed(group, raw_call));
    };
    pair(times.raw_writes, [&] { raw_io(raw, state.buffer.data(), state.my_bytes, true); }, times.saves,
         [&] { ckpt.save(step, State{state.state_tensors, {}}); });
    drop_cache(raw);
    drop_cache(checkpoint_path(ckpt_dir, step) / rank_file_name(rank));
    if (rank == 0) drop_cache(checkpoint_path(ckpt_dir, step) / kStateFile);
    pair(times.raw_reads, [&] { raw_io(raw, state.buffer.data(), state.my_bytes, false); }, times.loads,
         [&] { ckpt.load(step, state.slots); });
    group.barrier();
    if (rank == 0 && rep + 1 < s.repeat) fs::remove_all(checkpoint_path(ckpt_dir, step));
  }
  fs::remove(raw);
  return times;
}

// How long save_async blocks its caller, twice: the first save also allocates the staging
// buffers, which later saves reuse, as a training loop's periodic saves do.
struct AsyncTimes {
  double first_blocked = 0, blocked = 0, total = 0;
};

AsyncTimes measure_async(const Group& group, Synthetic& state, Checkpointer& ckpt) {
  const std::int64_t kStep = 100;
  AsyncTimes out;
  for (auto step : {kStep, kStep + 1}) {
    group.barrier();
    const auto start = std::chrono::steady_clock::now();
    auto future = ckpt.save_async(step, State{state.state_tensors, {}});
    const double mine_blocked = bench::seconds_since(start);
    future.get();
    const double mine_total = bench::seconds_since(start);
    // Reduced after the save: the ranks' exchange must not run inside what is timed.
    const double blocked = slowest(group, mine_blocked), total = slowest(group, mine_total);
    if (step == kStep) {
      out.first_blocked = blocked;
    } else {
      out.blocked = blocked;
      out.total = total;
    }
  }
  return out;
}

// A raw baseline that itself moved by more than this between repetitions (the disk
// flushing, another job) says more about the machine than about the checkpointer.
constexpr double kBaselineMoved = 0.2;

void add_rows(bench::Report& report, bench::Table& table, const char* io, double gb, const std::vector<double>& raw,
              const std::vector<double>& ckpt) {
  const auto r = bench::summarize(raw), c = bench::summarize(ckpt);
  const bool moved = raw.size() > 1 && r.spread() > kBaselineMoved;
  table.add({io, "raw (baseline)", gb / r.median, 100 * r.spread(), 1.0});
  table.add({io, "checkpoint", gb / c.median, 100 * c.spread(),
             moved ? json::Value() : bench::number(r.median / c.median)});
  if (moved) {
    char line[200];
    std::snprintf(line, sizeof line,
                  "the raw %s baseline moved by %.0f%% between repetitions (more than %.0f%%): no %s ratio is given; "
                  "run again on a quieter machine or with more --repeat",
                  io, 100 * r.spread(), 100 * kBaselineMoved, io);
    report.note(line);
  }
}

void report(const Settings& s, const Synthetic& state, int ranks, const Times& times,
            const std::optional<AsyncTimes>& async, const std::optional<fs::path>& kept) {
  const double gb = static_cast<double>(state.all_bytes) / 1e9;
  bench::Report report("ckpt");
  report.context("bytes", state.all_bytes);
  report.context("tensors", s.tensors);
  report.context("ranks", ranks);
  report.context("repeat", s.repeat);
  report.context("dir", s.dir.string());
  if (kept) report.context("kept", kept->string());
  auto& table = report.table("throughput", "medians of the repetitions; ratio: checkpoint against raw",
                             {{.name = "io", .text = true},
                              {.name = "path", .text = true},
                              {.name = "rate", .unit = "GB/s"},
                              {.name = "spread", .unit = "%", .digits = 1},
                              {.name = "ratio"}});
  add_rows(report, table, "write", gb, times.raw_writes, times.saves);
  add_rows(report, table, "read", gb, times.raw_reads, times.loads);
  const double save_s = bench::summarize(times.saves).median;
  report.figure({"sync_save_s", "sync save", save_s, "s", 3});
  if (async) {
    char share[64];
    std::snprintf(share, sizeof share, "(%.1f%% of sync)", 100.0 * async->blocked / save_s);
    report.figure({"async_blocked_s", "async save blocked the caller", async->blocked, "s", 3, share});
    report.figure({"async_first_blocked_s", "the first async save blocked it", async->first_blocked, "s", 3});
    report.figure({"async_total_s", "async save done after", async->total, "s", 3});
  }
  if (kept) report.note("checkpoint kept in " + kept->string());
  report.print(std::cout, s.json);
}

}  // namespace

int bench_command(const std::vector<std::string>& args) {
  const auto settings = parse(args);
  if (!settings) return 0;
  const Settings& s = *settings;
  MpiSession mpi;
  fs::create_directories(s.dir);
  // Plain ranks agree through files in --dir (its .agreement-N/), as a checkpointer does in
  // its directory; the bench's own files go under a directory of its own.
  const Group group(MPI_COMM_WORLD, s.dir);
  const int rank = group.rank(), ranks = group.size();
  Synthetic state(s, group);
  const fs::path work = work_directory(s.dir, group);
  Scratch scratch(work, rank == 0);
  const fs::path ckpt_dir = work / "ckpt";
  Options opts;
  // A failed asynchronous save reaches the bench through its future, which reports it once.
  opts.warn = [](const std::string&) {};
  Checkpointer ckpt(ckpt_dir, MPI_COMM_WORLD, opts);
  const Times times = measure(s, group, state, ckpt, ckpt_dir, work / ("raw-" + std::to_string(rank) + ".bin"));
  state.buffer = {};
  std::optional<AsyncTimes> async;
  if (s.async) async = measure_async(group, state, ckpt);
  group.barrier();
  if (s.keep) scratch.keep();
  if (rank == 0) report(s, state, ranks, times, async, s.keep ? std::optional(ckpt_dir) : std::nullopt);
  return 0;
}

}  // namespace cohort::checkpoint
