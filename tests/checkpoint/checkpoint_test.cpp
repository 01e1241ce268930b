// The checkpointer in one process (MPI not initialised): layout, commit, integrity,
// fallback, retention, asynchronous saves and preemption requests.
#include "checkpoint/checkpoint.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include "common/error.hpp"
#include "common/json.hpp"
#include "common/process.hpp"
#include "test_util.hpp"

namespace cohort::checkpoint {
namespace {

using testing::TempDir;

struct Model {
  std::vector<float> w = testing::pattern(0, 64 * 8);
  std::vector<std::int64_t> counts = std::vector<std::int64_t>(10, 0);
  double lr = 0.1;

  explicit Model(std::int64_t step = 0) { fill(step); }

  void fill(std::int64_t step) {
    w = testing::pattern(step, 64 * 8);
    for (size_t i = 0; i < counts.size(); ++i) counts[i] = step * 100 + static_cast<std::int64_t>(i);
    lr = 0.1 + static_cast<double>(step);
  }

  State state() {
    State s;
    s.tensors = {{"model.w", DType::float32, {64, 8}, Sharding::rows, w.data()},
                 {"counts", DType::int64, {10}, Sharding::replicated, counts.data()},
                 {"lr", DType::float64, {}, Sharding::replicated, &lr}};
    s.metadata.epoch = 3;
    s.metadata.hyperparameters.set("lr", 0.1);
    s.metadata.attributes.set("run", "test");
    return s;
  }

  std::vector<TensorSlot> slots() {
    return {{"model.w", DType::float32, {64, 8}, Sharding::rows, w.data()},
            {"counts", DType::int64, {10}, Sharding::replicated, counts.data()},
            {"lr", DType::float64, {}, Sharding::replicated, &lr}};
  }

  bool operator==(const Model& o) const { return w == o.w && counts == o.counts && lr == o.lr; }
};

std::vector<std::string> quiet_warnings;
Options quiet() {
  Options o;
  o.warn = [](const std::string& m) { quiet_warnings.push_back(m); };
  return o;
}

std::vector<std::string> hidden_entries(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string()[0] == '.') out.push_back(e.path().filename().string());
  }
  return out;
}

TEST(Save, WritesTheDocumentedLayout) {
  TempDir tmp;
  Checkpointer ckpt(tmp / "ckpt", MPI_COMM_WORLD, quiet());
  Model m(7);
  SaveResult r = ckpt.save(7, m.state());
  EXPECT_EQ(r.path, tmp / "ckpt" / "step-00000007");
  EXPECT_EQ(r.bytes, 64u * 8 * 4 + 10 * 8 + 8);
  EXPECT_TRUE(std::filesystem::is_regular_file(r.path / "state.h5"));
  EXPECT_TRUE(std::filesystem::is_regular_file(r.path / "manifest.json"));
  EXPECT_EQ(testing::read_file(tmp / "ckpt" / "latest"), "step-00000007\n");
  EXPECT_TRUE(hidden_entries(tmp / "ckpt").empty());

  Manifest manifest = read_manifest(r.path);
  EXPECT_EQ(manifest.step, 7);
  EXPECT_EQ(manifest.world_size, 1);
  ASSERT_EQ(manifest.tensors.size(), 3u);
  EXPECT_EQ(manifest.tensors[0].name, "model.w");
  EXPECT_EQ(manifest.tensors[0].shape, (std::vector<std::uint64_t>{64, 8}));
  EXPECT_EQ(manifest.tensors[0].sharding, Sharding::rows);
  EXPECT_EQ(manifest.tensors[2].shape, std::vector<std::uint64_t>{});
  EXPECT_EQ(manifest.metadata.epoch, 3);
  EXPECT_EQ(manifest.metadata.attributes.at("run").as_string(), "test");

  hid_t file = H5Fopen((r.path / "state.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  EXPECT_GT(H5Lexists(file, "/tensors/model.w", H5P_DEFAULT), 0);
  for (const char* attr : {"cohort.step", "cohort.world_size", "cohort.metadata"}) {
    EXPECT_GT(H5Aexists(file, attr), 0) << attr;
  }
  H5Fclose(file);
  EXPECT_TRUE(verify(r.path).ok());
}

TEST(Save, LoadGivesBackEveryTensorAndTheMetadata) {
  TempDir tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  Model saved(5);
  ckpt.save(5, saved.state());
  Model loaded(0);
  auto slots = loaded.slots();
  auto r = ckpt.load_latest(slots);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->step, 5);
  EXPECT_TRUE(r->skipped.empty());
  EXPECT_EQ(r->saved_world_size, 1);
  EXPECT_EQ(r->metadata.epoch, 3);
  EXPECT_EQ(r->metadata.hyperparameters.at("lr").as_double(), 0.1);
  EXPECT_EQ(loaded, saved);
}

TEST(Save, EveryDtypeRoundTripsBitForBit) {
  TempDir tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  const DType all[] = {DType::float16, DType::float32, DType::float64, DType::int8,   DType::int16, DType::int32,
                       DType::int64,   DType::uint8,   DType::uint16,  DType::uint32, DType::uint64, DType::bool8};
  std::vector<std::vector<unsigned char>> data;
  State state;
  for (DType d : all) {
    std::vector<unsigned char> bytes(size_of(d) * 6);
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 37 + 11);
    if (d == DType::bool8) {
      for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = i % 2;
    }
    if (d == DType::float16) {
      for (size_t i = 0; i < bytes.size(); i += 2) bytes[i + 1] = 0x3C;  // finite halves near 1.0
    }
    data.push_back(bytes);
    state.tensors.push_back({std::string(to_string(d)), d, {2, 3}, Sharding::replicated, data.back().data()});
  }
  ckpt.save(1, state);
  std::vector<std::vector<unsigned char>> out(data.size());
  std::vector<TensorSlot> slots;
  for (size_t i = 0; i < std::size(all); ++i) {
    out[i].resize(data[i].size());
    slots.push_back({std::string(to_string(all[i])), all[i], {2, 3}, Sharding::replicated, out[i].data()});
  }
  ckpt.load(1, slots);
  for (size_t i = 0; i < std::size(all); ++i) EXPECT_EQ(out[i], data[i]) << to_string(all[i]);
  EXPECT_TRUE(std::equal(std::begin(all), std::end(all), stored_dtypes().begin(), stored_dtypes().end()));
}

TEST(Save, CompressedAndEmptyTensorsRoundTrip) {
  TempDir tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  std::vector<float> big(100000, 1.5f);
  State state;
  state.tensors.push_back({"big", DType::float32, {1000, 100}, Sharding::rows, big.data(), true});
  state.tensors.push_back({"empty", DType::float32, {0, 4}, Sharding::rows, nullptr});
  auto r = ckpt.save(2, state);
  EXPECT_LT(std::filesystem::file_size(r.path / "state.h5"), big.size() * 4 / 10);
  EXPECT_TRUE(read_manifest(r.path).tensors[0].compressed);
  std::vector<float> out(big.size());
  std::vector<TensorSlot> slots{{"big", DType::float32, {1000, 100}, Sharding::rows, out.data()},
                                {"empty", DType::float32, {0, 4}, Sharding::rows, nullptr}};
  ckpt.load(2, slots);
  EXPECT_EQ(out, big);
  EXPECT_TRUE(verify(r.path).ok());
}

TEST(Save, SavingAStepAgainReplacesIt) {
  TempDir tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  Model a(1), b(2);
  ckpt.save(4, a.state());
  ckpt.save(4, b.state());
  Model loaded;
  auto slots = loaded.slots();
  ckpt.load(4, slots);
  EXPECT_EQ(loaded, b);
  EXPECT_EQ(ckpt.steps(), std::vector<std::int64_t>{4});
  EXPECT_TRUE(hidden_entries(tmp.path()).empty());
}

void expect_input_error(const std::function<void()>& f, const std::string& fragment) {
  try {
    f();
    FAIL() << "expected an input error mentioning: " << fragment;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Save, BadInputIsAClearErrorAndCommitsNothing) {
  TempDir tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  float x = 1;
  auto save_one = [&](Tensor t, std::int64_t step = 1) { ckpt.save(step, State{{std::move(t)}, {}}); };
  expect_input_error([&] { save_one({"x", DType::float32, {}, Sharding::replicated, &x}, -1); }, "negative");
  expect_input_error([&] { save_one({"a/b", DType::float32, {}, Sharding::replicated, &x}); }, "'a/b'");
  expect_input_error([&] { save_one({"", DType::float32, {}, Sharding::replicated, &x}); }, "empty name");
  expect_input_error([&] { save_one({"x", DType::float32, {}, Sharding::rows, &x}); }, "scalar");
  expect_input_error([&] { save_one({"x", DType::float32, {4}, Sharding::replicated, nullptr}); }, "no data");
  expect_input_error(
      [&] {
        ckpt.save(1, State{{{"x", DType::float32, {}, Sharding::replicated, &x},
                            {"x", DType::float32, {}, Sharding::replicated, &x}},
                           {}});
      },
      "twice");
  EXPECT_TRUE(ckpt.steps().empty());
  EXPECT_TRUE(hidden_entries(tmp.path()).empty());
  expect_input_error([] { parse_dtype("float8"); }, "unknown dtype 'float8'");
  std::uint16_t b = 0;
  expect_input_error([&] { save_one({"b", DType::bfloat16, {}, Sharding::replicated, &b}); },
                     "tensor 'b': checkpoints do not store bfloat16 (use float16, float32,");
  EXPECT_TRUE(hidden_entries(tmp.path()).empty());
}

TEST(Save, UnwritableDirectoryIsAClearErrorAndCommitsNothing) {
  TempDir tmp;
  float x = 1;
  State state{{{"x", DType::float32, {}, Sharding::replicated, &x}}, {}};
  testing::write_file(tmp / "file", "not a directory");
  Checkpointer inside_a_file(tmp / "file" / "ckpt", MPI_COMM_WORLD, quiet());
  expect_input_error([&] { inside_a_file.save(1, state); }, "cannot create checkpoint directory");

  std::filesystem::create_directory(tmp / "ro");
  ::chmod((tmp / "ro").c_str(), 0555);
  if (::geteuid() == 0) {
    // Root ignores directory permissions: the save runs as nobody (setpriv), in a writer
    // that reports an error as a command does.
    ::chmod(tmp.path().c_str(), 0755);
    auto r = run_process({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", COHORT_CRASH_WRITER,
                          (tmp / "ro").string(), "1", "1"});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("cannot write in checkpoint directory"), std::string::npos) << r.err;
  } else {
    Checkpointer read_only(tmp / "ro", MPI_COMM_WORLD, quiet());
    expect_input_error([&] { read_only.save(1, state); }, "cannot write in checkpoint directory");
  }
  EXPECT_TRUE(Checkpointer(tmp / "ro", MPI_COMM_WORLD, quiet()).steps().empty());
  EXPECT_TRUE(std::filesystem::is_empty(tmp / "ro")) << "the refused save left something behind";
  ::chmod((tmp / "ro").c_str(), 0755);
}

TEST(Load, NoCheckpointYetReturnsNothing) {
  TempDir tmp;
  Checkpointer ckpt(tmp / "never-written", MPI_COMM_WORLD, quiet());
  Model m;
  auto slots = m.slots();
  EXPECT_FALSE(ckpt.load_latest(slots));
}

TEST(Load, SlotsThatDoNotMatchAreAnInputErrorNotAFallback) {
  TempDir tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  Model m(1);
  ckpt.save(1, m.state());
  ckpt.save(2, m.state());
  std::vector<double> wrong(64 * 8);
  std::vector<TensorSlot> dtype{{"model.w", DType::float64, {64, 8}, Sharding::rows, wrong.data()}};
  expect_input_error([&] { ckpt.load_latest(dtype); }, "holds float32, the slot is float64");
  std::vector<TensorSlot> shape{{"model.w", DType::float32, {64, 4}, Sharding::rows, wrong.data()}};
  expect_input_error([&] { ckpt.load_latest(shape); }, "shape [64, 8]");
  std::vector<TensorSlot> name{{"model.v", DType::float32, {64, 8}, Sharding::rows, wrong.data()}};
  expect_input_error([&] { ckpt.load_latest(name); }, "(it has: model.w, counts, lr)");
  expect_input_error([&] { ckpt.load(9, name); }, "no checkpoint step-00000009");
}

TEST(Load, AReplicatedSlotTakesATensorSavedSharded) {
  TempDir tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  Model m(3);
  ckpt.save(3, m.state());
  std::vector<float> whole(64 * 8);
  std::vector<TensorSlot> slots{{"model.w", DType::float32, {64, 8}, Sharding::replicated, whole.data()}};
  ckpt.load(3, slots);
  EXPECT_EQ(whole, m.w);
}

TEST(Integrity, AFlippedByteFailsVerifyNamingTheTensor) {
  TempDir tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  Model m(1);
  auto r = ckpt.save(1, m.state());
  testing::flip_byte(r.path, "counts", 13);
  VerifyReport report = verify(r.path);
  ASSERT_FALSE(report.ok());
  ASSERT_EQ(report.problems.size(), 1u);
  EXPECT_EQ(report.problems[0].tensor, "counts");
  EXPECT_NE(report.problems[0].message.find("checksum mismatch"), std::string::npos);
}

TEST(Integrity, LoadLatestFallsBackFromAFlippedByteAndSaysWhy) {
  TempDir tmp;
  quiet_warnings.clear();
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  Model m10(10), m20(20);
  ckpt.save(10, m10.state());
  auto r20 = ckpt.save(20, m20.state());
  testing::flip_byte(r20.path, "model.w", 100);
  Model loaded;
  auto slots = loaded.slots();
  auto r = ckpt.load_latest(slots);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->step, 10);
  EXPECT_EQ(loaded, m10);
  ASSERT_EQ(r->skipped.size(), 1u);
  EXPECT_EQ(r->skipped[0].step, 20);
  EXPECT_NE(r->skipped[0].reason.find("tensor 'model.w': checksum mismatch"), std::string::npos);
  ASSERT_EQ(quiet_warnings.size(), 1u);
  EXPECT_NE(quiet_warnings[0].find("loaded step-00000010"), std::string::npos) << quiet_warnings[0];
  EXPECT_NE(quiet_warnings[0].find("step-00000020 is damaged"), std::string::npos) << quiet_warnings[0];
}

TEST(Integrity, TruncatedStateFileFallsBack) {
  TempDir tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  Model m1(1), m2(2);
  ckpt.save(1, m1.state());
  auto r2 = ckpt.save(2, m2.state());
  std::filesystem::resize_file(r2.path / "state.h5", std::filesystem::file_size(r2.path / "state.h5") / 2);
  EXPECT_FALSE(verify(r2.path).ok());
  Model loaded;
  auto slots = loaded.slots();
  auto r = ckpt.load_latest(slots);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->step, 1);
  EXPECT_NE(r->skipped.at(0).reason.find("truncated"), std::string::npos) << r->skipped[0].reason;
  EXPECT_EQ(loaded, m1);
}

TEST(Integrity, MissingOrGarbledManifestFallsBack) {
  TempDir tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  Model m1(1), m2(2);
  ckpt.save(1, m1.state());
  auto r2 = ckpt.save(2, m2.state());
  auto r3 = ckpt.save(3, m2.state());
  std::filesystem::remove(r3.path / "manifest.json");
  testing::write_file(r2.path / "manifest.json", "{\"format\": \"cohort-checkpoint\", ");
  Model loaded;
  auto slots = loaded.slots();
  auto r = ckpt.load_latest(slots);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->step, 1);
  ASSERT_EQ(r->skipped.size(), 2u);
  EXPECT_EQ(r->skipped[0].step, 3);
  EXPECT_EQ(r->skipped[1].step, 2);
  EXPECT_NE(r->skipped[1].reason.find("manifest.json:1:"), std::string::npos) << r->skipped[1].reason;
  EXPECT_FALSE(verify(r3.path).ok());
}

TEST(Integrity, ADamagedShapeInTheManifestFallsBackRatherThanBlamingTheCaller) {
  TempDir tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  Model m1(1), m2(2);
  ckpt.save(1, m1.state());
  auto r2 = ckpt.save(2, m2.state());
  // Still valid JSON, but no longer what the checkpoint holds.
  auto manifest = json::parse(testing::read_file(r2.path / "manifest.json"));
  json::Value* tensors = nullptr;
  for (auto& [key, value] : manifest.as_object()) {
    if (key == "tensors") tensors = &value;
  }
  ASSERT_NE(tensors, nullptr);
  auto& w = tensors->as_array()[0];
  ASSERT_EQ(w.at("name").as_string(), "model.w");
  w.set("shape", json::Array{json::Value(65), json::Value(8)});
  w.set("bytes", 65 * 8 * 4);
  testing::write_file(r2.path / "manifest.json", json::write(manifest, 2));
  Model loaded;
  auto slots = loaded.slots();
  auto r = ckpt.load_latest(slots);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->step, 1);
  EXPECT_NE(r->skipped.at(0).reason.find("pieces: cover rows 0 to 64 of a tensor of 65 rows"), std::string::npos)
      << r->skipped[0].reason;
  EXPECT_EQ(loaded, m1);
}

TEST(Integrity, EveryCheckpointDamagedIsAnErrorNotAFreshStart) {
  TempDir tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  Model m(1);
  auto r = ckpt.save(1, m.state());
  testing::flip_byte(r.path, "lr", 0);
  auto slots = m.slots();
  try {
    ckpt.load_latest(slots);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::failure);
    EXPECT_NE(std::string(e.what()).find("no checkpoint in"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tensor 'lr'"), std::string::npos) << e.what();
  }
}

TEST(Commit, LeftoversOfInterruptedSavesAreIgnoredThenCleaned) {
  TempDir tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  Model m1(1);
  ckpt.save(1, m1.state());
  // What a crash mid-save or mid-prune leaves behind.
  std::filesystem::create_directory(tmp / ".step-00000002.tmp-0123456789abcdef");
  testing::write_file(tmp / ".step-00000002.tmp-0123456789abcdef" / "state.h5", "partial");
  std::filesystem::create_directory(tmp / ".step-00000000.deleting-0123456789abcdef");
  testing::write_file(tmp / ".latest.tmp-0123456789abcdef", "step-00000002\n");
  EXPECT_EQ(ckpt.steps(), std::vector<std::int64_t>{1});
  EXPECT_EQ(list(tmp.path()).size(), 1u);
  Model loaded;
  auto slots = loaded.slots();
  EXPECT_EQ(ckpt.load_latest(slots)->step, 1);
  ckpt.save(3, m1.state());
  EXPECT_TRUE(hidden_entries(tmp.path()).empty());
}

TEST(Commit, ACheckpointRenamedInBeforeLatestWasUpdatedIsUsed) {
  TempDir tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  Model m1(1), m2(2);
  ckpt.save(1, m1.state());
  ckpt.save(2, m2.state());
  // A crash after the rename, before `latest` was replaced.
  testing::write_file(tmp / "latest", "step-00000001\n");
  Model loaded;
  auto slots = loaded.slots();
  EXPECT_EQ(ckpt.load_latest(slots)->step, 2);
  EXPECT_EQ(loaded, m2);
}

TEST(Retention, KeepsTheLastNAndEveryMthStep) {
  TempDir tmp;
  Options options = quiet();
  options.retention = {2, 10};
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, options);
  Model m;
  std::vector<std::int64_t> pruned;
  for (std::int64_t step = 5; step <= 35; step += 5) {
    auto r = ckpt.save(step, m.state());
    pruned.insert(pruned.end(), r.pruned.begin(), r.pruned.end());
  }
  EXPECT_EQ(ckpt.steps(), (std::vector<std::int64_t>{10, 20, 30, 35}));
  EXPECT_EQ(pruned, (std::vector<std::int64_t>{5, 15, 25}));
  EXPECT_TRUE(hidden_entries(tmp.path()).empty());
}

TEST(Retention, PruneNeverRemovesTheNewestGoodCheckpoint) {
  TempDir tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  Model m;
  for (std::int64_t step : {1, 2, 3}) ckpt.save(step, m.state());
  testing::flip_byte(checkpoint_path(tmp.path(), 3), "counts", 0);
  auto removed = prune(tmp.path(), {1, 0});
  EXPECT_EQ(removed, std::vector<std::int64_t>{1});
  EXPECT_EQ(ckpt.steps(), (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(testing::read_file(tmp / "latest"), "step-00000003\n");
  expect_input_error([&] { prune(tmp.path(), {-1, 0}); }, "must not be negative");
  expect_input_error([&] { prune(tmp / "nope", {1, 0}); }, "is not a directory");
}

TEST(Retention, PruningOnlyByMultiplesRepointsLatest) {
  TempDir tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  Model m;
  for (std::int64_t step : {10, 20, 25}) ckpt.save(step, m.state());
  testing::flip_byte(checkpoint_path(tmp.path(), 25), "counts", 0);
  EXPECT_EQ(prune(tmp.path(), {0, 10}), std::vector<std::int64_t>{25});
  EXPECT_EQ(testing::read_file(tmp / "latest"), "step-00000020\n");
}

TEST(Async, SaveAsyncCopiesTheStateBeforeReturning) {
  TempDir tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  Model m(1);
  auto future = ckpt.save_async(1, m.state());
  m.fill(99);  // training goes on and changes the tensors
  SaveResult r = future.get();
  EXPECT_EQ(r.step, 1);
  Model loaded;
  auto slots = loaded.slots();
  ckpt.load(1, slots);
  EXPECT_EQ(loaded, Model(1));
}

// The second save reuses the first one's staging buffers and copies into them on several
// threads, whose shares begin and end inside tensors: every byte must still be the one the
// caller had when save_async returned.
TEST(Async, ALargeStateIsCopiedWholeIntoReusedBuffers) {
  TempDir tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  const std::vector<std::uint64_t> sizes = {(23u << 20) + 3, 7, (41u << 20) + 1};  // > 64 MiB, odd
  std::vector<std::vector<std::uint8_t>> data;
  for (auto n : sizes) data.emplace_back(n);
  auto fill = [&](std::uint8_t seed) {
    for (size_t t = 0; t < data.size(); ++t) {
      for (size_t i = 0; i < data[t].size(); ++i) data[t][i] = static_cast<std::uint8_t>(seed + i * 31 + t);
    }
  };
  auto state = [&] {
    State s;
    for (size_t t = 0; t < data.size(); ++t) {
      s.tensors.push_back({"t" + std::to_string(t), DType::uint8, {static_cast<std::int64_t>(data[t].size())},
                           Sharding::replicated, data[t].data()});
    }
    return s;
  };
  for (std::uint8_t step : {1, 2}) {
    fill(step);
    auto future = ckpt.save_async(step, state());
    fill(99);  // training goes on and changes the tensors
    future.get();
  }
  const auto expected = [&] {
    fill(2);
    return data;
  }();
  fill(0);
  std::vector<TensorSlot> slots;
  for (size_t t = 0; t < data.size(); ++t) {
    slots.push_back({"t" + std::to_string(t), DType::uint8, {static_cast<std::int64_t>(data[t].size())},
                     Sharding::replicated, data[t].data()});
  }
  EXPECT_EQ(ckpt.load_latest(slots)->step, 2);
  EXPECT_TRUE(data == expected);
}

TEST(Async, ABadThreadCountIsNamedAndLosesNothing) {
  TempDir tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  Model m(1);
  ckpt.save(1, m.state());
  ::setenv("COHORT_CKPT_THREADS", "many", 1);
  struct Unset {
    ~Unset() { ::unsetenv("COHORT_CKPT_THREADS"); }
  } unset;
  try {
    ckpt.save_async(2, m.state());
    FAIL() << "save_async took COHORT_CKPT_THREADS=many";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("COHORT_CKPT_THREADS=many"), std::string::npos) << e.what();
  }
  EXPECT_EQ(ckpt.steps(), (std::vector<std::int64_t>{1}));
  ::setenv("COHORT_CKPT_THREADS", "2", 1);
  EXPECT_EQ(ckpt.save_async(2, m.state()).get().step, 2);  // the failed call left no save in flight
}

TEST(Async, SavesCommitInOrderWithSeveralInFlight) {
  TempDir tmp;
  Options options = quiet();
  options.max_saves_in_flight = 2;
  options.retention = {2, 0};
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, options);
  Model m;
  std::vector<std::future<SaveResult>> futures;
  for (std::int64_t step = 1; step <= 5; ++step) {
    m.fill(step);
    futures.push_back(ckpt.save_async(step, m.state()));
  }
  for (size_t i = 0; i < futures.size(); ++i) EXPECT_EQ(futures[i].get().step, static_cast<std::int64_t>(i + 1));
  EXPECT_EQ(ckpt.steps(), (std::vector<std::int64_t>{4, 5}));
  Model loaded;
  auto slots = loaded.slots();
  EXPECT_EQ(ckpt.load_latest(slots)->step, 5);
  EXPECT_EQ(loaded, Model(5));
}

TEST(Async, AFailedSaveThrowsFromItsFuture) {
  TempDir tmp;
  testing::write_file(tmp / "file", "x");
  Checkpointer ckpt(tmp / "file" / "ckpt", MPI_COMM_WORLD, quiet());
  Model m;
  auto future = ckpt.save_async(1, m.state());
  EXPECT_THROW(future.get(), Error);
  expect_input_error([&] { ckpt.save_async(-3, m.state()); }, "negative");
}

TEST(Preemption, ASignalRequestsACheckpointUntilAcknowledged) {
  PreemptionWatch watch;
  EXPECT_FALSE(watch.requested());
  std::raise(SIGUSR1);
  EXPECT_TRUE(watch.requested());
  EXPECT_TRUE(watch.requested());
  watch.acknowledge();
  EXPECT_FALSE(watch.requested());
}

TEST(Preemption, TheFlagFileRequestsACheckpointAndAcknowledgeRemovesIt) {
  TempDir tmp;
  auto flag = tmp / "checkpoint-now";
  ::setenv("COHORT_CHECKPOINT_REQUEST", flag.c_str(), 1);
  PreemptionWatch watch;
  ::unsetenv("COHORT_CHECKPOINT_REQUEST");
  EXPECT_FALSE(watch.requested());
  testing::write_file(flag, "");
  EXPECT_TRUE(watch.requested());
  watch.acknowledge();
  EXPECT_FALSE(std::filesystem::exists(flag));
  EXPECT_FALSE(watch.requested());
}

TEST(Preemption, OnlyOneWatchAtATime) {
  PreemptionWatch first;
  EXPECT_THROW(PreemptionWatch second, Error);
}

TEST(Tools, ReadManifestRejectsAPathThatIsNotACheckpoint) {
  TempDir tmp;
  expect_input_error([&] { read_manifest(tmp.path()); }, "is not a checkpoint");
  expect_input_error([&] { list(tmp / "missing"); }, "is not a directory");
  expect_input_error([&] { verify(tmp / "missing"); }, "is not a checkpoint");
}

TEST(Tools, ReadTensorChecksItsChecksum) {
  TempDir tmp;
  Checkpointer ckpt(tmp.path(), MPI_COMM_WORLD, quiet());
  Model m(4);
  auto r = ckpt.save(4, m.state());
  Manifest manifest = read_manifest(r.path);
  std::vector<std::byte> bytes;
  read_tensor(r.path, manifest.tensors[0], bytes);
  ASSERT_EQ(bytes.size(), m.w.size() * 4);
  EXPECT_EQ(std::memcmp(bytes.data(), m.w.data(), bytes.size()), 0);
  testing::flip_byte(r.path, "model.w", 7);
  EXPECT_THROW(read_tensor(r.path, manifest.tensors[0], bytes), Error);
}

}  // namespace
}  // namespace cohort::checkpoint
