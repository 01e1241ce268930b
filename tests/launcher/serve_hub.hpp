// The supervisor's loop as the launcher's tests run it: an EventHub serviced until what it
// gave satisfies the test, bounded only against a stuck suite.
#pragma once

#include <poll.h>

#include <chrono>
#include <functional>
#include <vector>

#include "launcher/agent_link.hpp"

namespace cohort::launcher::testing {

// Services `hub` until `done` holds of its events or `bound` passes; the events it gave.
inline std::vector<RankEvent> serve_until(EventHub& hub, const std::function<bool(const std::vector<RankEvent>&)>& done,
                                          std::chrono::milliseconds bound = std::chrono::seconds(5)) {
  std::vector<RankEvent> all;
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (!done(all) && std::chrono::steady_clock::now() < deadline) {
    std::vector<pollfd> fds;
    hub.add_poll_fds(fds);
    ::poll(fds.data(), fds.size(), 100);
    for (auto& e : hub.service()) all.push_back(std::move(e));
  }
  return all;
}

}  // namespace cohort::launcher::testing
