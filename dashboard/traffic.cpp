#include "dashboard/traffic.hpp"

#include <cmath>
#include <vector>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "serve/scrape.hpp"

namespace cohort::dashboard {
namespace {

constexpr const char* kRequests = "cohort_router_requests_total";
constexpr const char* kRequestTime = "cohort_inference_request_duration_seconds";

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

json::Value number_or_null(const std::optional<double>& v) { return v && std::isfinite(*v) ? json::Value(*v) : json::Value(); }

json::Value load_of(const Load& l) {
  return json::Value(json::Object{{"requests_per_s", number_or_null(l.rate)}, {"p50_s", number_or_null(l.p50)},
                                  {"p99_s", number_or_null(l.p99)},
                                  {"p99_past_largest_bucket", l.p99 && std::isinf(*l.p99)}});
}

// Requests a second between two answered scrapes; nothing after a counter went back (the
// router restarted) or when there is no earlier scrape to compare with.
std::optional<double> rate(double now_count, double before_count, double seconds) {
  if (seconds <= 0 || now_count < before_count) return std::nullopt;
  return (now_count - before_count) / seconds;
}

}  // namespace

json::Value load_json(const ServiceLoad& l) {
  if (!l.scraped) return json::Value();
  json::Value o(json::Object{{"answered", l.answered}, {"at", l.at}});
  if (!l.problem.empty()) o.set("problem", l.problem);
  if (!l.answered) return o;
  o.set("all", load_of(l.all));
  json::Value versions = json::Value::object();
  for (const auto& [v, load] : l.versions) versions.set(v, load_of(load));
  o.set("versions", std::move(versions));
  return o;
}

TrafficCache::Scrape TrafficCache::scrape(const Service& service, Clock::time_point now,
                                          const std::optional<Scrape>& previous) const {
  const serve::Registry& r = *service.registry;
  Scrape s{.time = now, .shown = {.scraped = true, .at = wall_now()}};
  std::string token;
  try {
    const std::string text = read_text(service.dir / "token");
    token = text.substr(0, text.find('\n'));
  } catch (const Error& e) {
    s.shown.problem = std::string("its token cannot be read: ") + e.what();
    return s;
  }
  const auto router = serve::scrape_get(r.url, "/metrics", token, timeout_);
  if (!router) {
    s.shown.problem = "the router at " + r.url + " did not answer within " + std::to_string(timeout_.count()) + " ms";
    return s;
  }
  s.shown.answered = true;
  // Only the ready replicas are asked: a starting or dead one has nothing to say yet.
  std::map<std::string, std::vector<std::string>> histograms;
  std::vector<std::string> all;
  for (const auto& x : r.replicas) {
    if (x.state != "ready") continue;
    if (auto m = serve::scrape_get("http://" + x.host + ":" + std::to_string(x.port) + "/v2", "/metrics", token, timeout_)) {
      histograms[x.version].push_back(*m);
      all.push_back(std::move(*m));
    }
  }
  const bool compare = previous && previous->shown.answered;
  const double seconds = compare ? std::chrono::duration<double>(now - previous->time).count() : 0;
  auto load = [&](const std::string& version, const std::vector<std::string>& texts) {
    const double count = version.empty() ? serve::metric_total(*router, kRequests)
                                         : serve::metric_total(*router, kRequests, "version=\"" + version + "\"");
    s.requests[version] = count;
    Load l{.p50 = serve::histogram_quantile(texts, kRequestTime, 0.50), .p99 = serve::histogram_quantile(texts, kRequestTime, 0.99)};
    if (compare && previous->requests.contains(version)) l.rate = rate(count, previous->requests.at(version), seconds);
    return l;
  };
  s.shown.all = load("", all);
  for (const auto& [version, _] : r.storage) s.shown.versions[version] = load(version, histograms[version]);
  return s;
}

ServiceLoad TrafficCache::load(const Service& service, Clock::time_point now) {
  if (!service.registry || service.registry->state != "ready" || service.registry->url.empty()) return {};
  // One scrape at a time, under the lock: pages that arrive while it runs wait for its
  // answer instead of asking the service themselves.
  std::lock_guard lock(mutex_);
  const std::string key = service.dir.string();
  auto it = last_.find(key);
  if (it != last_.end() && now - it->second.time < every_) return it->second.shown;
  std::optional<Scrape> previous;
  if (it != last_.end()) previous = it->second;
  Scrape s = scrape(service, now, previous);
  ++scrapes_;
  return (last_[key] = std::move(s)).shown;
}

int TrafficCache::scrapes() const {
  std::lock_guard lock(mutex_);
  return scrapes_;
}

}  // namespace cohort::dashboard
