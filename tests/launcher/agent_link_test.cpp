// The link between the ranks' watchers and the supervisor, over real loopback sockets.
#include "launcher/agent_link.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>

#include "launcher/run_dir.hpp"

namespace cohort::launcher {
namespace {

// Services the hub until `done` holds or five seconds pass; the events it gave meanwhile.
std::vector<RankEvent> serve_until(EventHub& hub, const std::function<bool(const std::vector<RankEvent>&)>& done) {
  std::vector<RankEvent> all;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done(all) && std::chrono::steady_clock::now() < deadline) {
    std::vector<pollfd> fds;
    hub.add_poll_fds(fds);
    ::poll(fds.data(), fds.size(), 100);
    for (auto& e : hub.service()) all.push_back(std::move(e));
  }
  return all;
}

std::string address(const EventHub& hub) { return "127.0.0.1:" + std::to_string(hub.port()); }

// Waits, while the hub serves, until the watcher hears it is to stop, or five seconds pass.
bool hears_stop(AgentLink& link, EventHub& hub) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    std::vector<pollfd> fds{{link.fd(), POLLIN, 0}};
    hub.add_poll_fds(fds);
    ::poll(fds.data(), fds.size(), 100);
    if (!hub.service().empty()) return false;
    if (link.told_to_stop()) return true;
  }
  return false;
}

TEST(AgentLink, AWatchersStartAndEndReachTheSupervisorWithHowTheRankEnded) {
  EventHub hub(true);
  AgentLink link(address(hub), hub.secret(), "node7");
  link.started(3);
  RankOutcome o;
  o.rank = 3;
  o.exit_code = -1;
  o.term_signal = 9;
  o.hung = true;
  o.ended_ns = 1234567890123LL;
  link.ended(o);
  auto events = serve_until(hub, [](const auto& e) { return e.size() >= 2; });
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind, RankEvent::Kind::started);
  EXPECT_EQ(events[0].outcome.rank, 3);
  EXPECT_EQ(events[1].kind, RankEvent::Kind::ended);
  EXPECT_EQ(events[1].outcome.host, "node7");
  EXPECT_EQ(events[1].outcome.term_signal, 9);
  EXPECT_TRUE(events[1].outcome.hung);
  EXPECT_TRUE(events[1].outcome.reported);
  EXPECT_FALSE(events[1].outcome.lost);
  EXPECT_EQ(events[1].outcome.ended_ns, 1234567890123LL);
}

TEST(AgentLink, AConnectionWithoutTheSecretIsRefusedAndItsEventsIgnored) {
  EventHub hub(true);
  AgentLink intruder(address(hub), "not-the-secret", "node1");
  intruder.started(0);
  RankOutcome o;
  o.exit_code = 1;
  intruder.ended(o);
  // Refused: the hub closes the connection, which the intruder sees as the end, and
  // nothing it sent becomes an event.
  EXPECT_TRUE(hears_stop(intruder, hub));
  EXPECT_EQ(hub.connections(), 0);
}

TEST(AgentLink, AConnectionThatEndsWhileItsRankRunsIsThatRanksLoss) {
  EventHub hub(true);
  {
    AgentLink link(address(hub), hub.secret(), "node2");
    link.started(5);
    link.started(6);
    RankOutcome o;
    o.rank = 6;
    o.exit_code = 0;
    link.ended(o);
    serve_until(hub, [](const auto& e) { return e.size() >= 3; });
  }  // the watcher's connection drops here
  auto events = serve_until(hub, [](const auto& e) { return !e.empty(); });
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].outcome.rank, 5);  // rank 6 had ended: only 5 is lost
  EXPECT_TRUE(events[0].outcome.lost);
  EXPECT_EQ(events[0].outcome.host, "node2");
  EXPECT_TRUE(failed(events[0].outcome));
}

TEST(AgentLink, ConnectionsThatEndWhileTheSupervisorTearsDownLoseNothing) {
  EventHub hub(true);
  {
    AgentLink link(address(hub), hub.secret(), "node2");
    link.started(1);
    serve_until(hub, [](const auto& e) { return !e.empty(); });
    hub.set_closing(true);
  }
  auto events = serve_until(hub, [&](const auto&) { return hub.connections() == 0; });
  EXPECT_EQ(hub.connections(), 0);
  EXPECT_TRUE(events.empty());
}

TEST(AgentLink, StopReachesEveryWatcher) {
  EventHub hub(true);
  AgentLink a(address(hub), hub.secret(), "n1"), b(address(hub), hub.secret(), "n2");
  a.started(0);
  b.started(1);
  serve_until(hub, [](const auto& e) { return e.size() >= 2; });
  EXPECT_FALSE(a.told_to_stop());
  hub.stop_all();
  EXPECT_TRUE(hears_stop(a, hub));
  EXPECT_TRUE(hears_stop(b, hub));
}

TEST(AgentLink, AWatcherThatConnectsAfterATeardownBeganIsToldToStopToo) {
  EventHub hub(true);
  hub.stop_all();
  AgentLink late(address(hub), hub.secret(), "n3");
  EXPECT_TRUE(hears_stop(late, hub));
  EXPECT_TRUE(late.asked_to_stop()) << "the supervisor's word, not a lost supervisor";
  hub.begin_attempt();
  AgentLink next(address(hub), hub.secret(), "n3");
  next.started(0);
  serve_until(hub, [](const auto& e) { return e.size() >= 1; });
  EXPECT_FALSE(next.told_to_stop()) << "the next attempt's watchers are not stopped";
}

TEST(AgentLink, ANewAttemptForgetsTheWatchersOfTheOneBefore) {
  EventHub hub(true);
  const std::string old_secret = hub.secret();
  AgentLink late(address(hub), old_secret, "n1");
  serve_until(hub, [&](const auto&) { return hub.connections() == 1; });
  hub.begin_attempt();
  EXPECT_NE(hub.secret(), old_secret);
  late.started(0);
  AgentLink again(address(hub), old_secret, "n1");
  again.started(1);
  // A watcher of this attempt, sent last: once its event is in, the others had their chance.
  AgentLink current(address(hub), hub.secret(), "n2");
  current.started(9);
  auto events = serve_until(hub, [](const auto& e) {
    return std::any_of(e.begin(), e.end(), [](const RankEvent& x) { return x.outcome.rank == 9; });
  });
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].outcome.rank, 9);
}

TEST(AgentLink, AnAddressThatIsNotHostAndPortIsAnInputError) {
  try {
    AgentLink link("nowhere", "s", "h");
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("COHORT_LAUNCH_AGENT='nowhere'"), std::string::npos);
  }
}

}  // namespace
}  // namespace cohort::launcher
