// Boost.Beast's asynchronous HTTP server, in the shape of its advanced server example: one
// Session per connection, each on a strand of an io_context that N threads run.
#include <utility>  // before Asio's headers: with C++20 they use std::exchange unannounced

#include "serve/server.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <csignal>
#include <limits>
#include <list>
#include <mutex>
#include <thread>

#include "common/error.hpp"
#include "common/text.hpp"

namespace cohort::serve {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr std::uint32_t kHeaderLimit = 16 * 1024;
constexpr char kJsonLength[] = "Inference-Header-Content-Length";  // the binary tensor extension

// Equal without a timing that tells how much of the token was right.
std::string_view view(beast::string_view s) { return {s.data(), s.size()}; }

bool same_token(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
  return diff == 0;
}

class Listener;

// Whether Handler::handle() answered before it returned (the reply is then sent by the
// caller, with no trip through the strand's queue), or answers later from another thread.
struct Handoff {
  std::mutex mutex;
  bool returned = false;
  std::optional<Reply> reply;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Listener& listener) : stream_(std::move(socket)), listener_(listener) {}
  void start() { asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); }); }
  // Answers 503 and closes: the server holds as many connections as it may.
  void refuse() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      self->response_extra_ = {"Retry-After", "1"};
      self->reply(503, error_body("the server holds its --max-connections already: try again shortly"), false);
    });
  }
  // Closes the connection unless a request on it is under way; that one finishes first.
  void close_if_idle() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      if (!self->busy_) self->close();
    });
  }

 private:
  void read();
  void on_header(beast::error_code ec);
  void read_body();
  void on_read(beast::error_code ec);
  void answer_read_error(beast::error_code ec);
  void answer(Reply r, bool keep_alive);
  void reply(int status, std::string body, bool keep_alive, std::string_view content_type = "application/json");
  void on_write(beast::error_code ec, bool keep_alive);
  void linger();
  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }
  std::optional<std::string> refusal();

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  std::optional<std::pair<std::string, std::string>> response_extra_;  // a header of the next reply
  std::vector<std::pair<std::string, std::string>> extra_headers_;     // the handler's, for the next reply
  bool set_cookie_ = false;  // the request's token came in its URL: the reply hands it over as a cookie
  Listener& listener_;
  bool busy_ = false;
};

class Listener {
 public:
  Listener(asio::io_context& io, Handler& handler, const ServerOptions& options)
      : io_(io), acceptor_(asio::make_strand(io)), handler_(handler), options_(options) {}

  int open() {
    beast::error_code ec;
    const auto address = asio::ip::make_address(options_.address, ec);
    if (ec) throw input_error("--address " + options_.address + ": not an IP address (" + ec.message() + ")");
    const tcp::endpoint endpoint(address, static_cast<unsigned short>(options_.port));
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(endpoint, ec);
    if (ec) {
      throw input_error("--address " + options_.address + " --port " + std::to_string(options_.port) +
                        ": cannot listen there (" + ec.message() + "); --port 0 takes any free port");
    }
    acceptor_.listen(asio::socket_base::max_listen_connections);
    return acceptor_.local_endpoint().port();
  }

  void accept() {
    acceptor_.async_accept(asio::make_strand(io_), [this](beast::error_code ec, tcp::socket socket) {
      if (ec) return;  // closed by drain()
      auto session = std::make_shared<Session>(std::move(socket), *this);
      bool room = true;
      {
        std::lock_guard lock(mutex_);
        std::erase_if(sessions_, [](const auto& s) { return s.expired(); });
        room = sessions_.size() < options_.max_connections;
        if (room) sessions_.push_back(session);
      }
      if (room) session->start();
      else session->refuse();
      accept();
    });
  }

  // Readiness false, no new connection, idle connections closed; busy ones close after
  // their reply.
  void drain() {
    handler_.stop_accepting();
    draining_ = true;
    asio::post(acceptor_.get_executor(), [this] {
      beast::error_code ec;
      acceptor_.close(ec);
    });
    std::lock_guard lock(mutex_);
    for (auto& weak : sessions_) {
      if (auto s = weak.lock()) s->close_if_idle();
    }
  }

  Handler& handler() { return handler_; }
  const ServerOptions& options() const { return options_; }
  bool draining() const { return draining_; }

 private:
  asio::io_context& io_;
  tcp::acceptor acceptor_;
  Handler& handler_;
  const ServerOptions& options_;
  std::mutex mutex_;
  std::list<std::weak_ptr<Session>> sessions_;
  std::atomic<bool> draining_{false};
};

void Session::read() {
  if (listener_.draining()) return close();
  parser_.emplace();
  parser_->body_limit(listener_.options().body_limit);
  parser_->header_limit(kHeaderLimit);
  stream_.expires_after(listener_.options().read_timeout);
  http::async_read_header(stream_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
}

// A browser's token: the cohort_token cookie, else ?token= in the URL (whose reply then sets
// the cookie); nothing when it has neither.
std::optional<std::string_view> browser_token(const http::request<http::string_body>& request, bool& from_url) {
  for (auto cookie : split(view(request[http::field::cookie]), ';')) {
    while (cookie.starts_with(' ')) cookie.remove_prefix(1);
    if (cookie.starts_with("cohort_token=")) return cookie.substr(13);
  }
  const std::string_view target = view(request.target());
  const auto query = target.find('?');
  if (query == std::string_view::npos) return std::nullopt;
  for (auto pair : split(target.substr(query + 1), '&')) {
    if (pair.starts_with("token=")) {
      from_url = true;
      return pair.substr(6);
    }
  }
  return std::nullopt;
}

std::optional<std::string> Session::refusal() {
  const auto& token = listener_.options().token;
  set_cookie_ = false;
  if (!token) return std::nullopt;
  const std::string_view header = view(parser_->get()[http::field::authorization]);
  constexpr std::string_view scheme = "Bearer ";
  if (header.empty() && listener_.options().token_cookie) {
    bool from_url = false;
    const auto given = browser_token(parser_->get(), from_url);
    if (!given) return "this page needs a token: open the URL with ?token=TOKEN that the server printed at start";
    if (!same_token(*given, *token)) return "the token is not this server's";
    set_cookie_ = from_url;
    return std::nullopt;
  }
  if (header.empty()) return "this server needs a token: send 'Authorization: Bearer TOKEN' (the token file is printed at start)";
  if (!header.starts_with(scheme) || !same_token(header.substr(scheme.size()), *token)) {
    return "the bearer token is not this server's";
  }
  return std::nullopt;
}

// What a failed read answers: an error reply, or nothing when the client has gone.
void Session::answer_read_error(beast::error_code ec) {
  if (ec == http::error::body_limit) {
    reply(413, error_body("the request body is over " + std::to_string(listener_.options().body_limit) +
                          " bytes; send less, or start the server with a larger --max-body"), false);
  } else if (ec == http::error::header_limit) {
    reply(431, error_body("the request's headers are over 16 KiB"), false);
  } else if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted || ec == beast::error::timeout ||
             ec == asio::error::connection_reset || ec == asio::error::eof || ec == http::error::partial_message) {
    close();
  } else {
    reply(400, error_body("not an HTTP/1.1 request: " + ec.message()), false);
  }
}

// From here the request is under way: a drain lets it finish. Its token is checked before
// its body is read; a client that asked (Expect: 100-continue) is then told to send it.
void Session::on_header(beast::error_code ec) {
  if (ec) return answer_read_error(ec);
  busy_ = true;
  if (auto why = refusal()) return reply(401, error_body(*why), false);
  const auto& request = parser_->get();
  if (beast::iequals(request[http::field::expect], "100-continue")) {
    auto go_on = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
    http::async_write(stream_, *go_on, [self = shared_from_this(), go_on](beast::error_code e, std::size_t) {
      if (e) return self->close();
      self->read_body();
    });
    return;
  }
  read_body();
}

void Session::read_body() {
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
}

void Session::on_read(beast::error_code ec) {
  if (ec) return answer_read_error(ec);
  const auto& request = parser_->get();
  const bool keep_alive = request.keep_alive() && !listener_.draining();
  std::optional<std::size_t> json_length;
  if (auto it = request.find(kJsonLength); it != request.end()) {
    auto n = parse_integer(view(it->value()), 0, std::numeric_limits<std::int64_t>::max());
    if (!n) return reply(400, error_body("Inference-Header-Content-Length must be a byte count"), keep_alive);
    json_length = static_cast<std::size_t>(*n);
  }
  // The answer comes at once for most requests, and is sent from here; a batched inference
  // answers from the batcher's thread, posted back to this connection's strand, and the work
  // guard keeps the server running until it has been.
  auto handoff = std::make_shared<Handoff>();
  listener_.handler().handle(
      view(request.method_string()), view(request.target()), request.body(), json_length,
      [self = shared_from_this(), keep_alive, handoff, work = asio::make_work_guard(stream_.get_executor())](Reply r) {
        {
          std::lock_guard lock(handoff->mutex);
          if (!handoff->returned) {
            handoff->reply = std::move(r);
            return;
          }
        }
        asio::post(self->stream_.get_executor(),
                   [self, keep_alive, r = std::move(r)]() mutable { self->answer(std::move(r), keep_alive); });
      });
  std::optional<Reply> now;
  {
    std::lock_guard lock(handoff->mutex);
    handoff->returned = true;
    now = std::move(handoff->reply);
  }
  if (now) answer(std::move(*now), keep_alive);
}

void Session::answer(Reply r, bool keep_alive) {
  if (r.json_length) response_extra_ = {std::string(kJsonLength), std::to_string(*r.json_length)};
  if (r.retry_after_s > 0) response_extra_ = {"Retry-After", std::to_string(r.retry_after_s)};
  extra_headers_ = std::move(r.headers);
  reply(r.status, std::move(r.body), keep_alive, r.content_type);
}

void Session::reply(int status, std::string body, bool keep_alive, std::string_view content_type) {
  busy_ = true;
  response_ = {};
  response_.result(static_cast<unsigned>(status));
  response_.version(11);
  response_.set(http::field::server, "cohort");
  response_.set(http::field::content_type, beast::string_view(content_type.data(), content_type.size()));
  if (status == 401) response_.set(http::field::www_authenticate, "Bearer");
  if (response_extra_) response_.set(response_extra_->first, response_extra_->second);
  response_extra_.reset();
  for (const auto& [name, value] : extra_headers_) response_.set(name, value);
  if (set_cookie_ && status < 400) {
    response_.set(http::field::set_cookie, "cohort_token=" + *listener_.options().token + "; HttpOnly; SameSite=Strict; Path=/");
  }
  set_cookie_ = false;
  extra_headers_.clear();
  response_.body() = std::move(body);
  response_.keep_alive(keep_alive);
  response_.prepare_payload();
  http::async_write(stream_, response_, [self = shared_from_this(), keep_alive](beast::error_code ec, std::size_t) {
    self->on_write(ec, keep_alive);
  });
}

void Session::on_write(beast::error_code ec, bool keep_alive) {
  busy_ = false;
  if (ec) return close();
  if (!keep_alive || listener_.draining()) return linger();
  read();
}

// Stops sending, then reads what the client still sends until it closes, for a while: a
// close with unread data would reset the connection and could lose the reply (413).
void Session::linger() {
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream_.expires_after(std::chrono::seconds(2));
  buffer_.clear();
  stream_.async_read_some(buffer_.prepare(64 * 1024), [self = shared_from_this()](beast::error_code e, std::size_t) {
    if (e) return self->close();
    self->linger();
  });
}

}  // namespace

void run_server(Handler& handler, const ServerOptions& options, const std::function<void(int port)>& listening) {
  asio::io_context io(options.threads);
  Listener listener(io, handler, options);
  const int port = listener.open();
  {
    asio::signal_set signals(io, SIGTERM, SIGINT);
    signals.async_wait([&](beast::error_code ec, int) {
      if (!ec) listener.drain();
    });
    listener.accept();
    listening(port);
    std::vector<std::thread> threads;
    for (int i = 1; i < options.threads; ++i) threads.emplace_back([&io] { io.run(); });
    io.run();
    for (auto& t : threads) t.join();
  }
  // Drained: another SIGTERM (Slurm may send more than one) must not cut the exit short.
  ::signal(SIGTERM, SIG_IGN);
  ::signal(SIGINT, SIG_IGN);
}

}  // namespace cohort::serve
