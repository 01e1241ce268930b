// A submitted service's load on the endpoints page: the request rate between two scrapes of
// its router's /metrics and p50/p99 from its ready replicas' histograms, per service and per
// version, against small HTTP servers that answer a fixed exposition behind the token.
#include <gtest/gtest.h>

#include <utility>  // before Asio's headers: with C++20 they use std::exchange unannounced

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <functional>
#include <thread>

#include "common/fd.hpp"
#include "common/json.hpp"
#include "dashboard/dashboard.hpp"
#include "dashboard/traffic.hpp"
#include "lineage/store.hpp"
#include "serve/registry.hpp"
#include "tests/common/temp_dir.hpp"

namespace cohort::dashboard {
namespace {

namespace fs = std::filesystem;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

constexpr const char* kToken = "a-token-of-the-service-0123";

// GET /metrics with the right bearer token: 200 and body(n) for the n-th such request;
// anything else: 401.
class MetricsStub {
 public:
  explicit MetricsStub(std::function<std::string(int)> body)
      : body_(std::move(body)), acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~MetricsStub() {
    io_.stop();
    thread_.join();
  }
  int port() const { return acceptor_.local_endpoint().port(); }
  int hits() const { return hits_; }

 private:
  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (ec) return;
      answer(socket);
      accept();
    });
  }
  void answer(tcp::socket& socket) {
    boost::system::error_code ec;
    boost::beast::flat_buffer buffer;
    http::request<http::empty_body> req;
    http::read(socket, buffer, req, ec);
    if (ec) return;
    http::response<http::string_body> res{http::status::unauthorized, 11};
    if (req[http::field::authorization] == std::string("Bearer ") + kToken && req.target() == "/metrics") {
      res.result(http::status::ok);
      res.body() = body_(++hits_);
    }
    res.prepare_payload();
    http::write(socket, res, ec);
  }

  std::function<std::string(int)> body_;
  std::atomic<int> hits_{0};
  boost::asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
};

// A replica's request-time histogram: `counts` requests at or under each bound, cumulative.
std::string histogram(const std::vector<std::pair<std::string, int>>& counts) {
  std::string out = "# TYPE cohort_inference_request_duration_seconds histogram\n";
  for (const auto& [le, n] : counts) {
    out += "cohort_inference_request_duration_seconds_bucket{model=\"m\",version=\"1\",le=\"" + le + "\"} " +
           std::to_string(n) + "\n";
  }
  return out;
}

// A port nothing listens on.
int closed_port() {
  boost::asio::io_context io;
  tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

class Traffic : public ::testing::Test {
 protected:
  // The router has sent 60 requests a scrape to version 1's replica and 20 to version 2's.
  MetricsStub router_{[this](int n) {
    return "cohort_router_requests_total{replica=\"127.0.0.1:" + std::to_string(v1_.port()) + "\",version=\"1\"} " +
           std::to_string(60 * n) + "\ncohort_router_requests_total{replica=\"127.0.0.1:" + std::to_string(v2_.port()) +
           "\",version=\"2\"} " + std::to_string(20 * n) + "\n";
  }};
  // Version 1: 90 of 100 requests in 10 ms, 99 in 50 ms; version 2: all 10 between 50 and 100 ms.
  MetricsStub v1_{[](int) { return histogram({{"0.01", 90}, {"0.05", 99}, {"0.1", 100}, {"+Inf", 100}}); }};
  MetricsStub v2_{[](int) { return histogram({{"0.01", 0}, {"0.05", 0}, {"0.1", 10}, {"+Inf", 10}}); }};
  ::cohort::testing::TempDir dir_{"cohort-dashboard-traffic"};

  Service service(const std::string& url) {
    const fs::path d = dir_ / "services" / "mlp";
    fs::create_directories(d);
    write_file_atomically(d / "token", std::string(kToken) + "\n");
    serve::write_registry(
        d, {.name = "mlp", .state = "ready", .job = "7", .url = url, .message = "", .traffic = {{"1", 75}, {"2", 25}},
            .storage = {{"1", "/m/1"}, {"2", "/m/2"}},
            .replicas = {{.id = 0, .node = "n1", .host = "127.0.0.1", .port = v1_.port(), .pid = 1, .version = "1", .state = "ready"},
                         {.id = 1, .node = "n1", .host = "127.0.0.1", .port = v2_.port(), .pid = 2, .version = "2", .state = "ready"},
                         {.id = 2, .node = "n2", .host = "127.0.0.1", .port = closed_port(), .pid = 3, .version = "2",
                          .state = "starting"}}});
    return {.dir = d, .registry = serve::read_registry(d)};
  }
  std::string router_url() const { return "http://127.0.0.1:" + std::to_string(router_.port()); }
};

TEST_F(Traffic, RateIsBetweenTheLastTwoScrapesAndQuantilesComeFromTheReplicas) {
  TrafficCache cache(std::chrono::seconds(5), std::chrono::seconds(2));
  const Service s = service(router_url());
  const auto t0 = TrafficCache::Clock::time_point{} + std::chrono::hours(1);
  const ServiceLoad first = cache.load(s, t0);
  ASSERT_TRUE(first.answered) << first.problem;
  EXPECT_FALSE(first.all.rate) << "one scrape gives no rate";
  EXPECT_EQ(first.all.p50, 0.01);  // 110 requests: the 55th is in 10 ms, the 109th in 100 ms
  EXPECT_EQ(first.all.p99, 0.1);
  EXPECT_EQ(first.versions.at("1").p50, 0.01);
  EXPECT_EQ(first.versions.at("1").p99, 0.05);
  EXPECT_EQ(first.versions.at("2").p50, 0.1);

  cache.load(s, t0 + std::chrono::seconds(1));
  EXPECT_EQ(router_.hits(), 1) << "a second page within the interval is answered from the last scrape";
  EXPECT_EQ(cache.scrapes(), 1);

  const ServiceLoad second = cache.load(s, t0 + std::chrono::seconds(10));
  ASSERT_TRUE(second.answered) << second.problem;
  EXPECT_EQ(router_.hits(), 2);
  ASSERT_TRUE(second.all.rate);
  EXPECT_DOUBLE_EQ(*second.all.rate, 8.0);  // (60 + 20) requests in 10 s
  EXPECT_DOUBLE_EQ(second.versions.at("1").rate.value_or(-1), 6.0);
  EXPECT_DOUBLE_EQ(second.versions.at("2").rate.value_or(-1), 2.0);
}

TEST_F(Traffic, ServiceThatDoesNotAnswerShowsNoAnswerNotAnErrorPage) {
  lineage::Store::open(dir_ / "lineage.db");
  service("http://127.0.0.1:" + std::to_string(closed_port()));
  App app({.store = dir_ / "lineage.db", .user = "nobody", .services = dir_ / "services"});
  const serve::Reply page = app.get("/endpoints");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_NE(page.body.find("no answer"), std::string::npos) << page.body;
  const json::Value all = json::parse(app.get("/api/endpoints").body, "endpoints");
  const json::Value& load = all.at("services").as_array()[0].at("load");
  EXPECT_FALSE(load.at("answered").as_bool());
  EXPECT_NE(load.at("problem").as_string().find("did not answer"), std::string::npos);
}

TEST_F(Traffic, EndpointsPageAndApiShowEachVersionsLoad) {
  lineage::Store::open(dir_ / "lineage.db");
  service(router_url());
  App app({.store = dir_ / "lineage.db", .user = "nobody", .services = dir_ / "services", .scrape_every = std::chrono::milliseconds(0)});
  const json::Value all = json::parse(app.get("/api/endpoints").body, "endpoints");
  const json::Value& load = all.at("services").as_array()[0].at("load");
  ASSERT_TRUE(load.at("answered").as_bool()) << json::write(load);
  EXPECT_EQ(load.at("all").at("p50_s").as_double(), 0.01);
  EXPECT_EQ(load.at("versions").at("2").at("p99_s").as_double(), 0.1);
  EXPECT_TRUE(load.at("all").at("requests_per_s").is_null()) << "one scrape gives no rate";
  const serve::Reply page = app.get("/endpoints");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_NE(page.body.find("&le; 100.0 ms"), std::string::npos) << page.body;  // version 2's p50
  EXPECT_NE(page.body.find("&le; 50.0 ms"), std::string::npos) << page.body;   // version 1's p99
  EXPECT_EQ(router_.hits(), 2);
}

TEST_F(Traffic, AWrongTokenIsNoAnswer) {
  const Service s = service(router_url());
  write_file_atomically(s.dir / "token", "not-the-token-of-the-service\n");
  TrafficCache cache(std::chrono::seconds(5), std::chrono::seconds(2));
  const ServiceLoad l = cache.load(s, TrafficCache::Clock::now());
  EXPECT_TRUE(l.scraped);
  EXPECT_FALSE(l.answered);
  EXPECT_EQ(router_.hits(), 0);
}

}  // namespace
}  // namespace cohort::dashboard
