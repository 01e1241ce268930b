// The link between the ranks' watchers and the supervisor, over real loopback sockets.
#include "launcher/agent_link.hpp"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>

#include "common/json.hpp"
#include "launcher/node_local.hpp"
#include "launcher/run_dir.hpp"
#include "tests/launcher/serve_hub.hpp"

namespace cohort::launcher {
namespace {

using testing::serve_until;

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

// A node: its agent's folder, the agent, and its connection to the supervisor.
struct Node {
  NodeLocalDir dir{"test-node-agent"};
  NodeAgent agent;
  AgentLink up;
  Node(const std::string& supervisor, const std::string& secret, int wrappers)
      : agent(dir.path(), secret, wrappers), up(supervisor, secret, "node4") {}
  AgentLink wrapper(const std::string& secret) { return AgentLink::to_node_agent(dir.path(), secret, "node4"); }
};

// Services the node's agent and the hub until `done` holds or five seconds pass.
std::vector<RankEvent> relay_until(EventHub& hub, Node& node, const std::function<bool(const std::vector<RankEvent>&)>& done) {
  std::vector<RankEvent> all;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done(all) && std::chrono::steady_clock::now() < deadline) {
    std::vector<pollfd> fds;
    hub.add_poll_fds(fds);
    node.agent.add_poll_fds(fds);
    ::poll(fds.data(), fds.size(), 100);
    node.agent.service(node.up);
    for (auto& e : hub.service()) all.push_back(std::move(e));
  }
  return all;
}

// A supervisor of the test's own, to see exactly what an agent sends and when it goes.
Fd listen_on_loopback(int& port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd.get(), 4) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw Error(system_message("test supervisor", errno));
  }
  port = ntohs(addr.sin_port);
  return fd;
}

// A node reporting to a supervisor of the test's own: `supervisor` is that end of the
// node's connection.
struct WatchedNode {
  int port = 0;
  Fd listener = listen_on_loopback(port);
  Node node;
  Fd supervisor;
  explicit WatchedNode(int wrappers)
      : node("127.0.0.1:" + std::to_string(port), "s", wrappers),
        supervisor(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)) {}
};

// A node whose agent's rank 0 and one wrapper's rank 1 have started, as the hub has heard.
struct RunningNode {
  Node node;
  AgentLink wrapper;
  RunningNode(EventHub& hub, int wrappers)
      : node(address(hub), hub.secret(), wrappers), wrapper(node.wrapper(hub.secret())) {
    node.up.started(0);
    wrapper.started(1);
    relay_until(hub, node, [](const auto& e) { return e.size() >= 2; });
  }
  // A second wrapper whose rank 2 starts, as the hub hears, and which then goes, having
  // done `meanwhile` first.
  void drop_a_wrapper(EventHub& hub, const std::function<void()>& meanwhile = [] {}) {
    AgentLink goes = node.wrapper(hub.secret());
    goes.started(2);
    relay_until(hub, node, [](const auto& e) { return !e.empty(); });
    meanwhile();
  }
};

std::size_t count(const std::vector<RankEvent>& events, RankEvent::Kind kind) {
  return static_cast<std::size_t>(std::count_if(events.begin(), events.end(), [&](const RankEvent& e) { return e.kind == kind; }));
}

TEST(NodeAgent, ANodesWrappersShareItsOneConnectionToTheSupervisor) {
  EventHub hub(true);
  Node node(address(hub), hub.secret(), 2);
  node.up.started(0);
  AgentLink w1 = node.wrapper(hub.secret()), w2 = node.wrapper(hub.secret());
  w1.started(1);
  w2.started(2);
  auto events = relay_until(hub, node, [](const auto& e) { return count(e, RankEvent::Kind::started) >= 3; });
  ASSERT_EQ(count(events, RankEvent::Kind::started), 3u);
  EXPECT_EQ(hub.connections(), 1) << "one connection for the node, not one per rank";
  for (const auto& e : events) EXPECT_EQ(e.outcome.host, "node4");

  RankOutcome o;
  o.rank = 2;
  o.exit_code = 3;
  o.ended_ns = 42;
  w2.ended(o);
  events = relay_until(hub, node, [](const auto& e) { return !e.empty(); });
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].outcome.rank, 2);
  EXPECT_EQ(events[0].outcome.exit_code, 3);
  EXPECT_EQ(events[0].outcome.ended_ns, 42);
  EXPECT_FALSE(events[0].outcome.lost);
  EXPECT_FALSE(node.agent.done()) << "wrapper 2's connection is still open";
}

// A hang is news before the rank ends: its watcher says so, then dumps the stack (gdb can
// take a while), says where, and only then ends the rank.
TEST(NodeAgent, AHangAndItsStackDumpReachTheSupervisorInOrderBeforeTheEnd) {
  EventHub hub(true);
  Node node(address(hub), hub.secret(), 1);
  AgentLink w = node.wrapper(hub.secret());
  w.started(5);
  w.hang(5, "no heartbeat for 60 s");
  w.dumped(5, "/run/attempt-0/rank-5.stack");
  RankOutcome o;
  o.rank = 5;
  o.term_signal = 9;
  o.hung = true;
  w.ended(o);
  auto events = relay_until(hub, node, [](const auto& e) { return count(e, RankEvent::Kind::ended) >= 1; });
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[1].kind, RankEvent::Kind::hang);
  EXPECT_EQ(events[1].outcome.rank, 5);
  EXPECT_EQ(events[1].outcome.host, "node4");
  EXPECT_EQ(events[1].note, "no heartbeat for 60 s");
  EXPECT_EQ(events[2].kind, RankEvent::Kind::dumped);
  EXPECT_EQ(events[2].note, "/run/attempt-0/rank-5.stack");
  EXPECT_EQ(events[3].kind, RankEvent::Kind::ended);
  EXPECT_TRUE(events[3].outcome.hung);
}

TEST(NodeAgent, TheAgentsLostConnectionIsTheLossOfEveryRankItCarried) {
  EventHub hub(true);
  { RunningNode running(hub, 1); }  // the agent goes, and with it the node's connection
  auto events = serve_until(hub, [](const auto& e) { return e.size() >= 2; });
  ASSERT_EQ(events.size(), 2u);
  for (const auto& e : events) {
    EXPECT_TRUE(e.outcome.lost);
    EXPECT_EQ(e.outcome.host, "node4");
  }
  EXPECT_EQ(events[0].outcome.rank + events[1].outcome.rank, 1) << "ranks 0 and 1";
}

TEST(NodeAgent, AWrapperGoneWhileItsRankRanIsThatRanksLossAlone) {
  EventHub hub(true);
  RunningNode running(hub, 2);
  running.drop_a_wrapper(hub);
  auto events = relay_until(hub, running.node, [](const auto& e) { return !e.empty(); });
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].outcome.rank, 2);
  EXPECT_TRUE(events[0].outcome.lost);
  EXPECT_EQ(hub.connections(), 1);
}

TEST(NodeAgent, WrappersThatGoWhileTheSupervisorTearsDownLoseNothing) {
  EventHub hub(true);
  RunningNode running(hub, 2);
  running.drop_a_wrapper(hub, [&] { hub.set_closing(true); });
  auto events = relay_until(hub, running.node, [&](const auto&) { return running.node.agent.wrappers() == 1; });
  // Rank 1's end, sent after the agent's word on rank 2: once it is in, rank 2's was too.
  RankOutcome o;
  o.rank = 1;
  o.exit_code = 0;
  running.wrapper.ended(o);
  for (auto& e : relay_until(hub, running.node, [](const auto& e) { return !e.empty(); })) events.push_back(e);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].outcome.rank, 1);
  EXPECT_FALSE(events[0].outcome.lost);
}

TEST(NodeAgent, StopReachesTheNodesWrappersThroughTheAgent) {
  EventHub hub(true);
  RunningNode running(hub, 1);
  AgentLink& w = running.wrapper;
  hub.stop_all();
  relay_until(hub, running.node, [&](const auto&) { return w.told_to_stop(); });
  EXPECT_TRUE(w.told_to_stop());
  EXPECT_TRUE(w.asked_to_stop()) << "the supervisor's word, passed on";
}

TEST(NodeAgent, AnAgentThatLosesTheSupervisorEndsItsWrappersConnections) {
  WatchedNode watched(1);
  Node& node = watched.node;
  AgentLink w = node.wrapper("s");
  w.started(1);
  node.agent.service(node.up);
  EXPECT_EQ(node.agent.wrappers(), 1);
  watched.supervisor.reset();  // the supervisor is gone
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!node.agent.done() && std::chrono::steady_clock::now() < deadline) {
    std::vector<pollfd> fds{{node.up.fd(), POLLIN, 0}};
    ::poll(fds.data(), fds.size(), 100);
    node.agent.service(node.up);
  }
  EXPECT_TRUE(node.agent.done());
  EXPECT_TRUE(w.told_to_stop()) << "the wrapper hears its agent is gone";
  EXPECT_FALSE(w.asked_to_stop()) << "gone, not a teardown: the wrapper ends its rank and reports it";
}

TEST(NodeAgent, TheNodesBeatsReachTheSupervisorFoldedIntoOneLine) {
  WatchedNode watched(2);
  Node& node = watched.node;
  const Fd& accepted = watched.supervisor;
  AgentLink w1 = node.wrapper("s"), w2 = node.wrapper("s");
  w1.beat(1, 100.5);
  w2.beat(2, 200.25);
  node.agent.beat(0, 50);
  node.agent.service(node.up);  // every wrapper's lines are in by now: one pass reads them all
  std::string text;
  LineSplitter lines;
  std::vector<json::Value> beats;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (beats.empty() && std::chrono::steady_clock::now() < deadline) {
    pollfd p{accepted.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1);
    char buf[4096];
    const ssize_t n = ::recv(accepted.get(), buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    lines.feed(std::string_view(buf, static_cast<std::size_t>(n)), [&](std::string_view line) {
      json::Value v = json::parse(std::string(line), "agent line");
      const json::Value* event = v.find("event");
      EXPECT_FALSE(event && event->as_string() == "beat") << "a rank's beat passed on alone: " << line;
      if (event && event->as_string() == "beats") beats.push_back(std::move(v));
    });
  }
  ASSERT_EQ(beats.size(), 1u);
  std::map<std::string, double> at;
  for (const auto& [rank, when] : beats[0].at("at").as_object()) at[rank] = when.as_double();
  EXPECT_EQ(at, (std::map<std::string, double>{{"0", 50}, {"1", 100.5}, {"2", 200.25}}));
}

TEST(NodeAgent, AHubTakesAFoldedLineAsEachRanksBeat) {
  EventHub hub(true);
  AgentLink up(address(hub), hub.secret(), "node4");
  up.beats({{0, 50}, {7, 70.5}});
  auto events = serve_until(hub, [](const auto& e) { return e.size() >= 2; });
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind, RankEvent::Kind::beat);
  EXPECT_EQ(events[1].outcome.rank, 7);
  EXPECT_EQ(events[1].beat_at, 70.5);
}

// A site's TMPDIR can be long (/local/scratch/<user>/<job>/...): a Unix socket's path must
// fit in 107 characters, so the agent's folder goes to /dev/shm then, where its wrappers
// look too, and where the next step of the job removes it when the teardown left it.
TEST(NodeAgent, UnderATmpdirTooLongForASocketTheAgentsFolderIsInDevShm) {
  NodeLocalDir scratch("test-long-tmpdir");
  const std::string deep = scratch.path() + "/" + std::string(60, 'd') + "/" + std::string(30, 'e');
  std::filesystem::create_directories(deep);
  const char* before = std::getenv("TMPDIR");
  const std::string saved = before ? before : "";
  ::setenv("TMPDIR", deep.c_str(), 1);
  struct Restore {
    std::string saved;
    bool had;
    ~Restore() { had ? ::setenv("TMPDIR", saved.c_str(), 1) : ::unsetenv("TMPDIR"); }
  } restore{saved, before != nullptr};

  const std::string tag = step_tag("77", "3") + "-attempt-0-node0-agent-test";
  EXPECT_EQ(node_local_path(tag), "/dev/shm/cohort-" + tag);
  {
    NodeLocalDir dir(tag, NodeLocalDir::Naming::exact);
    EXPECT_EQ(dir.path(), node_local_path(tag));
    NodeAgent agent(dir.path(), "s", 1);
    EXPECT_NO_THROW(AgentLink::to_node_agent(node_local_path(tag), "s", "h"));
  }
  // Left by a step killed outright, it goes when the job's next step starts on the node.
  ASSERT_EQ(::mkdir(node_local_path(tag).c_str(), 0700), 0);
  remove_earlier_steps("77", "4");
  EXPECT_FALSE(std::filesystem::exists(node_local_path(tag)));
  // A short TMPDIR keeps it.
  ::setenv("TMPDIR", scratch.path().c_str(), 1);
  EXPECT_EQ(node_local_path(tag), scratch.path() + "/cohort-" + tag);
}

TEST(NodeAgent, AWrapperSendsNothingIntoAnAgentFolderOthersCouldEnter) {
  NodeLocalDir dir("test-node-agent");
  try {
    // Another user could have put a socket of theirs there to read the launch's secret.
    ::rmdir(dir.path().c_str());
    ASSERT_EQ(::mkdir(dir.path().c_str(), 0755), 0);
    AgentLink::to_node_agent(dir.path(), "s", "h");
    FAIL() << "connected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.path()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("0700"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cohort::launcher
