// The dashboard's routes: /assets/NAME, /api/…, and the pages.
#include <chrono>

#include "common/error.hpp"
#include "common/text.hpp"
#include "dashboard/assets.hpp"
#include "dashboard/dashboard.hpp"
#include "dashboard/data.hpp"
#include "dashboard/html.hpp"
#include "dashboard/slurm.hpp"
#include "dashboard/traffic.hpp"
#include "lineage/record.hpp"
#include "lineage/store.hpp"

namespace cohort::dashboard {
namespace {

constexpr std::string_view kHtml = "text/html; charset=utf-8";

// The query: only the token the server has already checked may be in it. Anything else is a
// request this dashboard does not understand: 400, rather than a page that silently ignores it.
void check_query(std::string_view query) {
  for (auto pair : split(query, '&')) {
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    const std::string_view key = pair.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (key != "token") {
      throw HttpError{400, "the query parameter '" + std::string(key.substr(0, 64)) +
                               "' means nothing here: pages take no parameters but ?token="};
    }
    if (value.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") != std::string_view::npos) {
      throw HttpError{400, "?token= holds characters no token has"};
    }
  }
}

// The path's segments: "/sweeps/3" → {"sweeps", "3"}; a trailing slash is ignored.
std::vector<std::string_view> segments(std::string_view path) {
  std::vector<std::string_view> out;
  for (auto s : split(path, '/')) {
    if (!s.empty()) out.push_back(s);
  }
  return out;
}

serve::Reply json_reply(const json::Value& value) { return {.status = 200, .body = json::write(value, 2) + "\n"}; }

serve::Reply html_reply(std::string body) {
  return {.status = 200, .body = std::move(body), .content_type = std::string(kHtml),
          .headers = {{"Cache-Control", "no-store"}, {"X-Content-Type-Options", "nosniff"},
                      {"Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:"}}};
}

serve::Reply asset_reply(std::string_view name) {
  for (const auto& a : assets()) {
    if (a.name != name) continue;
    const std::string type = name.ends_with(".css") ? "text/css; charset=utf-8" : "text/javascript; charset=utf-8";
    return {.status = 200, .body = std::string(a.body), .content_type = type, .headers = {{"Cache-Control", "max-age=3600"}}};
  }
  throw HttpError{404, "no asset named '" + std::string(name.substr(0, 64)) + "'"};
}

json::Value api_index() {
  json::Value list = json::Value::array();
  for (const char* p : {"/api/jobs", "/api/jobs/ID", "/api/sweeps", "/api/sweeps/ID", "/api/pipelines", "/api/pipelines/ID",
                        "/api/models", "/api/models/ID", "/api/endpoints"}) {
    list.push(p);
  }
  return json::Value(json::Object{{"endpoints", std::move(list)}});
}

}  // namespace

App::App(Config config)
    : config_(std::move(config)),
      slurm_(std::make_unique<SlurmCache>(config_.user, config_.slurm_every)),
      traffic_(std::make_unique<TrafficCache>(config_.scrape_every, config_.scrape_timeout)) {}
App::~App() = default;

int App::slurm_queries() const { return slurm_->queries(); }

namespace {

// A launch with its log: per rank from its --output-dir, else the tail of the batch job's
// output file, which only Slurm knows the place of.
JobView job_with_log(const lineage::Store& store, std::string_view id, SlurmCache& slurm) {
  JobView v = load_job(store, parse_id(id, "launch"));
  const std::string job = text_property(v.launch.properties, "job_id");
  if (!v.output_dir.empty() || job.empty()) return v;
  const auto out = slurm.batch_output(job);
  if (out.path.empty()) v.batch_error = out.error;
  else v.batch_log = read_tail(out.path);
  return v;
}

serve::Reply api(const std::vector<std::string_view>& s, const lineage::Store& store, SlurmCache& slurm,
                 const std::filesystem::path& services, TrafficCache& traffic) {
  const std::string_view what = s.size() > 1 ? s[1] : "";
  if (s.size() == 1) return json_reply(api_index());
  if (s.size() == 2 && what == "jobs") {
    return json_reply(json::Value(json::Object{{"launches", launches_json(store)}, {"slurm", slurm.jobs()}}));
  }
  if (s.size() == 3 && what == "jobs") return json_reply(job_json(job_with_log(store, s[2], slurm)));
  if (s.size() == 2 && what == "sweeps") return json_reply(sweeps_json(store));
  if (s.size() == 3 && what == "sweeps") return json_reply(sweep_json(load_sweep(store, parse_id(s[2], "sweep"))));
  if (s.size() == 2 && what == "pipelines") return json_reply(pipelines_json(store));
  if (s.size() == 3 && what == "pipelines") {
    return json_reply(pipeline_json(load_pipeline(store, parse_id(s[2], "pipeline run"))));
  }
  if (s.size() == 2 && what == "models") return json_reply(models_json(store));
  if (s.size() == 3 && what == "models") return json_reply(model_json(store, parse_id(s[2], "artifact")));
  if (s.size() == 2 && what == "endpoints") return json_reply(endpoints_json(store, services, traffic));
  throw HttpError{404, "no API at /" + std::string(s.size() > 1 ? s[1].substr(0, 64) : "") + "; see /api/"};
}

serve::Reply view(const std::vector<std::string_view>& s, const lineage::Store& store, SlurmCache& slurm,
                  const std::filesystem::path& services, TrafficCache& traffic) {
  if (s.empty()) return html_reply(overview_page(store, services));
  const std::string_view what = s[0];
  if (s.size() == 1 && what == "jobs") return html_reply(jobs_page(store, slurm.jobs()));
  if (s.size() == 2 && what == "jobs") return html_reply(job_page(job_with_log(store, s[1], slurm)));
  if (s.size() == 1 && what == "sweeps") return html_reply(sweeps_page(store));
  if (s.size() == 2 && what == "sweeps") return html_reply(sweep_page(load_sweep(store, parse_id(s[1], "sweep"))));
  if (s.size() == 1 && what == "pipelines") return html_reply(pipelines_page(store));
  if (s.size() == 2 && what == "pipelines") {
    return html_reply(pipeline_page(load_pipeline(store, parse_id(s[1], "pipeline run"))));
  }
  if (s.size() == 1 && what == "models") return html_reply(models_page(store));
  if (s.size() == 2 && what == "models") return html_reply(model_page(store, parse_id(s[1], "artifact")));
  if (s.size() == 1 && what == "endpoints") return html_reply(endpoints_page(store, services, traffic));
  throw HttpError{404, "no page here; the pages are /jobs, /sweeps, /pipelines, /models and /endpoints"};
}

}  // namespace

serve::Reply App::get(std::string_view target) const {
  const auto q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const bool is_api = path == "/api" || path.starts_with("/api/");
  try {
    if (q != std::string_view::npos) check_query(target.substr(q + 1));
    const auto s = segments(path);
    if (s.size() == 2 && s[0] == "assets") return asset_reply(s[1]);
    // Opened per request: a Store is used by one thread, and what other processes wrote
    // since (a trial that ended, a task that started) is then in what the page shows.
    const lineage::Store store = lineage::open_merged(config_.store);
    return is_api ? api(s, store, *slurm_, config_.services, *traffic_)
                  : view(s, store, *slurm_, config_.services, *traffic_);
  } catch (const HttpError& e) {
    if (is_api) return {.status = e.status, .body = serve::error_body(e.message)};
    serve::Reply r = html_reply(error_page(e.status, e.message));
    r.status = e.status;
    return r;
  } catch (const std::exception& e) {
    const std::string message = std::string("cannot read what cohort keeps: ") + e.what();
    if (is_api) return {.status = 500, .body = serve::error_body(message)};
    serve::Reply r = html_reply(error_page(500, message));
    r.status = 500;
    return r;
  }
}

void App::handle(std::string_view method, std::string_view target, const std::string&, std::optional<std::size_t>,
                 std::function<void(serve::Reply)> done) const {
  if (method != "GET" && method != "HEAD") {
    return done({.status = 405, .body = serve::error_body("the dashboard only reads: use GET"),
                 .headers = {{"Allow", "GET, HEAD"}}});
  }
  done(get(target));
}

}  // namespace cohort::dashboard
