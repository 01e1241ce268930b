// `cohort ckpt` as users meet it: tables, --json, exit codes and errors.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>

#include "checkpoint/checkpoint.hpp"
#include "common/json.hpp"
#include "common/process.hpp"
#include "test_util.hpp"

namespace cohort::checkpoint {
namespace {

ProcessResult cohort(std::vector<std::string> args) {
  const char* bin = std::getenv("COHORT_BIN");
  args.insert(args.begin(), bin ? bin : "cohort");
  return run_process(args);
}

class CkptCli : public ::testing::Test {
 protected:
  void SetUp() override {
    Options options;
    options.warn = [](const std::string&) {};
    Checkpointer ckpt(dir_.path(), MPI_COMM_WORLD, options);
    for (std::int64_t step : {10, 20, 30}) {
      auto w = testing::pattern(step, 12);
      State state{{{"layer.w", DType::float32, {3, 4}, Sharding::rows, w.data()}}, {}};
      state.metadata.epoch = step / 10;
      ckpt.save(step, state);
    }
  }
  std::string dir() const { return dir_.path().string(); }
  std::string step(std::int64_t s) const { return checkpoint_path(dir_.path(), s).string(); }

  testing::TempDir dir_;
};

TEST_F(CkptCli, LsListsCheckpointsOldestFirstAndMarksLatest) {
  auto r = cohort({"ckpt", "ls", dir()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("STEP", 0), 0u) << r.out;
  EXPECT_LT(r.out.find("step-00000010"), r.out.find("step-00000030"));
  auto j = json::parse(cohort({"ckpt", "ls", dir(), "--json"}).out);
  ASSERT_EQ(j.as_array().size(), 3u);
  EXPECT_EQ(j.as_array()[2].at("step").as_int(), 30);
  EXPECT_TRUE(j.as_array()[2].at("latest").as_bool());
  EXPECT_FALSE(j.as_array()[0].at("latest").as_bool());
  EXPECT_EQ(j.as_array()[0].at("bytes").as_int(), 48);
}

TEST_F(CkptCli, InspectShowsTensorsAndMetadataAsTableAndJson) {
  auto r = cohort({"ckpt", "inspect", step(20)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("layer.w"), std::string::npos);
  EXPECT_NE(r.out.find("[3, 4]"), std::string::npos);
  auto j = json::parse(cohort({"ckpt", "inspect", step(20), "--json"}).out);
  EXPECT_EQ(j.at("step").as_int(), 20);
  EXPECT_EQ(j.at("metadata").at("epoch").as_int(), 2);
  EXPECT_EQ(j.at("tensors").as_array()[0].at("dtype").as_string(), "float32");
  // A directory means its newest checkpoint.
  EXPECT_EQ(json::parse(cohort({"ckpt", "inspect", dir(), "--json"}).out).at("step").as_int(), 30);
}

TEST_F(CkptCli, VerifyExitsZeroOnlyWhenEveryChecksumMatches) {
  EXPECT_EQ(cohort({"ckpt", "verify", dir()}).exit_code, 0);
  testing::flip_byte(step(20), "layer.w", 5);
  auto one = cohort({"ckpt", "verify", step(20)});
  EXPECT_EQ(one.exit_code, 1);
  EXPECT_NE(one.out.find("tensor 'layer.w': checksum mismatch"), std::string::npos) << one.out;
  auto all = json::parse(cohort({"ckpt", "verify", dir(), "--json"}).out);
  EXPECT_TRUE(all.as_array()[0].at("ok").as_bool());
  EXPECT_FALSE(all.as_array()[1].at("ok").as_bool());
  EXPECT_EQ(all.as_array()[1].at("problems").as_array()[0].at("tensor").as_string(), "layer.w");
  EXPECT_EQ(cohort({"ckpt", "verify", step(30)}).exit_code, 0);
}

TEST_F(CkptCli, PruneKeepsTheNewest) {
  auto r = cohort({"ckpt", "prune", dir(), "--keep-last", "1", "--keep-every", "20"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("removed " + step(10)), std::string::npos) << r.out;
  EXPECT_EQ(list(dir_.path()).size(), 2u);
  auto bad = cohort({"ckpt", "prune", dir(), "--keep-last", "0"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.err, "cohort: ckpt: prune: --keep-last 0: must be at least 1\n");
}

TEST_F(CkptCli, APathThatIsNotACheckpointIsAUsageErrorNamingIt) {
  auto r = cohort({"ckpt", "inspect", "/etc"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("cohort: ckpt: inspect: /etc is neither a checkpoint"), std::string::npos) << r.err;
  EXPECT_EQ(cohort({"ckpt", "verify", "/no/such/place"}).exit_code, 2);
  EXPECT_EQ(cohort({"ckpt", "ls"}).exit_code, 2);
  EXPECT_EQ(cohort({"ckpt", "ls", dir(), "--frobnicate"}).exit_code, 2);
  EXPECT_EQ(cohort({"ckpt", "frobnicate"}).exit_code, 2);
  EXPECT_EQ(cohort({"ckpt", "--help"}).exit_code, 0);
}

}  // namespace
}  // namespace cohort::checkpoint

namespace cohort::checkpoint {
namespace {

// The throughput table's row for one direction (write or read) and path (raw or checkpoint).
const json::Value& throughput(const json::Value& report, const std::string& io, const std::string& path) {
  for (const auto& row : report.at("tables").as_array().at(0).at("rows").as_array()) {
    if (row.at("io").as_string() == io && row.at("path").as_string().rfind(path, 0) == 0) return row;
  }
  throw std::runtime_error("no row for " + io + " " + path);
}

TEST(CkptBench, ReportsThroughputAgainstRawAndCleansUpUnlessKept) {
  testing::TempDir tmp;
  auto r = cohort({"bench", "ckpt", "--dir", tmp.path().string(), "--bytes", "1M", "--tensors", "4", "--repeat", "1",
                   "--async", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = json::parse(r.out);
  for (const char* io : {"write", "read"}) {
    for (const char* path : {"raw", "checkpoint"}) EXPECT_TRUE(throughput(j, io, path).at("rate").is_number()) << io << path;
  }
  for (const char* key : {"sync_save_s", "async_blocked_s"}) EXPECT_TRUE(j.at("summary").at(key).is_number()) << key;
  EXPECT_EQ(j.at("context").at("bytes").as_int(), 1 << 20);
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path()));

  auto kept = cohort({"bench", "ckpt", "--dir", tmp.path().string(), "--bytes", "64K", "--tensors", "2", "--repeat",
                      "1", "--keep"});
  ASSERT_EQ(kept.exit_code, 0) << kept.err;
  EXPECT_NE(kept.out.find("ratio"), std::string::npos) << kept.out;
  const std::string marker = "checkpoint kept in ";
  const auto at = kept.out.find(marker);
  ASSERT_NE(at, std::string::npos) << kept.out;
  const std::string kept_dir = kept.out.substr(at + marker.size(), kept.out.find('\n', at) - at - marker.size());
  EXPECT_EQ(std::filesystem::path(kept_dir).parent_path().parent_path(), tmp.path()) << kept_dir;
  EXPECT_EQ(cohort({"ckpt", "verify", kept_dir}).exit_code, 0);
  EXPECT_EQ(cohort({"bench", "ckpt", "--dir", tmp.path().string(), "--bytes", "lots"}).exit_code, 2);
}

TEST(CkptBench, RanksWithOnlyTheLaunchContractBenchTogetherWithoutMpi) {
  testing::TempDir tmp;
  const char* bin = std::getenv("COHORT_BIN");
  const std::vector<std::string> argv{bin ? bin : "cohort", "bench", "ckpt", "--dir", tmp.path().string(), "--bytes",
                                      "64K", "--tensors", "2", "--repeat", "2", "--async", "--json"};
  // Rank 1 runs beside rank 0 as torchrun would start it; only rank 0 reports.
  SpawnOptions second;
  second.environment = environment_with({"RANK=1", "WORLD_SIZE=2"});
  second.out = Stream::file((tmp.path() / "rank-1.out").string());
  second.err = Stream::file((tmp.path() / "rank-1.err").string());
  Process rank1 = spawn(argv, second);
  RunOptions first;
  first.env = {"RANK=0", "WORLD_SIZE=2"};
  first.timeout = std::chrono::minutes(3);
  auto r = run_process(argv, first);
  const int status = rank1.wait();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << testing::read_file(tmp.path() / "rank-1.err");
  EXPECT_EQ(testing::read_file(tmp.path() / "rank-1.out"), "");
  auto j = json::parse(r.out);
  EXPECT_EQ(j.at("context").at("ranks").as_int(), 2);
  EXPECT_EQ(j.at("context").at("bytes").as_int(), 64 << 10);
  for (const char* io : {"write", "read"}) EXPECT_TRUE(throughput(j, io, "checkpoint").at("rate").is_number()) << io;
  EXPECT_TRUE(j.at("summary").at("async_blocked_s").is_number());
  // Nothing of the bench is left but the ranks' agreement and the two ranks' logs.
  for (const auto& entry : std::filesystem::directory_iterator(tmp.path())) {
    const auto name = entry.path().filename().string();
    EXPECT_TRUE(name == ".agreement-0" || name.rfind("rank-1.", 0) == 0) << name;
  }
}

TEST(CkptBench, LeavesCheckpointsAlreadyInItsDirectoryAlone) {
  testing::TempDir tmp;
  auto r = cohort({"bench", "ckpt", "--dir", tmp.path().string(), "--bytes", "64K", "--tensors", "2", "--repeat", "1",
                   "--keep"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto before = std::distance(std::filesystem::directory_iterator(tmp.path()), {});
  // A second bench in the same place, as on a run's scratch directory.
  ASSERT_EQ(cohort({"bench", "ckpt", "--dir", tmp.path().string(), "--bytes", "64K", "--tensors", "2", "--repeat",
                    "1"}).exit_code, 0);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(tmp.path()), {}), before);
  for (const auto& entry : std::filesystem::directory_iterator(tmp.path())) {
    EXPECT_EQ(cohort({"ckpt", "verify", (entry.path() / "ckpt").string()}).exit_code, 0) << entry.path();
  }
}

}  // namespace
}  // namespace cohort::checkpoint

namespace cohort::checkpoint {
namespace {

TEST(CkptExport, SafetensorsAndNpzHoldTheTensorsNumpyExpects) {
  testing::TempDir tmp;
  std::vector<float> w(12);
  for (int i = 0; i < 12; ++i) w[static_cast<size_t>(i)] = static_cast<float>(i) * 0.5f;
  std::vector<std::int64_t> ids{0, 7, 14, 21, 28};
  std::vector<std::uint16_t> half{0x3C00, 0xC100};  // 1.0 and -2.5 in IEEE half
  std::vector<std::uint8_t> flags{1, 0, 1};
  double lr = 0.125;
  {
    Checkpointer ckpt(tmp / "ckpt");
    ckpt.save(9, State{{{"w", DType::float32, {3, 4}, Sharding::rows, w.data()},
                        {"ids", DType::int64, {5}, Sharding::replicated, ids.data()},
                        {"half", DType::float16, {2}, Sharding::replicated, half.data()},
                        {"flags", DType::bool8, {3}, Sharding::replicated, flags.data()},
                        {"lr", DType::float64, {}, Sharding::replicated, &lr}},
                       {}});
  }
  const std::string reader = std::string(COHORT_CKPT_TEST_SOURCE_DIR) + "/export_read.py";
  for (std::string format : {"safetensors", "npz"}) {
    auto out = (tmp / ("model." + format)).string();
    auto r = cohort({"ckpt", "export", (tmp / "ckpt").string(), "--to", format, out});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto py = run_process({"/usr/bin/python3", reader, out});
    EXPECT_EQ(py.exit_code, 0) << format << ": " << py.out << py.err;
  }
  // A damaged tensor stops the export and leaves no output behind.
  testing::flip_byte(checkpoint_path(tmp / "ckpt", 9), "ids", 3);
  auto bad = cohort({"ckpt", "export", checkpoint_path(tmp / "ckpt", 9).string(), "--to", "npz",
                     (tmp / "bad.npz").string()});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("checksum mismatch"), std::string::npos) << bad.err;
  for (const auto& e : std::filesystem::directory_iterator(tmp.path())) {
    EXPECT_EQ(e.path().filename().string().find("bad.npz"), std::string::npos) << e.path();
  }
  EXPECT_EQ(cohort({"ckpt", "export", (tmp / "ckpt").string(), "--to", "pickle", "x"}).exit_code, 2);
}

TEST(CkptExport, ATensorNamedLikeSafetensorsMetadataIsRefusedNotMerged) {
  testing::TempDir tmp;
  float x = 1;
  Checkpointer(tmp / "ckpt").save(1, State{{{"__metadata__", DType::float32, {}, Sharding::replicated, &x}}, {}});
  auto r = cohort({"ckpt", "export", (tmp / "ckpt").string(), "--to", "safetensors", (tmp / "out").string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("reserves that name"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp / "out"));
  EXPECT_EQ(cohort({"ckpt", "export", (tmp / "ckpt").string(), "--to", "npz", (tmp / "out.npz").string()}).exit_code, 0);
}

}  // namespace
}  // namespace cohort::checkpoint

namespace cohort::checkpoint {
namespace {

TEST(Interop, ACheckpointWrittenWithH5pyFromTheFormatDocumentLoads) {
  // Version 2, rank files indexed by virtual datasets, as cohort writes now; and version 1,
  // the single file that older writers made.
  for (int version : {2, 1}) {
    SCOPED_TRACE("format version " + std::to_string(version));
    testing::TempDir tmp;
    auto py = run_process({"/usr/bin/python3", std::string(COHORT_CKPT_TEST_SOURCE_DIR) + "/h5py_write.py",
                           (tmp / "ckpt").string(), "--version", std::to_string(version)});
    ASSERT_EQ(py.exit_code, 0) << py.out << py.err;
    const auto step = checkpoint_path(tmp / "ckpt", 5);
    EXPECT_EQ(read_manifest(step).format_version, version);
    EXPECT_EQ(std::filesystem::exists(step / "rank-00001.h5"), version == 2);
    EXPECT_TRUE(verify(step).ok());
    std::vector<float> emb(18);
    std::int64_t count = 0;
    std::vector<TensorSlot> slots{{"emb", DType::float32, {6, 3}, Sharding::rows, emb.data()},
                                  {"count", DType::int64, {}, Sharding::replicated, &count}};
    Checkpointer ckpt(tmp / "ckpt");
    auto r = ckpt.load_latest(slots);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->step, 5);
    EXPECT_TRUE(r->skipped.empty());
    EXPECT_EQ(r->metadata.epoch, 2);
    EXPECT_EQ(r->metadata.attributes.at("writer").as_string(), "h5py");
    for (int i = 0; i < 18; ++i) EXPECT_EQ(emb[static_cast<size_t>(i)], static_cast<float>(i) / 4) << i;
    EXPECT_EQ(count, 42);
  }
}

}  // namespace
}  // namespace cohort::checkpoint
