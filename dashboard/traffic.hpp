// dashboard/traffic.hpp — the load each submitted service carries, from its own metrics: the
// router's requests per version (a rate between the last two scrapes) and the ready replicas'
// request-time histograms (p50, p99). A service is scraped at most once per interval however
// many pages are loaded, each GET bounded by a short timeout, so that a page never waits long
// on a service that does not answer: it shows "no answer" instead. Private to dashboard/.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "common/json.hpp"
#include "dashboard/data.hpp"

namespace cohort::dashboard {

struct Load {
  std::optional<double> rate = {};           // requests a second through the router
  std::optional<double> p50 = {}, p99 = {};  // seconds, the upper bound of the bucket; +inf past the largest
};

struct ServiceLoad {
  bool scraped = false;   // the service is ready and was asked
  bool answered = false;  // its router answered the last ask
  std::string problem = {};  // why not, one line
  double at = 0;          // when it was last asked, seconds since the epoch
  Load all = {};
  std::map<std::string, Load> versions = {};
};
json::Value load_json(const ServiceLoad& load);

class TrafficCache {
 public:
  using Clock = std::chrono::steady_clock;
  TrafficCache(std::chrono::milliseconds every, std::chrono::milliseconds timeout) : every_(every), timeout_(timeout) {}

  // The service's load as of its last scrape, scraping again first when that is `every` old.
  // Time is given, not read, so that tests can say how far apart two scrapes were.
  ServiceLoad load(const Service& service, Clock::time_point now);
  int scrapes() const;

 private:
  struct Scrape {
    Clock::time_point time;
    std::map<std::string, double> requests = {};  // the router's counters per version; "" their sum
    ServiceLoad shown = {};
  };
  Scrape scrape(const Service& service, Clock::time_point now, const std::optional<Scrape>& previous) const;

  const std::chrono::milliseconds every_, timeout_;
  mutable std::mutex mutex_;
  std::map<std::string, Scrape> last_;  // by the service's folder; answered scrapes only for rates
  int scrapes_ = 0;
};

}  // namespace cohort::dashboard
