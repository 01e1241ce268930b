// The lineage store as its writers and readers rely on it: retried writes do not
// duplicate, histories walk up the chain, properties keep their types, bad files are
// refused with a way out, and many processes writing at once lose nothing.
#include "lineage/store.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "common/error.hpp"
#include "common/process.hpp"
#include "tests/common/temp_dir.hpp"

namespace cohort::lineage {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// The message of the error `body` throws, and whether it was the caller's to fix.
std::pair<std::string, ErrorKind> error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& e) {
    return {e.what(), e.kind()};
  }
  ADD_FAILURE() << "no error thrown";
  return {};
}

TEST(Store, ArtifactPutTwiceIsOneArtifactWithBothPutsProperties) {
  TempDir t;
  Store store = Store::open(t / "lineage.db");
  auto first = store.put_artifact(
      {.type = "Model", .uri = "/m/a.pt", .digest = "sha256:1", .properties = {{"epochs", std::int64_t{3}}}});
  auto again =
      store.put_artifact({.type = "Model", .uri = "/m/a.pt", .digest = "sha256:1", .properties = {{"loss", 0.25}}});
  EXPECT_EQ(first, again);
  ASSERT_EQ(store.artifacts("Model").size(), 1u);
  const Artifact a = *store.artifact(first);
  EXPECT_EQ(std::get<std::int64_t>(a.properties.at("epochs")), 3);
  EXPECT_EQ(std::get<double>(a.properties.at("loss")), 0.25);
  // New content at the same place is another artifact.
  auto changed = store.put_artifact({.type = "Model", .uri = "/m/a.pt", .digest = "sha256:2"});
  EXPECT_NE(changed, first);
  EXPECT_EQ(store.artifacts_at("/m/a.pt").size(), 2u);
  EXPECT_EQ(store.artifacts_at("/m/a.pt").front().id, changed);  // newest first
}

TEST(Store, NamedExecutionsAndContextsAreFoundAgainAndUnnamedOnesAreNew) {
  TempDir t;
  Store store = Store::open(t / "lineage.db");
  auto job = store.put_execution({.type = "Launch", .name = "job-812", .state = "RUNNING"});
  EXPECT_EQ(store.put_execution({.type = "Launch", .name = "job-812", .properties = {{"restarts", std::int64_t{1}}}}),
            job);
  const Execution e = *store.execution("Launch", "job-812");
  EXPECT_EQ(e.state, "RUNNING");  // a put without a state keeps the one recorded
  EXPECT_EQ(std::get<std::int64_t>(e.properties.at("restarts")), 1);
  store.update_execution(job, "COMPLETE", {{"outcome", std::string("succeeded")}});
  EXPECT_EQ(store.execution(job)->state, "COMPLETE");
  EXPECT_NE(store.put_execution({.type = "Launch"}), store.put_execution({.type = "Launch"}));
  EXPECT_EQ(store.executions("Launch").size(), 3u);

  auto exp = store.put_context({.type = "Experiment", .name = "lr-sweep"});
  EXPECT_EQ(store.put_context({.type = "Experiment", .name = "lr-sweep"}), exp);
  EXPECT_NE(store.put_context({.type = "PipelineRun", .name = "lr-sweep"}), exp);
  store.associate(exp, job);
  store.associate(exp, job);
  ASSERT_EQ(store.executions_in(exp).size(), 1u);
  EXPECT_EQ(store.contexts_of_execution(job).at(0).name, "lr-sweep");
}

TEST(Store, PropertiesKeepTheirTypesAcrossReopening) {
  TempDir t;
  std::int64_t id = 0;
  {
    Store store = Store::open(t / "lineage.db");
    id = store.put_artifact(
        {.type = "Metrics",
         .uri = "/m.json",
         .properties = {{"step", std::int64_t{1} << 40}, {"loss", 0.125}, {"note", std::string("42")}}});
  }
  Store store = Store::open(t / "lineage.db");
  const Artifact a = *store.artifact(id);
  EXPECT_EQ(std::get<std::int64_t>(a.properties.at("step")), std::int64_t{1} << 40);
  EXPECT_EQ(std::get<double>(a.properties.at("loss")), 0.125);
  EXPECT_EQ(std::get<std::string>(a.properties.at("note")), "42");  // text that looks like a number stays text
}

TEST(Store, AncestryWalksFromACheckpointUpToTheDatasetAndTheTrialsParameters) {
  TempDir t;
  Store store = Store::open(t / "lineage.db");
  auto raw = store.put_artifact({.type = "Dataset", .uri = "/data/raw.csv"});
  auto prep = store.put_execution({.type = "PipelineTask", .name = "run1/prep", .state = "COMPLETE"});
  auto clean = store.put_artifact({.type = "Dataset", .uri = "/data/clean.csv"});
  store.put_event(prep, raw, EventType::input, "raw");
  store.put_event(prep, clean, EventType::output, "clean");
  auto trial = store.put_execution({.type = "Trial",
                                    .name = "/sweeps/lr#3",
                                    .state = "COMPLETE",
                                    .properties = {{"param.lr", std::string("0.01")}}});
  auto ckpt = store.put_artifact({.type = "Checkpoint", .uri = "/ckpt/step-100"});
  store.put_event(trial, clean, EventType::input, "data");
  store.put_event(trial, clean, EventType::input, "data");  // recorded again: still one event
  store.put_event(trial, ckpt, EventType::output, "checkpoint");
  auto exp = store.put_context({.type = "Experiment", .name = "/sweeps/lr"});
  store.associate(exp, trial);

  const Ancestry a = store.ancestry(ckpt);
  ASSERT_EQ(a.produced_by.size(), 1u);
  const auto& made = a.produced_by[0];
  EXPECT_EQ(made.execution.id, trial);
  EXPECT_EQ(std::get<std::string>(made.execution.properties.at("param.lr")), "0.01");
  ASSERT_EQ(made.contexts.size(), 1u);
  EXPECT_EQ(made.contexts[0].name, "/sweeps/lr");
  ASSERT_EQ(made.inputs.size(), 1u);
  EXPECT_EQ(made.inputs[0].path, "data");
  const Ancestry& data = made.inputs[0].history;
  EXPECT_EQ(data.artifact.uri, "/data/clean.csv");
  ASSERT_EQ(data.produced_by.size(), 1u);
  EXPECT_EQ(data.produced_by[0].inputs.at(0).history.artifact.uri, "/data/raw.csv");
  EXPECT_TRUE(data.produced_by[0].inputs.at(0).history.produced_by.empty());
  EXPECT_EQ(store.consumers(clean).at(0).id, trial);
  EXPECT_EQ(store.producers(clean).at(0).id, prep);
}

// A checkpoint saved by a launch that ran as a pipeline task, inside a sweep trial: the walk
// reaches the task's dataset through the launch's "within", and the trial's parameters.
TEST(Store, AncestryFollowsALaunchToThePipelineTaskItRanAsAndThatTasksInputs) {
  TempDir t;
  Store store = Store::open(t / "lineage.db");
  auto data = store.put_artifact({.type = "Dataset", .uri = "/data/train.h5"});
  auto task = store.put_execution({.type = "PipelineTask", .name = "run1/train", .state = "COMPLETE"});
  store.put_event(task, data, EventType::input, "data");
  auto launch = store.put_execution(
      {.type = "Launch", .name = "job-7", .properties = {{"within", std::string("PipelineTask/run1/train")}}});
  auto trial = store.put_execution(
      {.type = "Trial", .name = "/sweeps/lr#3", .properties = {{"param.lr", std::string("0.01")}}});
  auto ckpt = store.put_artifact({.type = "Checkpoint", .uri = "/ckpt/step-100"});
  store.put_event(launch, ckpt, EventType::output, "checkpoint");
  store.put_event(trial, ckpt, EventType::output, "checkpoint");

  const Ancestry a = store.ancestry(ckpt);
  std::vector<std::int64_t> producers;
  for (const auto& p : a.produced_by) producers.push_back(p.execution.id);
  EXPECT_EQ(producers, (std::vector<std::int64_t>{launch, trial, task}));
  const auto& by_task = a.produced_by.at(2);
  ASSERT_EQ(by_task.inputs.size(), 1u);
  EXPECT_EQ(by_task.inputs[0].history.artifact.uri, "/data/train.h5");
  EXPECT_EQ(std::get<std::string>(a.produced_by.at(1).execution.properties.at("param.lr")), "0.01");
}

TEST(Store, AncestryOfACycleStopsAtTheArtifactAlreadyShown) {
  TempDir t;
  Store store = Store::open(t / "lineage.db");
  auto a = store.put_artifact({.type = "Model", .uri = "/a"});
  auto e = store.put_execution({.type = "Step"});
  store.put_event(e, a, EventType::input);
  store.put_event(e, a, EventType::output);
  const Ancestry walked = store.ancestry(a);
  ASSERT_EQ(walked.produced_by.size(), 1u);
  EXPECT_TRUE(walked.produced_by[0].inputs.at(0).history.cut);
}

TEST(Store, LinksToMissingObjectsNameWhatIsMissing) {
  TempDir t;
  Store store = Store::open(t / "lineage.db");
  auto a = store.put_artifact({.type = "Model", .uri = "/a"});
  auto [message, kind] = error_of([&] { store.put_event(99, a, EventType::input); });
  EXPECT_NE(message.find("no execution 99"), std::string::npos) << message;
  EXPECT_EQ(kind, ErrorKind::input);
  EXPECT_NE(error_of([&] { store.update_execution(7, "COMPLETE"); }).first.find("execution 7"), std::string::npos);
  EXPECT_NE(error_of([&] { store.put_artifact({.type = "Model"}); }).first.find("uri is empty"), std::string::npos);
}

TEST(Store, AFailedTransactionLeavesNothingOfItBehind) {
  TempDir t;
  Store store = Store::open(t / "lineage.db");
  EXPECT_THROW(store.transaction([&] {
    store.put_artifact({.type = "Model", .uri = "/half"});
    throw Error("the writer stopped half-way");
  }),
               Error);
  EXPECT_TRUE(store.artifacts().empty());
}

TEST(Store, ANestedTransactionThatFailsUndoesOnlyItsOwnWrites) {
  TempDir t;
  Store store = Store::open(t / "lineage.db");
  store.transaction([&] {
    store.put_artifact({.type = "Model", .uri = "/kept"});
    EXPECT_THROW(store.transaction([&] {
      store.put_artifact({.type = "Model", .uri = "/undone"});
      throw Error("this record is bad");
    }),
                 Error);
  });
  const auto models = store.artifacts("Model");
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].uri, "/kept");
}

TEST(Store, AFileThatIsNoDatabaseIsRefusedAndLeftAsItWas) {
  TempDir t;
  const std::string text = "these are somebody's notes, not a database; they are long enough to hold a header\n";
  std::ofstream(t / "notes.db") << text << text;
  auto [message, kind] = error_of([&] { Store::open(t / "notes.db"); });
  EXPECT_NE(message.find("notes.db"), std::string::npos) << message;
  EXPECT_NE(message.find("not an SQLite database"), std::string::npos) << message;
  EXPECT_NE(message.find("COHORT_LINEAGE"), std::string::npos) << message;
  EXPECT_EQ(kind, ErrorKind::input);
  std::ifstream in(t / "notes.db");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), text + text);
}

TEST(Store, AnotherProgramsDatabaseIsRefused) {
  TempDir t;
  auto made = run_process({"sqlite3", (t / "other.db").string(), "CREATE TABLE songs(title TEXT);"});
  ASSERT_TRUE(made.ok()) << made.err;
  auto [message, kind] = error_of([&] { Store::open(t / "other.db"); });
  EXPECT_NE(message.find("another program"), std::string::npos) << message;
  EXPECT_EQ(kind, ErrorKind::input);
}

TEST(Store, ADamagedStoreSaysHowToRecoverIt) {
  TempDir t;
  {
    Store store = Store::open(t / "lineage.db");
    for (int i = 0; i < 50; ++i) store.put_artifact({.type = "Model", .uri = "/m/" + std::to_string(i)});
  }
  // Everything into the file itself, as a long-quiet store is.
  auto folded = run_process({"sqlite3", (t / "lineage.db").string(), "PRAGMA wal_checkpoint(TRUNCATE);"});
  ASSERT_TRUE(folded.ok()) << folded.err;
  {
    // Page 1 past the file header holds the schema's table: overwrite it.
    std::fstream f(t / "lineage.db", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    const std::string junk(3000, '\xa5');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto [message, kind] = error_of([&] {
    Store store = Store::open(t / "lineage.db");
    store.artifacts();
  });
  EXPECT_NE(message.find("damaged"), std::string::npos) << message;
  EXPECT_NE(message.find(".recover"), std::string::npos) << message;
}

TEST(Store, ADirectoryThatCannotBeWrittenSaysWhereToPointInstead) {
  TempDir t;
  // Root writes anywhere it has permission bits for; sysfs refuses new files even to root.
  fs::path dir = ::geteuid() == 0 ? fs::path("/sys") : t / "readonly";
  if (::geteuid() != 0) {
    fs::create_directory(dir);
    ::chmod(dir.c_str(), 0555);
  }
  auto [message, kind] = error_of([&] { Store::open(dir / "lineage.db"); });
  EXPECT_NE(message.find((dir / "lineage.db").string()), std::string::npos) << message;
  EXPECT_NE(message.find("cannot be written"), std::string::npos) << message;
  EXPECT_EQ(kind, ErrorKind::input);
  EXPECT_FALSE(fs::exists(dir / "lineage.db"));
}

TEST(Store, ADirectoryGivenAsTheStoreIsRefused) {
  TempDir t;
  auto [message, kind] = error_of([&] { Store::open(t.path()); });
  EXPECT_NE(message.find("is a directory"), std::string::npos) << message;
  EXPECT_EQ(kind, ErrorKind::input);
}

// The first records of a sweep come from several processes at once into a store none has
// made yet: each of them sets the new file up (WAL, the schema), and none fails for it.
TEST(Store, ProcessesCreatingOneNewStoreAtOnceAllSucceed) {
  TempDir t;
  constexpr int kRounds = 10, kWriters = 8;
  for (int round = 0; round < kRounds; ++round) {
    const fs::path db = t / ("new-" + std::to_string(round) + ".db");
    std::vector<Process> writers;
    for (int w = 0; w < kWriters; ++w) {
      SpawnOptions o;
      o.err = Stream::file((t / ("new-" + std::to_string(w) + ".err")).string());
      writers.push_back(spawn({COHORT_LINEAGE_WRITER, db.string(), std::to_string(w), "1"}, o));
    }
    for (int w = 0; w < kWriters; ++w) {
      const int status = writers[w].wait();
      std::ifstream err(t / ("new-" + std::to_string(w) + ".err"));
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << "round " << round << ", writer " << w << ": " << std::string(std::istreambuf_iterator<char>(err), {});
    }
    EXPECT_EQ(Store::open(db).executions("Launch").size(), std::size_t{kWriters}) << "round " << round;
  }
}

// 32 processes, as many array tasks, each recording 25 launches twice over, all at once.
TEST(Store, ThirtyTwoWritersAtOnceLoseNothingAndDuplicateNothing) {
  TempDir t;
  const fs::path db = t / "lineage.db";
  constexpr int kWriters = 32, kEach = 25;
  std::vector<Process> writers;
  for (int w = 0; w < kWriters; ++w) {
    SpawnOptions o;
    o.err = Stream::file((t / ("writer-" + std::to_string(w) + ".err")).string());
    writers.push_back(spawn({COHORT_LINEAGE_WRITER, db.string(), std::to_string(w), std::to_string(kEach)}, o));
  }
  for (int w = 0; w < kWriters; ++w) {
    const int status = writers[w].wait();
    std::ifstream err(t / ("writer-" + std::to_string(w) + ".err"));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "writer " << w << ": " << std::string(std::istreambuf_iterator<char>(err), {});
  }
  Store store = Store::open(db);
  const auto launches = store.executions("Launch");
  ASSERT_EQ(launches.size(), std::size_t{kWriters * kEach});
  std::set<std::string> names;
  for (const auto& e : launches) names.insert(e.name);
  EXPECT_EQ(names.size(), std::size_t{kWriters * kEach});
  EXPECT_EQ(store.artifacts("Dataset").size(), 1u);
  EXPECT_EQ(store.artifacts("Model").size(), std::size_t{kWriters * kEach});
  ASSERT_EQ(store.contexts().size(), 1u);
  EXPECT_EQ(store.executions_in(store.contexts()[0].id).size(), std::size_t{kWriters * kEach});
  const auto data = store.artifacts("Dataset")[0].id;
  EXPECT_EQ(store.consumers(data).size(), std::size_t{kWriters * kEach});
  for (const auto& e : launches) ASSERT_EQ(store.events_of_execution(e.id).size(), 2u) << e.name;
}

}  // namespace
}  // namespace cohort::lineage
