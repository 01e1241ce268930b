// serve/server.hpp — the HTTP/1.1 server (Boost.Beast) in front of a Handler: keep-alive
// connections on an io_context run by N threads, a bearer token, a body size limit, and a
// drain on SIGTERM or SIGINT (readiness goes false, requests under way finish, then run()
// returns).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "serve/handler.hpp"

namespace cohort::serve {

struct ServerOptions {
  std::string address = "127.0.0.1";
  int port = 8000;  // 0: any free port
  int threads = 1;
  std::optional<std::string> token;  // required as "Authorization: Bearer TOKEN" when set
  // A browser cannot send that header: also take the token Jupyter's way, as ?token=TOKEN in
  // the URL, which sets an HttpOnly, SameSite=Strict cookie (cohort_token) that later
  // requests carry instead.
  bool token_cookie = false;
  std::uint64_t body_limit = 64ull << 20;  // larger bodies are answered 413
  std::size_t max_connections = 1024;      // connections past it are answered 503 and closed
  // A whole request, from its first byte, and an idle kept-alive connection must fit in it:
  // a client trickling its headers (slowloris) holds a connection no longer than this.
  std::chrono::seconds read_timeout{30};
};

// Serves until SIGTERM or SIGINT has drained it. `listening` is called once with the
// bound port, before any request is read. Throws cohort::Error when the address cannot be
// bound.
void run_server(Handler& handler, const ServerOptions& options, const std::function<void(int port)>& listening);

}  // namespace cohort::serve
