#include "serve/scrape.hpp"

#include <utility>  // before Asio's headers: with C++20 they use std::exchange unannounced

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cmath>
#include <cstdlib>
#include <map>
#include <sstream>

namespace cohort::serve {
namespace {

namespace http = boost::beast::http;

double value_of(const std::string& line) { return std::strtod(line.substr(line.rfind(' ') + 1).c_str(), nullptr); }

}  // namespace

std::optional<std::string> scrape_get(const std::string& url, const std::string& target, const std::string& token,
                                      std::chrono::milliseconds timeout) {
  const auto scheme = url.find("//");
  const auto rest = std::string_view(url).substr(scheme == std::string::npos ? 0 : scheme + 2);
  const auto hostport = rest.substr(0, rest.find('/'));
  const auto colon = hostport.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  try {
    boost::asio::io_context io;
    boost::beast::tcp_stream stream(io);
    boost::asio::ip::tcp::resolver resolver(io);
    // One deadline for connecting, writing and reading: a server that accepts and then says
    // nothing costs its caller this, not a hung page or command.
    stream.expires_after(timeout);
    stream.connect(resolver.resolve(std::string(hostport.substr(0, colon)), std::string(hostport.substr(colon + 1))));
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, std::string(hostport));
    req.set(http::field::authorization, "Bearer " + token);
    http::write(stream, req);
    boost::beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(16u << 20);  // an exposition is kilobytes; anything near this is not one
    http::read(stream, buffer, parser);
    if (parser.get().result_int() != 200) return std::nullopt;
    return parser.release().body();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<double> metric_sample(const std::string& text, const std::string& name, const std::string& label) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with(name + "{") && line.find(label) != std::string::npos) return value_of(line);
  }
  return std::nullopt;
}

double metric_total(const std::string& text, const std::string& name, const std::string& label) {
  double total = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with(name + "{") && line.find(label) != std::string::npos) total += value_of(line);
  }
  return total;
}

std::optional<double> histogram_quantile(const std::vector<std::string>& texts, const std::string& name, double q) {
  std::map<double, double> cumulative;  // le → count, the last bound +inf
  for (const auto& text : texts) {
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      if (!line.starts_with(name + "_bucket{")) continue;
      const auto le = line.find("le=\"");
      if (le == std::string::npos) continue;
      const auto at = le + 4;
      const auto bound = line.substr(at, line.find('"', at) - at);
      cumulative[bound == "+Inf" ? INFINITY : std::strtod(bound.c_str(), nullptr)] += value_of(line);
    }
  }
  if (cumulative.empty() || cumulative.rbegin()->second <= 0) return std::nullopt;
  const double target = q * cumulative.rbegin()->second;
  for (const auto& [bound, count] : cumulative) {
    if (count >= target) return bound;
  }
  return std::nullopt;
}

}  // namespace cohort::serve
