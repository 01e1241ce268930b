// serve/router.hpp — one URL in front of a service's replicas: a Handler (handler.hpp) that
// forwards each V2 request to the replica with the fewest requests outstanding, over kept-alive
// connections (Boost.Beast) on threads of its own, so that no connection of the server waits
// on a replica. A replica that fails a request or its health check (/v2/health/ready) is
// ejected until it is ready again, and the request it failed is retried on another: every V2
// request is idempotent. With replicas of two versions, each version takes its share of the
// traffic (a canary). The router answers /metrics itself: requests, retries, ejections and
// outstanding requests per replica, in Prometheus' text format.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "serve/handler.hpp"

namespace cohort::serve {

struct ReplicaAddress {
  std::string host;
  int port = 0;
  std::string version;  // the model version it serves, for the traffic split; may be empty

  std::string name() const { return host + ":" + std::to_string(port); }
  bool operator==(const ReplicaAddress&) const = default;
};

// "HOST:PORT" or "HOST:PORT=VERSION"; an input error naming `option` otherwise.
ReplicaAddress parse_replica(const std::string& option, const std::string& text);

struct RouterOptions {
  std::optional<std::string> replica_token;  // sent to the replicas as a bearer token
  int threads = 2;
  std::chrono::milliseconds health_interval{500};
  std::chrono::seconds connect_timeout{2};
  std::chrono::seconds response_timeout{120};
  int attempts = 4;  // tries of one request, on as many replicas as there are
  // How long a request that finds no replica ready waits for the health checks to bring one
  // back (a replica restarting, or one ejected for a slow check), as KServe's activator holds
  // requests while no pod is ready, before it is answered 503.
  std::chrono::milliseconds wait_for_ready{15000};
  // Requests one replica takes at once (KServe's containerConcurrency); 0: no bound. A request
  // that finds every ready replica full waits, in order, for one of their requests to end.
  int replica_concurrency = 0;
};

struct ReplicaStats {
  ReplicaAddress address;
  bool ready = false;
  int outstanding = 0;
  int peak = 0;  // the most outstanding at once
  long long requests = 0, failures = 0, retries = 0, ejections = 0;
  // When the replica first answered a request; empty until it has.
  std::optional<std::chrono::steady_clock::time_point> first_answer;
};

// The load on the router as a whole, for the autoscaler: inference requests under way
// (those waiting for a replica included) and taken so far.
struct RouterLoad {
  int outstanding = 0;
  long long requests = 0;
};

class Router final : public Handler {
 public:
  explicit Router(RouterOptions options);
  ~Router() override;
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // The replicas to route to; those already known keep their connections and counts, and a
  // new one takes traffic once its health check passes. Names are resolved here: an
  // unresolvable host is an input error naming it.
  void set_replicas(const std::vector<ReplicaAddress>& replicas);
  // Percent of requests per version ({"1": 80, "2": 20}); versions not named share none;
  // empty: all replicas alike. A version without a ready replica gives its share to the rest.
  void set_traffic(const std::map<std::string, int>& percent);

  void handle(std::string_view method, std::string_view target, const std::string& body,
              std::optional<std::size_t> json_length, std::function<void(Reply)> done) const override;
  void stop_accepting() override;

  std::vector<ReplicaStats> stats() const;
  RouterLoad load() const;
  std::string metrics() const;  // Prometheus text

  struct Impl;  // router.cpp's own

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace cohort::serve
