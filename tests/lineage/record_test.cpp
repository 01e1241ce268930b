// The recorders as a pipeline task or a command calls them: straight into the store, or
// through the spool that network file systems use, with the same result either way.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "lineage/record.hpp"
#include "lineage/store.hpp"
#include "tests/common/temp_dir.hpp"

namespace cohort::lineage {
namespace {

namespace fs = std::filesystem;

// A pipeline task that read a dataset and wrote a model, in a pipeline run.
ExecutionRecord train_task() {
  return {.execution = {.type = "PipelineTask",
                        .name = "run-7/train",
                        .state = "COMPLETE",
                        .properties = {{"epochs", std::int64_t{3}}, {"lr", 0.5}, {"image", std::string("py:3")}}},
          .inputs = {{"train", {.type = "Dataset", .uri = "/data/train.csv", .digest = "sha256:d"}}},
          .outputs = {{"model",
                       {.type = "Model",
                        .uri = "/scratch/run-7/model.pt",
                        .digest = "sha256:m",
                        .properties = {{"accuracy", 1.0}}}}},
          .contexts = {{.type = "PipelineRun", .name = "run-7"}}};
}

// Sets the environment for this test alone, and puts it back after.
struct Environment {
  explicit Environment(std::vector<std::pair<std::string, std::string>> values) {
    for (const auto& [k, v] : values) {
      const char* old = std::getenv(k.c_str());
      saved.emplace_back(k, old ? std::optional<std::string>(old) : std::nullopt);
      ::setenv(k.c_str(), v.c_str(), 1);
    }
  }
  ~Environment() {
    for (const auto& [k, v] : saved) {
      if (v) ::setenv(k.c_str(), v->c_str(), 1);
      else ::unsetenv(k.c_str());
    }
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved;
};

void expect_train_task(Store& store) {
  const auto task = store.execution("PipelineTask", "run-7/train");
  ASSERT_TRUE(task);
  EXPECT_EQ(task->state, "COMPLETE");
  // Each property keeps its type, the real that looks whole included.
  EXPECT_EQ(std::get<std::int64_t>(task->properties.at("epochs")), 3);
  EXPECT_EQ(std::get<double>(task->properties.at("lr")), 0.5);
  EXPECT_EQ(std::get<std::string>(task->properties.at("image")), "py:3");
  const auto model = store.artifacts_at("/scratch/run-7/model.pt");
  ASSERT_EQ(model.size(), 1u);
  EXPECT_EQ(std::get<double>(model[0].properties.at("accuracy")), 1.0);
  const Ancestry a = store.ancestry(model[0].id);
  ASSERT_EQ(a.produced_by.size(), 1u);
  EXPECT_EQ(a.produced_by[0].inputs.at(0).path, "train");
  EXPECT_EQ(a.produced_by[0].inputs.at(0).history.artifact.uri, "/data/train.csv");
  EXPECT_EQ(a.produced_by[0].contexts.at(0).name, "run-7");
  EXPECT_EQ(store.artifacts_in(a.produced_by[0].contexts.at(0).id).at(0).id, model[0].id);
}

TEST(Record, AnExecutionWithItsInputsAndOutputsLandsInTheStore) {
  testing::TempDir t;
  Environment env({{"COHORT_LINEAGE", (t / "lineage.db").string()}, {"COHORT_LINEAGE_SPOOL", "0"}});
  ASSERT_TRUE(record_execution(train_task()));
  ASSERT_TRUE(record_execution(train_task()));  // a task retried records nothing twice
  Store store = Store::open(t / "lineage.db");
  expect_train_task(store);
  EXPECT_EQ(store.executions().size(), 1u);
  EXPECT_EQ(store.artifacts().size(), 2u);
}

TEST(Record, SpooledRecordsWaitAsFilesAndTheNextReaderMergesThemOnce) {
  testing::TempDir t;
  const fs::path db = t / "lineage.db";
  Environment env({{"COHORT_LINEAGE", db.string()}, {"COHORT_LINEAGE_SPOOL", "1"}});
  ASSERT_TRUE(record_execution(train_task()));
  EXPECT_FALSE(fs::exists(db));  // a spooling writer never opens the database
  ASSERT_EQ(std::distance(fs::directory_iterator(spool_directory(db)), fs::directory_iterator()), 1);
  // A merger that stopped before removing the file: the record is applied again, harmlessly.
  fs::copy_file(*fs::directory_iterator(spool_directory(db)), t / "again.json");
  Store store = open_merged(db);
  expect_train_task(store);
  fs::copy_file(t / "again.json", spool_directory(db) / "00000000000000000001-again.json");
  const Merged second = merge_spool(store);
  EXPECT_EQ(second.records, 1);
  EXPECT_EQ(store.executions().size(), 1u);
  EXPECT_EQ(store.artifacts().size(), 2u);
  EXPECT_TRUE(fs::is_empty(spool_directory(db)));
}

TEST(Record, ARecordThatCannotBeAppliedIsSetAsideAndTheOthersMerge) {
  testing::TempDir t;
  const fs::path db = t / "lineage.db";
  Environment env({{"COHORT_LINEAGE", db.string()}, {"COHORT_LINEAGE_SPOOL", "1"}});
  ASSERT_TRUE(record_execution(train_task()));
  // A record with an artifact but no uri fails half-way through its own writes.
  std::ofstream(spool_directory(db) / "00000000000000000000-bad.json")
      << R"({"kind":"execution","execution":{"type":"PipelineTask","name":"bad"},"contexts":[],)"
      << R"("inputs":[],"outputs":[{"path":"m","type":"Model","uri":""}]})";
  Store store = Store::open(db);
  const Merged merged = merge_spool(store);
  EXPECT_EQ(merged.records, 1);
  EXPECT_EQ(merged.damaged, 1);
  EXPECT_FALSE(store.execution("PipelineTask", "bad"));  // none of its writes stayed
  expect_train_task(store);
  EXPECT_TRUE(fs::exists(spool_directory(db) / "00000000000000000000-bad.json.damaged"));
}

TEST(Record, OffRecordsNothing) {
  testing::TempDir t;
  Environment env({{"COHORT_LINEAGE", "off"}, {"HOME", t.path().string()}, {"XDG_DATA_HOME", ""}});
  EXPECT_FALSE(record_execution(train_task()));
  EXPECT_TRUE(fs::is_empty(t.path()));
}

}  // namespace
}  // namespace cohort::lineage
