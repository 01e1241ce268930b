// `cohort lineage` as people and programs use it: a history shown as text and JSON, lists
// by type, drawings through a real Graphviz, and bad references refused in one line.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "common/json.hpp"
#include "common/process.hpp"
#include "lineage/store.hpp"
#include "tests/common/temp_dir.hpp"

namespace cohort::lineage {
namespace {

namespace fs = std::filesystem;

ProcessResult cohort(const fs::path& db, std::vector<std::string> args) {
  const char* bin = std::getenv("COHORT_BIN");
  args.insert(args.begin(), bin ? bin : "cohort");
  RunOptions o;
  o.env = {"COHORT_LINEAGE=" + db.string()};
  return run_process(args, o);
}

// raw.csv → prep → clean.csv → trial 3 of /sweeps/lr (lr=0.01) → step-100, in experiment /sweeps/lr.
struct History : testing::TempDir {
  History() {
    Store store = Store::open(db);
    auto raw = store.put_artifact({.type = "Dataset", .uri = (path() / "raw.csv").string()});
    auto prep = store.put_execution({.type = "PipelineTask", .name = "run1/prep", .state = "COMPLETE"});
    clean = store.put_artifact({.type = "Dataset", .uri = (path() / "clean.csv").string()});
    store.put_event(prep, raw, EventType::input, "raw");
    store.put_event(prep, clean, EventType::output, "clean");
    trial = store.put_execution({.type = "Trial",
                                 .name = "/sweeps/lr#3",
                                 .state = "COMPLETE",
                                 .properties = {{"param.lr", std::string("0.01")}, {"objective", 0.125}}});
    checkpoint = store.put_artifact({.type = "Checkpoint",
                                     .uri = (path() / "ckpt" / "step-100").string(),
                                     .digest = "crc32c:0badcafe",
                                     .properties = {{"step", std::int64_t{100}}}});
    store.put_event(trial, clean, EventType::input, "data");
    store.put_event(trial, checkpoint, EventType::output, "checkpoint");
    experiment = store.put_context({.type = "Experiment", .name = "/sweeps/lr"});
    store.associate(experiment, trial);
    store.attribute(experiment, checkpoint);
  }
  fs::path db = path() / "lineage.db";
  std::int64_t clean = 0, trial = 0, checkpoint = 0, experiment = 0;
};

TEST(LineageCli, ShowByPathWalksFromTheCheckpointToTheRawDataAndTheTrialsParameters) {
  History h;
  // A path as the user types it: relative, with a trailing slash.
  const fs::path cwd = fs::current_path();
  fs::current_path(h.path());
  auto r = cohort(h.db, {"lineage", "show", "./ckpt/step-100/"});
  fs::current_path(cwd);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Checkpoint"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("made by execution " + std::to_string(h.trial) + "  Trial  /sweeps/lr#3  COMPLETE"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("param.lr=0.01"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("in Experiment /sweeps/lr"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("from \"raw\": artifact"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find((h.path() / "raw.csv").string()), std::string::npos) << r.out;
}

TEST(LineageCli, ShowJsonHasTheSameHistoryForPrograms) {
  History h;
  auto r = cohort(h.db, {"lineage", "show", "artifact/" + std::to_string(h.checkpoint), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json::Value v = json::parse(r.out, "show --json");
  EXPECT_EQ(v.at("artifact").at("digest").as_string(), "crc32c:0badcafe");
  EXPECT_EQ(v.at("artifact").at("properties").at("step").as_int(), 100);
  const json::Value& made = v.at("produced_by").as_array().at(0);
  EXPECT_EQ(made.at("execution").at("properties").at("param.lr").as_string(), "0.01");
  EXPECT_EQ(made.at("execution").at("properties").at("objective").as_double(), 0.125);
  EXPECT_EQ(made.at("contexts").as_array().at(0).at("name").as_string(), "/sweeps/lr");
  const json::Value& data = made.at("inputs").as_array().at(0);
  EXPECT_EQ(data.at("path").as_string(), "data");
  const json::Value& raw = data.at("produced_by").as_array().at(0).at("inputs").as_array().at(0);
  EXPECT_EQ(raw.at("artifact").at("uri").as_string(), (h.path() / "raw.csv").string());
}

TEST(LineageCli, ShowAnExecutionGivesItsInputsAndOutputs) {
  History h;
  auto r = cohort(h.db, {"lineage", "show", "execution/" + std::to_string(h.trial), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json::Value v = json::parse(r.out, "show --json");
  EXPECT_EQ(v.at("inputs").as_array().at(0).at("artifact").at("id").as_int(), h.clean);
  EXPECT_EQ(v.at("outputs").as_array().at(0).at("artifact").at("id").as_int(), h.checkpoint);
}

TEST(LineageCli, ListByTypeShowsOnlyThatType) {
  History h;
  auto r = cohort(h.db, {"lineage", "list", "--type", "Dataset"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("raw.csv"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("clean.csv"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("Checkpoint"), std::string::npos) << r.out;
  auto j = cohort(h.db, {"lineage", "list", "--type", "Trial", "--json"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  const json::Value v = json::parse(j.out, "list --json");
  EXPECT_TRUE(v.at("artifacts").as_array().empty());
  ASSERT_EQ(v.at("executions").as_array().size(), 1u);
  EXPECT_EQ(v.at("executions").as_array()[0].at("name").as_string(), "/sweeps/lr#3");
}

TEST(LineageCli, GraphDrawsTheHistoryInDotAndGraphvizMakesItSvg) {
  History h;
  auto dot = cohort(h.db, {"lineage", "graph", "artifact/" + std::to_string(h.checkpoint)});
  ASSERT_EQ(dot.exit_code, 0) << dot.err;
  EXPECT_NE(dot.out.find("digraph lineage"), std::string::npos);
  EXPECT_NE(dot.out.find("a" + std::to_string(h.clean) + " -> e" + std::to_string(h.trial) + " [label=\"data\"]"),
            std::string::npos)
      << dot.out;
  EXPECT_NE(dot.out.find("e" + std::to_string(h.trial) + " -> a" + std::to_string(h.checkpoint)), std::string::npos);
  if (!find_program("dot")) GTEST_SKIP() << "Graphviz's dot is not installed (scripts/install-deps)";
  // Graphviz itself reads what was written: a syntax error would fail here.
  RunOptions o;
  o.input = dot.out;
  auto checked = run_process({"dot", "-Tcanon"}, o);
  EXPECT_EQ(checked.exit_code, 0) << checked.err;
  const fs::path svg = h.path() / "run.svg";
  auto r = cohort(
      h.db, {"lineage", "graph", "context/" + std::to_string(h.experiment), "--format", "svg", "--out", svg.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(svg);
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(text.find("<svg"), std::string::npos);
  EXPECT_NE(text.find("/sweeps/lr#3"), std::string::npos);
}

TEST(LineageCli, BadReferencesAreOneLineAndExitTwo) {
  History h;
  for (const auto& [ref, words] :
       std::vector<std::pair<std::string, std::string>>{{"execution/999", "no such execution"},
                                                        {"execution/x", "expected execution/ID"},
                                                        {"/nowhere/model.pt", "no artifact at /nowhere/model.pt"}}) {
    auto r = cohort(h.db, {"lineage", "show", ref});
    EXPECT_EQ(r.exit_code, 2) << ref;
    EXPECT_NE(r.err.find(words), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  auto f = cohort(h.db, {"lineage", "graph", "artifact/1", "--format", "png"});
  EXPECT_EQ(f.exit_code, 2);
  EXPECT_NE(f.err.find("--format png: expected dot or svg"), std::string::npos) << f.err;
}

TEST(LineageCli, HelpAtEveryLevelShowsAnExample) {
  History h;
  for (const std::vector<std::string>& args : {std::vector<std::string>{"lineage", "--help"},
                                               {"lineage", "show", "--help"},
                                               {"lineage", "list", "--help"},
                                               {"lineage", "graph", "--help"},
                                               {"bench", "lineage", "--help"}}) {
    auto r = cohort(h.db, args);
    EXPECT_EQ(r.exit_code, 0) << args[1];
    EXPECT_NE(r.out.find("example:\n  cohort "), std::string::npos) << r.out;
  }
  auto none = cohort(h.db, {"lineage"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("usage: cohort lineage"), std::string::npos) << none.err;
}

TEST(LineageCli, TheBenchmarkChecksEveryRunAgainstOneWriterInTheSameRun) {
  History h;
  auto r = cohort(h.db, {"bench", "lineage", "--writers", "3", "--records", "4", "--repeat", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json::Value v = json::parse(r.out, "bench lineage --json");
  EXPECT_EQ(v.at("bench").as_string(), "lineage");
  const auto& rows = v.at("tables").as_array().at(0).at("rows").as_array();
  ASSERT_EQ(rows.size(), 3u);  // the baseline, then 3 writers directly and through the spool
  EXPECT_EQ(rows[0].at("path").as_string(), "direct (baseline)");
  EXPECT_EQ(rows[0].at("ratio").as_double(), 1.0);
  EXPECT_EQ(rows[2].at("writers").as_int(), 3);
  for (const auto& row : rows) EXPECT_EQ(row.at("checked").as_string(), "all once");
}

TEST(LineageCli, BadBenchmarkSettingsAreUsageErrors) {
  History h;
  auto r = cohort(h.db, {"bench", "lineage", "--writers", "8,0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--writers 0"), std::string::npos) << r.err;
}

TEST(LineageCli, AStoreThatIsNoDatabaseIsRefusedWithoutTouchingIt) {
  testing::TempDir t;
  std::ofstream(t / "notes.db") << std::string(4096, 'x');
  auto r = cohort(t / "notes.db", {"lineage", "list"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not an SQLite database"), std::string::npos) << r.err;
  EXPECT_EQ(fs::file_size(t / "notes.db"), 4096u);
}

}  // namespace
}  // namespace cohort::lineage
