// The dashboard's pages and API over a store made the way users make one (make_state.sh: a
// local sweep, a local pipeline run, a local launch), asked through App::get, which is what
// the HTTP server calls; browser_test.py asks the same through a real server and a browser.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <fstream>
#include <memory>

#include "common/fd.hpp"
#include "common/json.hpp"
#include "common/process.hpp"
#include "dashboard/dashboard.hpp"
#include "lineage/store.hpp"
#include "tests/common/temp_dir.hpp"

namespace cohort::dashboard {
namespace {

namespace fs = std::filesystem;

class Dashboard : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<::cohort::testing::TempDir>("cohort-dashboard");
    const char* bin = std::getenv("COHORT_BIN");
    const auto r = run_process({"bash", COHORT_DASHBOARD_MAKE_STATE, bin ? bin : "cohort", dir_->path().string()});
    ASSERT_TRUE(r.ok()) << r.out << r.err;
  }
  static void TearDownTestSuite() { dir_.reset(); }

  static Config config() { return {.store = *dir_ / "lineage.db", .user = "nobody"}; }
  static json::Value api(const App& app, const std::string& target) {
    const serve::Reply r = app.get(target);
    EXPECT_EQ(r.status, 200) << target << ": " << r.body;
    return json::parse(r.body, target);
  }

  static std::unique_ptr<::cohort::testing::TempDir> dir_;
};
std::unique_ptr<::cohort::testing::TempDir> Dashboard::dir_;

TEST_F(Dashboard, SweepApiHasEveryTrialAndTheBest) {
  App app(config());
  const json::Value list = api(app, "/api/sweeps");
  ASSERT_EQ(list.at("sweeps").as_array().size(), 1u);
  const auto& s = list.at("sweeps").as_array()[0];
  EXPECT_EQ(s.at("trials").as_int(), 4);
  EXPECT_EQ(s.at("succeeded").as_int(), 3);
  EXPECT_EQ(s.at("best").at("objective").as_double(), 1.0);
  const json::Value one = api(app, "/api/sweeps/" + std::to_string(s.at("id").as_int()));
  ASSERT_EQ(one.at("trials").as_array().size(), 4u);
  EXPECT_EQ(one.at("trials").as_array()[3].at("state").as_string(), "Failed");
  EXPECT_EQ(one.at("best").at("parameters").at("tag").as_string(), "<script>alert(1)</script>");
}

TEST_F(Dashboard, PipelineApiHasEachTaskState) {
  App app(config());
  const json::Value list = api(app, "/api/pipelines");
  ASSERT_EQ(list.at("pipelines").as_array().size(), 1u);
  const auto id = list.at("pipelines").as_array()[0].at("id").as_int();
  const json::Value run = api(app, "/api/pipelines/" + std::to_string(id));
  EXPECT_EQ(run.at("state").as_string(), "Succeeded");
  ASSERT_EQ(run.at("tasks").as_array().size(), 5u);
  for (const auto& t : run.at("tasks").as_array()) EXPECT_EQ(t.at("state").as_string(), "succeeded") << t.at("task").as_string();
}

TEST_F(Dashboard, ModelApiWalksAnArtifactsHistory) {
  App app(config());
  const json::Value list = api(app, "/api/models");
  ASSERT_FALSE(list.at("artifacts").as_array().empty());
  for (const auto& a : list.at("artifacts").as_array()) {
    const json::Value history = api(app, "/api/models/" + std::to_string(a.at("id").as_int()));
    EXPECT_EQ(history.at("artifact").at("uri").as_string(), a.at("uri").as_string());
    ASSERT_FALSE(history.at("produced_by").as_array().empty()) << a.at("uri").as_string();
    EXPECT_EQ(history.at("produced_by").as_array()[0].at("execution").at("type").as_string(), "PipelineTask");
  }
}

TEST_F(Dashboard, JobsApiHasTheLaunch) {
  App app(config());
  const json::Value jobs = api(app, "/api/jobs");
  ASSERT_EQ(jobs.at("launches").as_array().size(), 1u);
  EXPECT_EQ(jobs.at("launches").as_array()[0].at("state").as_string(), "COMPLETE");
  EXPECT_TRUE(api(app, "/api/endpoints").at("endpoints").as_array().empty());
}

TEST_F(Dashboard, TrialParameterHoldingScriptShowsAsText) {
  App app(config());
  const serve::Reply r = app.get("/sweeps/1");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body.find("<script>alert"), std::string::npos);
  EXPECT_NE(r.body.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(r.body.find("<span id=\"best-value\">1</span>"), std::string::npos);
  EXPECT_NE(r.body.find("<span id=\"trial-count\">4</span>"), std::string::npos);
  EXPECT_EQ(html_escape("<a href=\"x\" title='y'>&</a>"),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;");
}

TEST_F(Dashboard, EveryViewRenders) {
  App app(config());
  for (const char* page : {"/", "/jobs", "/sweeps", "/sweeps/1", "/pipelines", "/pipelines/2", "/models", "/models/1",
                           "/endpoints", "/assets/style.css", "/assets/app.js", "/api/"}) {
    const serve::Reply r = app.get(page);
    EXPECT_EQ(r.status, 200) << page << ": " << r.body;
    EXPECT_FALSE(r.body.empty()) << page;
  }
}

TEST_F(Dashboard, UnknownIdsAre404AndHostileQueriesAre400) {
  App app(config());
  for (const char* page : {"/sweeps/99", "/sweeps/abc", "/sweeps/-1", "/sweeps/99999999999999999999", "/pipelines/1",
                           "/models/0", "/nowhere", "/api/sweeps/2", "/api/nowhere", "/assets/../../etc/passwd",
                           "/sweeps/1/trials"}) {
    const serve::Reply r = app.get(page);
    EXPECT_EQ(r.status, 404) << page << ": " << r.body;
    EXPECT_EQ(r.body.find("<script>"), std::string::npos) << page;
  }
  for (const char* page : {"/sweeps?id=1%3Cscript%3E", "/api/sweeps?token=<script>", "/?a&b=c", "/jobs?token=x%27;--"}) {
    const serve::Reply r = app.get(page);
    EXPECT_EQ(r.status, 400) << page << ": " << r.body;
    EXPECT_EQ(r.body.find("<script>"), std::string::npos) << page;
  }
}

// The graph goes up an artifact's history; the page links down to what was made from it.
TEST_F(Dashboard, ModelPageLinksToWhatWasMadeFromIt) {
  const ::cohort::testing::TempDir dir("cohort-dashboard-model");
  std::int64_t data = 0, model = 0;
  {
    auto store = lineage::Store::open(dir / "lineage.db");
    data = store.put_artifact({.type = "Dataset", .uri = "/data/<train>.csv"});
    const auto run = store.put_execution({.type = "Launch", .name = "train", .state = "COMPLETE"});
    model = store.put_artifact({.type = "Model", .uri = "/models/m.pt"});
    store.put_event(run, data, lineage::EventType::input, "train");
    store.put_event(run, model, lineage::EventType::output, "model");
  }
  App app({.store = dir / "lineage.db", .user = "nobody"});
  const serve::Reply up = app.get("/models/" + std::to_string(data));
  ASSERT_EQ(up.status, 200) << up.body;
  EXPECT_NE(up.body.find("<a href=\"/models/" + std::to_string(model) + "\">model</a>"), std::string::npos) << up.body;
  EXPECT_NE(up.body.find("/data/&lt;train&gt;.csv"), std::string::npos);
  const serve::Reply down = app.get("/models/" + std::to_string(model));
  ASSERT_EQ(down.status, 200) << down.body;
  EXPECT_NE(down.body.find("/models/" + std::to_string(data)), std::string::npos) << "the graph links up to the data";
}

// However many pages are loaded, Slurm is asked once per interval: a fake squeue counts.
TEST_F(Dashboard, SlurmIsAskedOncePerIntervalHoweverManyPagesLoad) {
  const fs::path bin = *dir_ / "fake-bin";
  fs::create_directories(bin);
  const fs::path count = *dir_ / "squeue-calls";
  std::ofstream(bin / "squeue") << "#!/bin/sh\necho called >> " << count.string()
                                << "\necho '812|train|RUNNING|1:00|2|node[1-2]'\n";
  fs::permissions(bin / "squeue", fs::perms::owner_all);
  const std::string path = std::getenv("PATH");
  ::setenv("PATH", (bin.string() + ":" + path).c_str(), 1);
  Config c = config();
  c.slurm_every = std::chrono::hours(1);
  App app(c);
  for (int i = 0; i < 20; ++i) {
    const serve::Reply r = app.get(i % 2 ? "/jobs" : "/api/jobs");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_NE(r.body.find("812"), std::string::npos);
  }
  ::setenv("PATH", path.c_str(), 1);
  EXPECT_EQ(app.slurm_queries(), 1);
  EXPECT_EQ(read_text(count), "called\n");
}

}  // namespace
}  // namespace cohort::dashboard
