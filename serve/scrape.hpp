// serve/scrape.hpp — reading a replica's or a router's /metrics from outside, as
// `cohort serve status` and the dashboard do: one GET with the service's token, and the few
// questions asked of the Prometheus text (a series' value, a family's total, a histogram's
// quantile).
//
//   auto text = scrape_get("http://node1:8080", "/metrics", token, std::chrono::seconds(1));
//   double sent = metric_total(*text, "cohort_router_requests_total", "version=\"2\"");
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace cohort::serve {

// GET TARGET from the server at `url` (http://HOST:PORT[/…]) with "Authorization: Bearer
// TOKEN"; the body of a 200, or nothing when the server cannot be reached, answers anything
// else or takes longer than `timeout` in all.
std::optional<std::string> scrape_get(const std::string& url, const std::string& target, const std::string& token,
                                      std::chrono::milliseconds timeout = std::chrono::seconds(5));

// The value of the first series NAME{…} whose labels hold `label` (say replica="h:9001").
std::optional<double> metric_sample(const std::string& text, const std::string& name, const std::string& label);

// The sum of every series NAME{…} whose labels hold `label` ("": every series).
double metric_total(const std::string& text, const std::string& name, const std::string& label = "");

// The q-quantile of the histogram NAME summed over `texts` (several servers' expositions):
// the upper bound of the bucket it falls in, +inf past the largest; nothing when no request
// was counted.
std::optional<double> histogram_quantile(const std::vector<std::string>& texts, const std::string& name, double q);

}  // namespace cohort::serve
