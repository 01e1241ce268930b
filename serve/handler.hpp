// serve/handler.hpp — what the HTTP server (server.hpp) serves: a Handler answers a method,
// a target and a body with a Reply, apart from connections, auth and limits. The model
// server's Service is one; a router or a web page that shares the server is another.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cohort::serve {

struct Reply {
  int status = 200;
  std::string body;  // JSON, but for /metrics, and binary tensors after the JSON
  std::string content_type = "application/json";
  // The binary tensor extension's Inference-Header-Content-Length: the JSON's length when
  // binary data follows it.
  std::optional<std::size_t> json_length{};
  int retry_after_s = 0;  // a Retry-After header when above 0
  std::vector<std::pair<std::string, std::string>> headers{};  // any others, sent as given
};

class Handler {
 public:
  virtual ~Handler() = default;
  // Answers a request through `done`, exactly once: at once, or later from another thread,
  // so that no connection's thread waits for slow work. `body` need only live until
  // handle() returns. Never throws: every failure is a Reply. `json_length` is the
  // request's Inference-Header-Content-Length, when it has one.
  virtual void handle(std::string_view method, std::string_view target, const std::string& body,
                      std::optional<std::size_t> json_length, std::function<void(Reply)> done) const = 0;
  // Draining has begun: readiness goes false; requests under way still finish.
  virtual void stop_accepting() = 0;
};

// {"error": message}.
std::string error_body(const std::string& message);

}  // namespace cohort::serve
