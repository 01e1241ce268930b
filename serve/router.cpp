// The router's client side, in the shape of Boost.Beast's asynchronous HTTP client example:
// one Forward per request, which takes a kept-alive connection from its replica's pool (or
// opens one), writes, reads, and hands the connection back.
#include <utility>  // before Asio's headers: with C++20 they use std::exchange unannounced

#include "serve/router.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <limits>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "common/error.hpp"
#include "common/text.hpp"

namespace cohort::serve {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr char kJsonLength[] = "Inference-Header-Content-Length";
constexpr char kPlainText[] = "text/plain; version=0.0.4; charset=utf-8";

std::string_view view(beast::string_view s) { return {s.data(), s.size()}; }

void log_line(const std::string& line) { std::cerr << "cohort serve router: " + line + "\n" << std::flush; }

struct Replica {
  ReplicaAddress address;
  tcp::endpoint endpoint;
  std::atomic<bool> ready{false};
  std::atomic<int> outstanding{0};
  std::atomic<int> peak{0};  // the most requests it had under way at once
  std::atomic<long long> requests{0}, failures{0}, retries{0}, ejections{0};
  std::atomic<std::chrono::steady_clock::rep> first_answer{0};  // ticks since the clock's epoch; 0: none yet
  std::mutex pool_mutex;
  std::vector<std::unique_ptr<beast::tcp_stream>> idle;

  // Ejected until a health check finds it ready again; counted once per ejection.
  void eject(const std::string& why) {
    if (ready.exchange(false)) {
      ++ejections;
      log_line("replica " + address.name() + " ejected: " + why);
    }
  }
  std::unique_ptr<beast::tcp_stream> take_idle() {
    std::lock_guard lock(pool_mutex);
    if (idle.empty()) return nullptr;
    auto s = std::move(idle.back());
    idle.pop_back();
    return s;
  }
  void give_back(std::unique_ptr<beast::tcp_stream> s) {
    std::lock_guard lock(pool_mutex);
    idle.push_back(std::move(s));
  }
  void drop_idle() {
    std::lock_guard lock(pool_mutex);
    idle.clear();
  }
};

}  // namespace

ReplicaAddress parse_replica(const std::string& option, const std::string& text) {
  ReplicaAddress a;
  std::string_view rest = text;
  if (const auto eq = rest.find('='); eq != std::string_view::npos) {
    a.version = std::string(rest.substr(eq + 1));
    rest = rest.substr(0, eq);
  }
  const auto colon = rest.rfind(':');
  const auto port = colon == std::string_view::npos ? std::nullopt : parse_integer(rest.substr(colon + 1), 1, 65535);
  if (!port || colon == 0) throw input_error(option + " " + text + ": expected HOST:PORT or HOST:PORT=VERSION");
  a.host = std::string(rest.substr(0, colon));
  a.port = static_cast<int>(*port);
  return a;
}

struct Router::Impl {
  explicit Impl(RouterOptions o) : options(std::move(o)), guard(asio::make_work_guard(io)), health_timer(io) {}

  RouterOptions options;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard;
  asio::steady_timer health_timer;
  std::vector<std::thread> threads;
  std::atomic<bool> draining{false};
  std::atomic<int> outstanding{0};
  std::atomic<long long> requests{0};

  mutable std::mutex mutex;  // guards replicas, traffic and credit
  std::vector<std::shared_ptr<Replica>> replicas;
  std::map<std::string, int> traffic;
  std::map<std::string, long long> credit;  // smooth weighted round robin between versions
  std::size_t turn = 0;                      // where the next look for the least busy starts
  // Requests that found every ready replica at replica_concurrency: each goes on when one
  // request ends, first come first served.
  std::deque<std::function<void()>> waiting_for_room;

  // The replica for a request, or null. When ready replicas there are but all full, null
  // with `full` set, and `on_room` runs once a request ends.
  std::shared_ptr<Replica> pick(const std::set<const Replica*>& tried, const std::function<void()>& on_room, bool& full);
  void released(Replica& replica);  // a request of it ended
  std::string pick_version(const std::vector<std::shared_ptr<Replica>>& ready);
  void check_health();
  void schedule_health();
};

// Smooth weighted round robin (nginx's): every version gains its weight, the richest is
// chosen and pays the total. The split is exact over any run of requests, not just on
// average, so a canary's share is what was asked even over few requests.
std::string Router::Impl::pick_version(const std::vector<std::shared_ptr<Replica>>& ready) {
  std::set<std::string> versions;
  for (const auto& r : ready) {
    if (auto it = traffic.find(r->address.version); it != traffic.end() && it->second > 0) versions.insert(it->first);
  }
  if (versions.empty()) return {};
  long long total = 0;
  std::string best;
  for (const auto& v : versions) {
    credit[v] += traffic[v];
    total += traffic[v];
    if (best.empty() || credit[v] > credit[best]) best = v;
  }
  credit[best] -= total;
  return best;
}

// The ready replica with the fewest requests outstanding, of the version whose turn it is,
// avoiding those this request already failed on.
std::shared_ptr<Replica> Router::Impl::pick(const std::set<const Replica*>& tried, const std::function<void()>& on_room,
                                            bool& full) {
  std::lock_guard lock(mutex);
  std::vector<std::shared_ptr<Replica>> ready;
  const int cap = options.replica_concurrency;
  full = false;
  for (const auto& r : replicas) {
    if (!r->ready || tried.count(r.get())) continue;
    if (cap > 0 && r->outstanding >= cap) full = true;
    else ready.push_back(r);
  }
  if (ready.empty()) {
    // Under the lock that released() takes after its decrement: no end of a request is missed.
    if (full) waiting_for_room.push_back(on_room);
    return nullptr;
  }
  full = false;
  const std::string version = traffic.empty() ? std::string() : pick_version(ready);
  // Ties go round the replicas in turn: with little load every replica has none outstanding,
  // and the first would otherwise take it all.
  std::shared_ptr<Replica> best;
  const std::size_t first = turn++;
  for (std::size_t i = 0; i < ready.size(); ++i) {
    const auto& r = ready[(first + i) % ready.size()];
    if (!version.empty() && r->address.version != version) continue;
    if (!best || r->outstanding < best->outstanding) best = r;
  }
  if (!best) best = ready.front();
  // Counted under the lock, so that two requests cannot both take a replica's last room.
  const int now = ++best->outstanding;
  best->peak = std::max(best->peak.load(), now);
  return best;
}

void Router::Impl::released(Replica& replica) {
  --replica.outstanding;
  std::function<void()> next;
  {
    std::lock_guard lock(mutex);
    if (waiting_for_room.empty()) return;
    next = std::move(waiting_for_room.front());
    waiting_for_room.pop_front();
  }
  asio::post(io, std::move(next));
}

namespace {

// One request on its way to a replica, and back.
class Forward : public std::enable_shared_from_this<Forward> {
 public:
  Forward(Router::Impl& router, http::request<http::string_body> request, std::function<void(Reply)> done)
      : router_(router), request_(std::move(request)), done_(std::move(done)) {}

  void start() {
    if (attempts_++ >= router_.options.attempts) return finish_unavailable("every try failed");
    bool full = false;
    replica_ = router_.pick(tried_, [self = shared_from_this()] { self->start(); }, full);
    if (!replica_ && full) {
      --attempts_;  // waiting for room is not a try
      return;
    }
    if (!replica_) return wait_for_ready(tried_.empty() ? "no replica is ready (or each has containerConcurrency requests)" : "no other replica is ready");
    ++replica_->requests;
    stream_ = replica_->take_idle();
    reused_ = stream_ != nullptr;
    if (reused_) return write();
    stream_ = std::make_unique<beast::tcp_stream>(asio::make_strand(router_.io));
    stream_->expires_after(router_.options.connect_timeout);
    stream_->async_connect(replica_->endpoint, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return self->failed("cannot connect (" + ec.message() + ")", true);
      self->write();
    });
  }

 private:
  void write() {
    stream_->expires_after(router_.options.response_timeout);
    http::async_write(*stream_, request_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->failed("write failed (" + ec.message() + ")", !self->reused_);
      self->read();
    });
  }

  void read() {
    parser_.emplace();
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    buffer_.clear();
    http::async_read(*stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->failed("no reply (" + ec.message() + ")", !self->reused_);
      self->on_reply();
    });
  }

  // A replica that answers 503 is draining or full: the request goes to another.
  void on_reply() {
    auto& response = parser_->get();
    if (response.result_int() == 503) {
      stream_.reset();
      return failed("answered 503", true);
    }
    Reply r;
    r.status = static_cast<int>(response.result_int());
    r.body = std::move(response.body());
    if (auto it = response.find(http::field::content_type); it != response.end()) r.content_type = std::string(view(it->value()));
    if (auto it = response.find(kJsonLength); it != response.end()) {
      if (auto n = parse_integer(view(it->value()), 0, std::numeric_limits<std::int64_t>::max())) r.json_length = *n;
    }
    if (response.keep_alive()) replica_->give_back(std::move(stream_));
    router_.released(*replica_);
    std::chrono::steady_clock::rep none = 0;
    replica_->first_answer.compare_exchange_strong(none, std::chrono::steady_clock::now().time_since_epoch().count());
    done_(std::move(r));
  }

  // A kept-alive connection the replica closed while idle is no sign of trouble: the same
  // replica is tried once more on a new connection. Anything else ejects it, and the request
  // goes to another.
  void failed(const std::string& why, bool eject) {
    stream_.reset();
    router_.released(*replica_);
    if (!eject && stale_ < kStaleTries) {
      ++stale_;
      --replica_->requests;
      replica_->drop_idle();
      --attempts_;
      return start();
    }
    ++replica_->failures;
    ++replica_->retries;
    replica_->drop_idle();
    replica_->eject(why);
    tried_.insert(replica_.get());
    start();
  }

  // No replica can take the request now: it waits for the next health checks, and then may
  // go to any replica again, one that failed it included (it was ejected, and is back only
  // once it answers ready). Waiting is not a try: the tries stay bounded by `attempts`.
  void wait_for_ready(const std::string& why) {
    if (waited_ >= router_.options.wait_for_ready) return finish_unavailable(why);
    waited_ += router_.options.health_interval;
    --attempts_;
    tried_.clear();
    replica_.reset();
    wait_ = std::make_unique<asio::steady_timer>(router_.io, router_.options.health_interval);
    wait_->async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec) return self->finish_unavailable("the router stopped");
      self->start();
    });
  }

  void finish_unavailable(const std::string& why) {
    Reply r{503, error_body("the service cannot answer now: " + why + "; try again shortly")};
    r.retry_after_s = 1;
    done_(std::move(r));
  }

  Router::Impl& router_;
  http::request<http::string_body> request_;
  std::function<void(Reply)> done_;
  int attempts_ = 0;
  std::set<const Replica*> tried_;
  std::shared_ptr<Replica> replica_;
  std::unique_ptr<beast::tcp_stream> stream_;
  bool reused_ = false;
  static constexpr int kStaleTries = 2;
  int stale_ = 0;  // kept-alive connections found closed
  std::chrono::milliseconds waited_{0};  // for a replica to be ready
  std::unique_ptr<asio::steady_timer> wait_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
};

// GET /v2/health/ready on a connection of its own: a replica's readiness, apart from traffic.
class HealthCheck : public std::enable_shared_from_this<HealthCheck> {
 public:
  HealthCheck(Router::Impl& router, std::shared_ptr<Replica> replica)
      : replica_(std::move(replica)), stream_(asio::make_strand(router.io)) {
    request_ = {http::verb::get, "/v2/health/ready", 11};
    request_.set(http::field::host, replica_->address.host);
    if (router.options.replica_token) request_.set(http::field::authorization, "Bearer " + *router.options.replica_token);
    timeout_ = router.options.connect_timeout;
  }
  void start() {
    stream_.expires_after(timeout_);
    stream_.async_connect(replica_->endpoint, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return self->result(false, "health check: cannot connect (" + ec.message() + ")");
      http::async_write(self->stream_, self->request_, [self](beast::error_code e, std::size_t) {
        if (e) return self->result(false, "health check: " + e.message());
        http::async_read(self->stream_, self->buffer_, self->response_, [self](beast::error_code e2, std::size_t) {
          if (e2) return self->result(false, "health check: " + e2.message());
          self->result(self->response_.result_int() == 200,
                       "health check: answered " + std::to_string(self->response_.result_int()));
        });
      });
    });
  }

 private:
  void result(bool ready, const std::string& why) {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    if (!ready) return replica_->eject(why);
    if (!replica_->ready.exchange(true)) log_line("replica " + replica_->address.name() + " ready");
  }

  std::shared_ptr<Replica> replica_;
  beast::tcp_stream stream_;
  http::request<http::empty_body> request_;
  http::response<http::string_body> response_;
  beast::flat_buffer buffer_;
  std::chrono::seconds timeout_;
};

}  // namespace

void Router::Impl::check_health() {
  std::vector<std::shared_ptr<Replica>> all;
  {
    std::lock_guard lock(mutex);
    all = replicas;
  }
  for (auto& r : all) std::make_shared<HealthCheck>(*this, r)->start();
}

void Router::Impl::schedule_health() {
  health_timer.expires_after(options.health_interval);
  health_timer.async_wait([this](beast::error_code ec) {
    if (ec) return;
    check_health();
    schedule_health();
  });
}

Router::Router(RouterOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->schedule_health();
  for (int i = 0; i < std::max(1, impl_->options.threads); ++i) impl_->threads.emplace_back([this] { impl_->io.run(); });
}

Router::~Router() {
  impl_->guard.reset();
  impl_->io.stop();
  for (auto& t : impl_->threads) t.join();
}

void Router::set_replicas(const std::vector<ReplicaAddress>& addresses) {
  std::vector<std::shared_ptr<Replica>> next;
  tcp::resolver resolver(impl_->io);
  for (const auto& a : addresses) {
    std::shared_ptr<Replica> known;
    {
      std::lock_guard lock(impl_->mutex);
      for (const auto& r : impl_->replicas) {
        if (r->address == a) known = r;
      }
    }
    if (!known) {
      beast::error_code ec;
      auto found = resolver.resolve(a.host, std::to_string(a.port), ec);
      if (ec || found.empty()) throw input_error("replica " + a.name() + ": cannot resolve " + a.host + " (" + ec.message() + ")");
      known = std::make_shared<Replica>();
      known->address = a;
      known->endpoint = *found.begin();
    }
    next.push_back(std::move(known));
  }
  {
    std::lock_guard lock(impl_->mutex);
    impl_->replicas = std::move(next);
  }
  asio::post(impl_->io, [this] { impl_->check_health(); });
}

void Router::set_traffic(const std::map<std::string, int>& percent) {
  std::lock_guard lock(impl_->mutex);
  impl_->traffic = percent;
  impl_->credit.clear();
}

void Router::handle(std::string_view method, std::string_view target, const std::string& body,
                    std::optional<std::size_t> json_length, std::function<void(Reply)> done) const {
  const std::string_view path = target.substr(0, target.find('?'));
  if (path == "/metrics" && method == "GET") return done(Reply{200, metrics(), kPlainText});
  if (path == "/v2/health/live" && method == "GET") return done(Reply{200, "{}"});
  if (path == "/v2/health/ready" && method == "GET") {
    const bool any = std::ranges::any_of(stats(), [](const ReplicaStats& s) { return s.ready; });
    if (impl_->draining) return done(Reply{503, error_body("the router is draining: it takes no new requests")});
    if (!any) return done(Reply{503, error_body("no replica is ready yet")});
    return done(Reply{200, "{}"});
  }
  http::request<http::string_body> request;
  request.method_string(beast::string_view(method.data(), method.size()));
  request.target(beast::string_view(target.data(), target.size()));
  request.version(11);
  request.set(http::field::host, "replica");
  request.set(http::field::content_type, "application/json");
  if (impl_->options.replica_token) request.set(http::field::authorization, "Bearer " + *impl_->options.replica_token);
  if (json_length) request.set(kJsonLength, std::to_string(*json_length));
  request.body() = body;
  request.keep_alive(true);
  request.prepare_payload();
  ++impl_->outstanding;
  ++impl_->requests;
  auto counted = [impl = impl_.get(), done = std::move(done)](Reply r) {
    --impl->outstanding;
    done(std::move(r));
  };
  auto forward = std::make_shared<Forward>(*impl_, std::move(request), std::move(counted));
  asio::post(impl_->io, [forward] { forward->start(); });
}

void Router::stop_accepting() { impl_->draining = true; }

std::vector<ReplicaStats> Router::stats() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<ReplicaStats> out;
  for (const auto& r : impl_->replicas) {
    out.push_back({r->address, r->ready, r->outstanding, r->peak, r->requests, r->failures, r->retries, r->ejections, {}});
    if (const auto t = r->first_answer.load()) {
      out.back().first_answer = std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(t));
    }
  }
  return out;
}

RouterLoad Router::load() const { return {impl_->outstanding.load(), impl_->requests.load()}; }

std::string Router::metrics() const {
  const auto all = stats();
  std::ostringstream out;
  auto family = [&](const char* name, const char* type, const char* help, auto value) {
    out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
    for (const auto& s : all) {
      out << name << "{replica=\"" << s.address.name() << "\",version=\"" << s.address.version << "\"} " << value(s)
          << "\n";
    }
  };
  family("cohort_router_requests_total", "counter", "Requests sent to the replica, retries included.",
         [](const ReplicaStats& s) { return s.requests; });
  family("cohort_router_failures_total", "counter", "Requests the replica failed (then retried on another).",
         [](const ReplicaStats& s) { return s.failures; });
  family("cohort_router_retries_total", "counter", "Requests taken from the replica and retried on another.",
         [](const ReplicaStats& s) { return s.retries; });
  family("cohort_router_ejections_total", "counter", "Times the replica was taken out of the rotation.",
         [](const ReplicaStats& s) { return s.ejections; });
  family("cohort_router_outstanding", "gauge", "Requests under way at the replica.",
         [](const ReplicaStats& s) { return s.outstanding; });
  family("cohort_router_outstanding_peak", "gauge", "The most requests under way at the replica at once.",
         [](const ReplicaStats& s) { return s.peak; });
  family("cohort_router_replica_ready", "gauge", "1 while the replica takes traffic.",
         [](const ReplicaStats& s) { return s.ready ? 1 : 0; });
  return out.str();
}

}  // namespace cohort::serve
