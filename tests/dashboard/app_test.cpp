// The dashboard's pages and API over a store made the way users make one (make_state.sh: a
// local sweep, a local pipeline run, a local launch), asked through App::get, which is what
// the HTTP server calls; browser_test.py asks the same through a real server and a browser.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <map>
#include <memory>

#include "common/fd.hpp"
#include "common/json.hpp"
#include "common/process.hpp"
#include "dashboard/dashboard.hpp"
#include "dashboard/data.hpp"
#include "dashboard/html.hpp"
#include "launcher/run_report.hpp"
#include "lineage/store.hpp"
#include "serve/registry.hpp"
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

  static Config config() { return {.store = *dir_ / "lineage.db", .user = "nobody", .services = *dir_ / "services"}; }
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
  EXPECT_EQ(jobs.at("launches").as_array()[0].at("properties").at("restarts").as_int(), 1);
  EXPECT_TRUE(api(app, "/api/endpoints").at("endpoints").as_array().empty());
}

TEST_F(Dashboard, EndpointsShowEachSubmittedServicesReplicasVersionsAndTraffic) {
  App app(config());
  const json::Value all = api(app, "/api/endpoints");
  ASSERT_EQ(all.at("services").as_array().size(), 1u);
  const auto& s = all.at("services").as_array()[0];
  EXPECT_EQ(s.at("name").as_string(), "mnist");
  EXPECT_EQ(s.at("state").as_string(), "ready");
  EXPECT_EQ(s.at("traffic").at("2").as_int(), 10);
  EXPECT_EQ(s.at("versions").as_object().size(), 2u);
  ASSERT_EQ(s.at("replicas").as_array().size(), 3u);
  EXPECT_EQ(s.at("replicas").as_array()[2].at("restarts").as_int(), 1);
  const serve::Reply page = app.get("/endpoints");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_NE(page.body.find("version 1: 90%, version 2: 10%"), std::string::npos) << page.body;
  EXPECT_NE(page.body.find("10.0.0.2:9002"), std::string::npos);
  EXPECT_NE(app.get("/").body.find("1 services"), std::string::npos);
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

namespace cohort::dashboard {
namespace {

std::int64_t launch_id(const App& app) {
  const serve::Reply r = app.get("/api/jobs");
  return json::parse(r.body, "/api/jobs").at("launches").as_array().at(0).at("id").as_int();
}

TEST_F(Dashboard, JobPageHasEachAttemptItsRanksAndTheirLogs) {
  App app(config());
  const std::string id = std::to_string(launch_id(app));
  const json::Value job = api(app, "/api/jobs/" + id);
  EXPECT_EQ(job.at("run_dir").as_string(), (*dir_ / "run").string());
  const auto& attempts = job.at("attempts").as_array();
  ASSERT_EQ(attempts.size(), 2u) << json::write(job, 2);
  // The first attempt's rank 1 exited with 3, in the supervisor's words, and the gang restarted.
  EXPECT_NE(attempts[0].at("why_ended").as_string().find("rank 1"), std::string::npos);
  EXPECT_NE(attempts[0].at("why_ended").as_string().find("exited with 3"), std::string::npos);
  ASSERT_EQ(attempts[1].at("ranks").as_array().size(), 2u);
  for (const auto& r : attempts[1].at("ranks").as_array()) {
    EXPECT_EQ(r.at("state").as_string(), "exited with 0");
    EXPECT_FALSE(r.at("host").as_string().empty());
  }
  ASSERT_EQ(job.at("logs").as_array().size(), 2u);
  EXPECT_NE(job.at("logs").as_array()[1].at("tail").as_string().find("rank 1 attempt 1"), std::string::npos);

  const serve::Reply page = app.get("/jobs/" + id);
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_EQ(page.body.find("<img"), std::string::npos) << "a log line became markup";
  EXPECT_NE(page.body.find("&lt;img src=x onerror=alert(2)&gt; rank 1 attempt 1"), std::string::npos);
  EXPECT_NE(page.body.find("exited with 3"), std::string::npos);
  EXPECT_NE(app.get("/jobs").body.find("<a href=\"/jobs/" + id + "\">"), std::string::npos) << "the list links to it";
}

TEST_F(Dashboard, SweepPageDrawsEachTrialsCurve) {
  App app(config());
  const serve::Reply r = app.get("/sweeps/1");
  ASSERT_EQ(r.status, 200) << r.body;
  // Trials 0-2 reported loss at steps 1 and 2; trial 3 failed before it reported anything.
  const auto plot = r.body.find("class=\"curves\"");
  ASSERT_NE(plot, std::string::npos);
  std::size_t lines = 0;
  for (auto at = r.body.find("<polyline class=\"curve\"", plot); at != std::string::npos;
       at = r.body.find("<polyline class=\"curve\"", at + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 3u);
  EXPECT_NE(r.body.find("trial 0, the best"), std::string::npos);
  EXPECT_NE(r.body.find("<title>trial 2 (Succeeded): 2 steps, last 9</title>"), std::string::npos) << r.body;
  std::size_t sparks = 0;
  for (auto at = r.body.find("class=\"spark\""); at != std::string::npos; at = r.body.find("class=\"spark\"", at + 1)) ++sparks;
  EXPECT_EQ(sparks, 3u);
  EXPECT_NE(r.body.find("<title>11 to 1 over 2 steps</title>"), std::string::npos) << "trial 0: 1+10, then 1";
}

TEST(DashboardCurves, AreEscapedAndSkipWhatCannotBeDrawn) {
  tuner::Experiment x;
  x.objective.metric = "<b>loss</b>";
  tuner::JournalState state;
  EXPECT_EQ(metric_curves_svg(x, state), "") << "no trial: no plot";
  tuner::Trial running;
  running.curve = {{1, 0.5}, {2, std::numeric_limits<double>::quiet_NaN()}};
  state.trials.push_back(running);
  EXPECT_EQ(metric_curves_svg(x, state), "") << "a curve with NaN is not drawn";
  EXPECT_EQ(trial_curve_svg(state.trials[0]), "");
  tuner::Trial stopped;
  stopped.id = 1;
  stopped.state = tuner::TrialState::early_stopped;
  stopped.curve = {{5, 2.0}};
  state.trials.push_back(stopped);
  const std::string svg = metric_curves_svg(x, state);
  EXPECT_NE(svg.find("&lt;b&gt;loss&lt;/b&gt;"), std::string::npos) << svg;
  EXPECT_EQ(svg.find("<b>"), std::string::npos);
  EXPECT_NE(svg.find("trial 1 (EarlyStopped): 1 steps"), std::string::npos) << svg;
  EXPECT_EQ(svg.find("trial 0 ("), std::string::npos);
}

// A registry is the job's to write; the dashboard shows what it finds, markup as text, and a
// registry it cannot read with the reason, beside the others.
TEST(DashboardServices, AHostileOrBrokenRegistryIsShownAsText) {
  const ::cohort::testing::TempDir dir("cohort-dashboard-services");
  lineage::Store::open(dir / "lineage.db");
  fs::create_directories(dir / "services" / "a");
  fs::create_directories(dir / "services" / "b");
  fs::create_directories(dir / "services" / "c");  // no registry: not a service
  serve::write_registry(dir / "services" / "a", {.name = "<script>x</script>", .state = "failed", .job = "1", .url = "",
                                                  .message = "<b>no GPU</b>", .traffic = {{"<i>", 100}},
                                                  .storage = {{"<i>", "/m/<p>"}},
                                                  .replicas = {{.id = 0, .node = "<n>", .host = "", .port = 0, .pid = 0, .version = "<i>",
                                                                .state = "dead"}}});
  write_file_atomically(dir / "services" / "b" / "registry.json", "{\"name\": ");
  App app({.store = dir / "lineage.db", .user = "nobody", .services = dir / "services"});
  const serve::Reply r = app.get("/endpoints");
  ASSERT_EQ(r.status, 200) << r.body;
  for (const char* markup : {"<script>x", "<b>no", "<i>", "<n>", "/m/<p>"}) {
    EXPECT_EQ(r.body.find(markup), std::string::npos) << markup << " became markup";
  }
  for (const char* text : {"&lt;script&gt;x&lt;/script&gt;", "&lt;b&gt;no GPU", "/m/&lt;p&gt;", "&lt;n&gt;"}) {
    EXPECT_NE(r.body.find(text), std::string::npos) << text << " is not shown";
  }
  EXPECT_NE(r.body.find((dir / "services" / "b" / "registry.json").string()), std::string::npos) << "the broken one is named";
  const serve::Reply api = app.get("/api/endpoints");
  ASSERT_EQ(api.status, 200) << api.body;
  const json::Value all = json::parse(api.body, "endpoints");
  ASSERT_EQ(all.at("services").as_array().size(), 2u);
  EXPECT_FALSE(all.at("services").as_array()[1].at("error").as_string().empty());
  App none({.store = dir / "lineage.db", .user = "nobody", .services = dir / "nowhere"});
  EXPECT_EQ(none.get("/endpoints").status, 200);
}

// A store with one launch whose run directory is `run_dir` ("": none recorded).
std::int64_t put_launch(const fs::path& store, const std::string& run_dir, const std::string& output_dir = {},
                        const std::string& state = "FAILED") {
  auto s = lineage::Store::open(store);
  lineage::Properties p;
  if (!run_dir.empty()) p["run_dir"] = run_dir;
  if (!output_dir.empty()) p["output_dir"] = output_dir;
  return s.put_execution({.type = "Launch", .name = "job-<b>7</b>", .state = state, .properties = p});
}

TEST(DashboardJob, AMissingRunDirectoryIsSaidOnThePage) {
  const ::cohort::testing::TempDir dir("cohort-dashboard-job");
  const auto gone = put_launch(dir / "lineage.db", (dir / "gone").string());
  const auto none = put_launch(dir / "old.db", "");
  std::int64_t step10 = 0;
  {
    auto store = lineage::Store::open(dir / "lineage.db");
    for (int step : {5, 10}) {
      const auto a = store.put_artifact({.type = "Checkpoint", .uri = "/ckpt/step-" + std::to_string(step),
                                         .name = "step " + std::to_string(step)});
      store.put_event(gone, a, lineage::EventType::output, "checkpoint");
      step10 = a;
    }
  }
  App app({.store = dir / "lineage.db", .user = "nobody"});
  const serve::Reply r = app.get("/jobs/" + std::to_string(gone));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find((dir / "gone").string() + " is not there"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("--run-dir DIR"), std::string::npos) << "the fix is named";
  EXPECT_NE(r.body.find("id=\"checkpoint\" href=\"/models/" + std::to_string(step10) + "\">step 10</a>"), std::string::npos)
      << "the last checkpoint links to its history";
  EXPECT_NE(r.body.find("job-&lt;b&gt;7&lt;/b&gt;"), std::string::npos);
  EXPECT_EQ(r.body.find("<b>7"), std::string::npos);
  const serve::Reply api = app.get("/api/jobs/" + std::to_string(gone));
  ASSERT_EQ(api.status, 200) << api.body;
  EXPECT_NE(json::parse(api.body, "job").at("run_error").as_string().find("is not there"), std::string::npos);
  App old({.store = dir / "old.db", .user = "nobody"});
  const serve::Reply o = old.get("/jobs/" + std::to_string(none));
  ASSERT_EQ(o.status, 200) << o.body;
  EXPECT_NE(o.body.find("did not record its run directory"), std::string::npos) << o.body;
  for (const char* bad : {"/jobs/0", "/jobs/99", "/jobs/x", "/api/jobs/99", "/jobs/1/2"}) {
    EXPECT_EQ(app.get(bad).status, 404) << bad;
  }
}

// A heartbeat file last beaten at `at` seconds since the epoch (0: made, not beaten yet).
void beat(const fs::path& file, time_t at) {
  write_file_atomically(file, "");
  const timespec times[2] = {{at, 0}, {at, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, file.c_str(), times, 0), 0) << file;
}

// The jobs list: a running launch's newest beat among its current attempt's ranks (an older
// attempt's, and a rank that has not beaten yet, do not count); an ended launch has none;
// each launch's last checkpoint links to its history.
TEST(DashboardJob, JobsListHasEachRunningLaunchsNewestHeartbeatAndLastCheckpoint) {
  const ::cohort::testing::TempDir dir("cohort-dashboard-jobs");
  const fs::path run = dir / "run";
  fs::create_directories(run / "attempt-0");
  fs::create_directories(run / "attempt-1");
  constexpr time_t t = 1'000'000'000;
  // The supervisor's file of its ranks' beats; and a heartbeat file of a run made before it.
  write_file_atomically(run / "attempt-0" / "heartbeats", "0 " + std::to_string(t + 99) + "\n");
  write_file_atomically(run / "attempt-1" / "heartbeats", "0 " + std::to_string(t + 70) + "\n1 " + std::to_string(t + 85) +
                                                            "\n2 0\n");
  beat(run / "attempt-1" / "heartbeat-1", t + 90);
  EXPECT_EQ(launcher::newest_heartbeat_age(run.string(), t + 100), 10.0);
  write_file_atomically(run / "attempt-1" / "heartbeats", "0 " + std::to_string(t + 95) + "\n");
  EXPECT_EQ(launcher::newest_heartbeat_age(run.string(), t + 100), 5.0);
  EXPECT_FALSE(launcher::newest_heartbeat_age((dir / "gone").string(), t + 100));

  const auto running = put_launch(dir / "lineage.db", run.string(), {}, "RUNNING");
  std::int64_t checkpoint = 0;
  {
    auto store = lineage::Store::open(dir / "lineage.db");
    checkpoint = store.put_artifact({.type = "Checkpoint", .uri = "/ckpt/step-3", .name = "step <3>"});
    store.put_event(running, checkpoint, lineage::EventType::output, "checkpoint");
    store.put_execution({.type = "Launch", .name = "ended", .state = "COMPLETE", .properties = {{"run_dir", run.string()}}});
  }
  App app({.store = dir / "lineage.db", .user = "nobody"});
  const serve::Reply api = app.get("/api/jobs");
  ASSERT_EQ(api.status, 200) << api.body;
  const auto launches = json::parse(api.body, "jobs").at("launches").as_array();
  ASSERT_EQ(launches.size(), 2u);
  for (const auto& l : launches) {
    if (l.at("state").as_string() == "RUNNING") {
      // Beaten at t + 90, some 30 years ago: the age is from the wall clock, not from t.
      EXPECT_GT(l.at("heartbeat_age").as_double(), 3.0e8);
      EXPECT_EQ(l.at("checkpoint").at("id").as_int(), checkpoint);
    } else {
      EXPECT_TRUE(l.at("heartbeat_age").is_null()) << "an ended launch's ranks beat no more";
      EXPECT_TRUE(l.at("checkpoint").is_null());
    }
  }
  const serve::Reply page = app.get("/jobs");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_NE(page.body.find("<a class=\"checkpoint\" href=\"/models/" + std::to_string(checkpoint) + "\">step &lt;3&gt;</a>"),
            std::string::npos) << page.body;
  EXPECT_NE(page.body.find(" s ago</td>"), std::string::npos) << page.body;
}

// Without --output-dir the ranks' lines went to the batch job's output, which only Slurm knows
// the place of: the page shows its tail, escaped and bounded; another user's job, or one Slurm
// has forgotten, is said so and nothing of it is shown.
TEST(DashboardJob, ALaunchWithoutOutputDirShowsTheTailOfItsBatchOutput) {
  const ::cohort::testing::TempDir dir("cohort-dashboard-batch");
  const fs::path bin = dir / "bin";
  fs::create_directories(bin);
  std::ofstream(bin / "scontrol") << "#!/bin/sh\ncase \"$4\" in\n"
                                  << "77) echo \"JobId=77 JobName=train UserId=nobody(65534) StdOut=" << (dir / "slurm-77.out").string()
                                  << " StdErr=x\" ;;\n78) echo \"JobId=78 UserId=root(0) StdOut=" << (dir / "secret.out").string()
                                  << "\" ;;\n*) echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1 ;;\nesac\n";
  fs::permissions(bin / "scontrol", fs::perms::owner_all);
  {
    std::ofstream out(dir / "slurm-77.out");
    for (int i = 0; i < 300; ++i) out << "0: line " << i << "\n";
    out << "1: <script>alert(3)</script>\n";
    std::ofstream(dir / "secret.out") << "root's secret\n";
  }
  std::map<std::string, std::int64_t> ids;
  {
    auto store = lineage::Store::open(dir / "lineage.db");
    for (const char* job : {"77", "78", "79"}) {
      ids[job] = store.put_execution({.type = "Launch", .name = std::string("job-") + job, .state = "RUNNING",
                                      .properties = {{"job_id", std::string(job)}}});
    }
  }
  const std::string path = std::getenv("PATH");
  ::setenv("PATH", (bin.string() + ":" + path).c_str(), 1);
  App app({.store = dir / "lineage.db", .user = "nobody"});
  const serve::Reply mine = app.get("/jobs/" + std::to_string(ids["77"]));
  const serve::Reply theirs = app.get("/jobs/" + std::to_string(ids["78"]));
  const serve::Reply forgotten = app.get("/jobs/" + std::to_string(ids["79"]));
  const json::Value api = json::parse(app.get("/api/jobs/" + std::to_string(ids["77"])).body, "job");
  ::setenv("PATH", path.c_str(), 1);
  ASSERT_EQ(mine.status, 200) << mine.body;
  EXPECT_NE(mine.body.find("1: &lt;script&gt;alert(3)&lt;/script&gt;"), std::string::npos) << mine.body;
  EXPECT_EQ(mine.body.find("<script>alert"), std::string::npos);
  EXPECT_NE(mine.body.find("0: line 299"), std::string::npos);
  EXPECT_EQ(mine.body.find("0: line 100\n"), std::string::npos) << "only the last 200 lines";
  EXPECT_TRUE(api.at("batch_log").at("cut").as_bool());
  EXPECT_EQ(api.at("batch_log").at("path").as_string(), (dir / "slurm-77.out").string());
  ASSERT_EQ(theirs.status, 200) << theirs.body;
  EXPECT_EQ(theirs.body.find("secret"), std::string::npos) << "another user's output is not shown";
  EXPECT_NE(theirs.body.find("job 78 is not yours"), std::string::npos) << theirs.body;
  ASSERT_EQ(forgotten.status, 200) << forgotten.body;
  EXPECT_NE(forgotten.body.find("Slurm no longer knows job 79"), std::string::npos) << forgotten.body;
}

// A job page left open reloads itself every few seconds, and many may be open: where its
// batch output is, Slurm is asked once per interval for each job, as the jobs list's answer
// is, and asked again once the interval has passed. A fake scontrol counts.
TEST(DashboardJob, SlurmIsAskedWhereABatchOutputIsOncePerIntervalPerJob) {
  const ::cohort::testing::TempDir dir("cohort-dashboard-batch-cache");
  const fs::path bin = dir / "bin", calls = dir / "scontrol-calls";
  fs::create_directories(bin);
  std::ofstream(bin / "scontrol") << "#!/bin/sh\necho \"$4\" >> " << calls.string()
                                  << "\necho \"JobId=$4 UserId=nobody(65534) StdOut=" << (dir / "slurm-").string()
                                  << "$4.out\"\n";
  fs::permissions(bin / "scontrol", fs::perms::owner_all);
  std::map<std::string, std::int64_t> ids;
  {
    auto store = lineage::Store::open(dir / "lineage.db");
    for (const char* job : {"77", "78"}) {
      std::ofstream(dir / ("slurm-" + std::string(job) + ".out")) << "output of " << job << "\n";
      ids[job] = store.put_execution({.type = "Launch", .name = std::string("job-") + job, .state = "RUNNING",
                                      .properties = {{"job_id", std::string(job)}}});
    }
  }
  const auto load = [&](App& app, const char* job, int times) {
    for (int i = 0; i < times; ++i) {
      const serve::Reply r = app.get((i % 2 ? "/api/jobs/" : "/jobs/") + std::to_string(ids[job]));
      ASSERT_EQ(r.status, 200) << r.body;
      EXPECT_NE(r.body.find("output of " + std::string(job)), std::string::npos) << r.body;
    }
  };
  const std::string path = std::getenv("PATH");
  ::setenv("PATH", (bin.string() + ":" + path).c_str(), 1);
  App cached({.store = dir / "lineage.db", .user = "nobody", .slurm_every = std::chrono::hours(1)});
  load(cached, "77", 10);
  load(cached, "78", 4);
  load(cached, "77", 3);
  const std::string once_each = read_text(calls);
  fs::remove(calls);
  App every_time({.store = dir / "lineage.db", .user = "nobody", .slurm_every = std::chrono::milliseconds(0)});
  load(every_time, "77", 3);
  ::setenv("PATH", path.c_str(), 1);
  EXPECT_EQ(once_each, "77\n78\n");
  EXPECT_EQ(read_text(calls), "77\n77\n77\n") << "an answer past its interval is asked again";
}

// What a crash, a torn-down rank or a foreign file leaves: files without their fields, a
// heartbeat without a placement. The page shows what it can, and never a 500.
TEST(DashboardJob, AHalfWrittenRunDirectoryStillGivesAPage) {
  const ::cohort::testing::TempDir dir("cohort-dashboard-job");
  const fs::path run = dir / "run", attempt = run / "attempt-0";
  fs::create_directories(attempt);
  fs::create_directories(run / "attempt-x");
  write_file_atomically(attempt / "rank-0.placement", std::string("host=<node1>\ncpus=0-3\ngpus=0\nnics=mlx5_0\n") + "\x01\xff");
  write_file_atomically(attempt / "rank-1.status", "rank=1\nexit=abc\n");
  write_file_atomically(attempt / "rank-zz.placement", "host=x\n");
  write_file_atomically(attempt / "heartbeat-0", "");
  // Its last beat 100 s ago.
  const timespec past[2] = {{.tv_sec = ::time(nullptr) - 100, .tv_nsec = 0}, {.tv_sec = ::time(nullptr) - 100, .tv_nsec = 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (attempt / "heartbeat-0").c_str(), past, 0), 0);
  write_file_atomically(attempt / "heartbeat-2", "");  // made, and dated to the epoch: not beaten yet
  const timespec epoch[2] = {{.tv_sec = 0, .tv_nsec = 0}, {.tv_sec = 0, .tv_nsec = 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (attempt / "heartbeat-2").c_str(), epoch, 0), 0);
  const auto id = put_launch(dir / "lineage.db", run.string(), {}, "RUNNING");
  App app({.store = dir / "lineage.db", .user = "nobody"});
  const json::Value job = json::parse(app.get("/api/jobs/" + std::to_string(id)).body, "job");
  const auto& ranks = job.at("attempts").as_array().at(0).at("ranks").as_array();
  ASSERT_EQ(ranks.size(), 2u) << json::write(job, 2);  // rank 1's status is unreadable: no rank
  EXPECT_EQ(ranks[0].at("host").as_string(), "<node1>");
  EXPECT_EQ(ranks[0].at("gpus").as_string(), "0");
  EXPECT_EQ(ranks[0].at("state").as_string(), "running");
  EXPECT_GE(ranks[0].at("heartbeat_age").as_double(), 100.0);
  EXPECT_EQ(ranks[1].at("rank").as_int(), 2);
  EXPECT_TRUE(ranks[1].at("heartbeat_age").is_null());
  const serve::Reply page = app.get("/jobs/" + std::to_string(id));
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_NE(page.body.find("&lt;node1&gt;"), std::string::npos);
  EXPECT_NE(page.body.find("not yet"), std::string::npos) << "rank 2 has not beaten";
  EXPECT_NE(page.body.find("data-refresh=\"5\""), std::string::npos) << "a running launch's page refreshes";
}

// A rank that hung had its stack dumped into its attempt's folder: the job page shows it,
// newest attempt first, escaped like any log.
TEST(DashboardJob, TheStacksOfHungRanksAreOnTheJobPage) {
  const ::cohort::testing::TempDir dir("cohort-dashboard-job");
  const fs::path run = dir / "run";
  for (int a : {0, 1}) {
    const fs::path attempt = run / ("attempt-" + std::to_string(a));
    fs::create_directories(attempt);
    write_file_atomically(attempt / "rank-0.status", "rank=0\nhost=node1\nexit=-1\nsignal=9\nhung=1\nended_ns=5\n");
    write_file_atomically(attempt / "rank-0.stack", "#0 wait_for <collective> in attempt " + std::to_string(a) + "\n");
    write_file_atomically(attempt / "rank-1.status", "rank=1\nhost=node2\nexit=0\nsignal=0\nhung=0\nended_ns=6\n");
  }
  const auto id = put_launch(dir / "lineage.db", run.string());
  App app({.store = dir / "lineage.db", .user = "nobody"});
  const json::Value job = json::parse(app.get("/api/jobs/" + std::to_string(id)).body, "job");
  const auto& stacks = job.at("stacks").as_array();
  ASSERT_EQ(stacks.size(), 2u) << json::write(job, 2);
  EXPECT_EQ(stacks[0].at("attempt").as_int(), 1);
  EXPECT_EQ(stacks[0].at("rank").as_int(), 0);
  EXPECT_EQ(stacks[0].at("tail").as_string(), "#0 wait_for <collective> in attempt 1\n");
  EXPECT_EQ(stacks[1].at("attempt").as_int(), 0);
  const serve::Reply page = app.get("/jobs/" + std::to_string(id));
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_NE(page.body.find("id=\"stack-1-0\">#0 wait_for &lt;collective&gt; in attempt 1"), std::string::npos) << page.body;
  EXPECT_NE(page.body.find("id=\"stack-0-0\""), std::string::npos) << page.body;
  EXPECT_EQ(page.body.find("stack-1-1"), std::string::npos) << "rank 1 did not hang";
}

// A log is read from its end, bounded, and only when it is a regular file: a link could
// show any file the server can read, a FIFO would hold the page for ever.
TEST(DashboardJob, LogTailsAreBoundedAndReadSafely) {
  const ::cohort::testing::TempDir dir("cohort-dashboard-job");
  const fs::path logs = dir / "logs";
  fs::create_directories(logs);
  std::string big;
  for (int i = 0; i < 5000; ++i) big += "line " + std::to_string(i) + " \x1b[31mred\x1b[0m \xc3\n";
  write_file_atomically(logs / "rank-0.log", big);
  fs::create_symlink("/etc/passwd", logs / "rank-1.log");
  ASSERT_EQ(::mkfifo((logs / "rank-2.log").c_str(), 0600), 0);
  const auto id = put_launch(dir / "lineage.db", (dir / "gone").string(), logs.string());
  App app({.store = dir / "lineage.db", .user = "nobody"});
  const serve::Reply r = app.get("/api/jobs/" + std::to_string(id));
  ASSERT_EQ(r.status, 200) << r.body;
  const json::Value job = json::parse(r.body, "job");
  const auto& tails = job.at("logs").as_array();
  ASSERT_EQ(tails.size(), 3u);
  const std::string tail = tails[0].at("tail").as_string();
  EXPECT_TRUE(tails[0].at("cut").as_bool());
  EXPECT_LE(tail.size(), kTailBytes * 3);  // each escape and stray byte may grow to U+FFFD
  EXPECT_EQ(std::count(tail.begin(), tail.end(), '\n'), static_cast<long>(kTailLines));
  EXPECT_NE(tail.find("line 4999 "), std::string::npos);
  EXPECT_EQ(tail.find("line 4799 "), std::string::npos);
  EXPECT_EQ(tail.find('\x1b'), std::string::npos);
  EXPECT_TRUE(tails[1].at("tail").as_string().empty());
  EXPECT_NE(tails[1].at("error").as_string().find("rank-1.log"), std::string::npos);
  EXPECT_EQ(r.body.find("root:"), std::string::npos);
  EXPECT_TRUE(tails[2].at("tail").as_string().empty());
  EXPECT_FALSE(tails[2].at("error").as_string().empty());
  EXPECT_EQ(app.get("/jobs/" + std::to_string(id)).status, 200);
}

}  // namespace
}  // namespace cohort::dashboard
