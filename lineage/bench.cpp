#include "lineage/bench.hpp"

#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "common/bench.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/options.hpp"
#include "common/scratch_dir.hpp"
#include "common/process.hpp"
#include "common/text.hpp"
#include "lineage/record.hpp"
#include "lineage/store.hpp"

namespace cohort::lineage {

namespace {

namespace fs = std::filesystem;
namespace po = options::po;

struct Settings {
  std::string writers = "1,8,32";
  int records = 100;
  int repeat = 3;
  std::string dir;
  bool json = false;
  std::vector<std::string> writer;  // hidden: DB WRITER RECORDS SPOOL, what each writer process is told
};

// One writer process: says it is ready, waits for its stdin to close (so that every writer
// starts at once, their start-up untimed), then records RECORDS checkpoints of its own
// launch as a training job's rank 0 would, through the recorders every cohort command uses.
int run_writer(const std::vector<std::string>& args) {
  if (args.size() != 4) throw input_error("--writer takes DB WRITER RECORDS SPOOL");
  const std::string& writer = args[1];
  const int records = static_cast<int>(options::whole_number("--writer", args[2], 1, 1 << 20));
  ::setenv("COHORT_LINEAGE", args[0].c_str(), 1);
  ::setenv("COHORT_LINEAGE_SPOOL", args[3].c_str(), 1);
  ::setenv("SLURM_JOB_ID", ("bench-" + writer).c_str(), 1);
  ::setenv(kExecutionVariable, ("Launch/bench-" + writer).c_str(), 1);
  ::unsetenv("COHORT_SWEEP_DIR");
  write_all(STDOUT_FILENO, "ready\n", "stdout");
  char byte;
  while (::read(STDIN_FILENO, &byte, 1) > 0) {
  }
  for (int i = 0; i < records; ++i) {
    record_checkpoint({.path = "/bench/" + writer + "/step-" + std::to_string(i),
                       .step = i,
                       .digest = "crc32c:" + std::to_string(i)});
  }
  return 0;
}

// Seconds from the moment all `writers` processes start writing to the last one's end, with
// the spool's merge when `spool`; throws unless the store then holds every record once.
double run_once(const Settings& s, const fs::path& db, int writers, bool spool) {
  std::error_code ec;
  fs::remove_all(db.parent_path(), ec);
  make_directories(db.parent_path().string(), 0700);
  Store::open(db);  // created before the writers, as a user's store is
  const std::string self = own_executable().string();
  std::vector<Process> children;
  for (int w = 0; w < writers; ++w) {
    SpawnOptions o;
    o.in = Stream::pipe();
    o.out = Stream::pipe();
    children.push_back(spawn({self, "lineage", "--writer", db.string(), std::to_string(w), std::to_string(s.records),
                              spool ? "1" : "0"},
                             o));
  }
  for (auto& child : children) {
    char line[8] = {};
    if (::read(child.out().get(), line, sizeof line - 1) <= 0) throw Error("a writer process did not start");
  }
  const auto start = std::chrono::steady_clock::now();
  for (auto& child : children) child.in().reset();
  for (auto& child : children) {
    const int status = child.wait();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw Error("a writer process failed");
  }
  Store store = Store::open(db);
  if (spool) merge_spool(store);
  const double seconds = bench::seconds_since(start);
  const auto written = store.artifacts("Checkpoint");
  std::set<std::string> uris;
  for (const auto& a : written) uris.insert(a.uri);
  const std::size_t expected = static_cast<std::size_t>(writers) * s.records;
  if (written.size() != expected || uris.size() != expected || store.executions("Launch").size() != std::size_t(writers)) {
    throw Error("the store holds " + std::to_string(written.size()) + " checkpoints (" + std::to_string(uris.size()) +
                " distinct) of " + std::to_string(expected) + " written");
  }
  return seconds;
}

options::Parser make_parser(Settings& s) {
  options::Parser parser(
      {.name = "bench lineage",
       .usage = {"[--writers 1,8,32] [--records N] [--repeat N] [--dir D] [--json]"},
       .description =
       "Starts each number of writer processes at once, each recording RECORDS checkpoints of its\n"
       "own launch (an artifact, the launch, the OUTPUT event, the job's context) in one lineage\n"
       "store, and times them from the start to the last write: directly in the SQLite file, and\n"
       "through the spool that network file systems use, its merge included. Rates are records\n"
       "a second, against one writer writing directly; every run checks that the store holds\n"
       "each record exactly once.",
       .examples = {"cohort bench lineage", "cohort bench lineage --writers 32 --records 200 --dir /scratch/bench"}});
  auto option = parser.add();
  option("writers", po::value(&s.writers)->value_name("LIST"), "numbers of writer processes (1,8,32)");
  option("records", po::value(&s.records)->value_name("N"), "records each writer writes (100)");
  option("repeat", po::value(&s.repeat)->value_name("N"), "runs of each; figures are medians (3)");
  option("dir", po::value(&s.dir)->value_name("D"), "where the store goes (a temporary folder under TMPDIR)");
  option("json", po::bool_switch(&s.json), "print one JSON object instead of the table");
  parser.add_hidden()("writer", po::value(&s.writer)->multitoken(), "one writer process");
  return parser;
}

}  // namespace

int bench_command(const std::vector<std::string>& args) {
  Settings s;
  auto parsed = make_parser(s).parse(args);
  if (!parsed) return 0;
  if (!s.writer.empty()) return run_writer(s.writer);
  if (s.records < 1 || s.repeat < 1) throw input_error("--records and --repeat must be at least 1");
  std::vector<int> counts;
  for (auto piece : split(s.writers, ',')) {
    counts.push_back(static_cast<int>(options::whole_number("--writers", std::string(piece), 1, 1024)));
  }
  if (counts.empty()) throw input_error("--writers: give at least one number");
  const fs::path dir = s.dir.empty() ? fs::temp_directory_path() / ("cohort-bench-lineage." + unguessable_name(8))
                                     : fs::path(s.dir) / ("cohort-bench-lineage." + unguessable_name(8));
  const RemovedAtExit cleanup(dir);
  const fs::path db = dir / "lineage.db";

  bench::Report report("lineage");
  report.context("records_per_writer", s.records);
  report.context("repeat", s.repeat);
  report.context("network_file_system", on_network_file_system(fs::path(s.dir.empty() ? "/tmp" : s.dir)));
  auto& table = report.table("writes", "medians of the runs, against one writer writing directly in the same run",
                             {{.name = "writers", .digits = 0},
                              {.name = "path", .text = true},
                              {.name = "records", .unit = "/s", .digits = 0},
                              {.name = "ratio", .digits = 2},
                              {.name = "checked", .text = true}});
  const auto rate = [&](int writers, bool spool) {
    std::vector<double> rates;
    for (int r = 0; r < s.repeat; ++r) rates.push_back(writers * s.records / run_once(s, db, writers, spool));
    return bench::summarize(rates).median;
  };
  const double baseline = rate(1, false);
  table.add({1, "direct (baseline)", baseline, 1.0, "all once"});
  for (int writers : counts) {
    for (bool spool : {false, true}) {
      if (writers == 1 && !spool) continue;
      const double r = rate(writers, spool);
      table.add({writers, spool ? "spool + merge" : "direct", r, bench::number(r / baseline), "all once"});
    }
  }
  report.print(std::cout, s.json);
  return 0;
}

}  // namespace cohort::lineage
