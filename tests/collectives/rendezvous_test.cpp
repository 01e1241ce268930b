// The ranks' meeting at MASTER_ADDR:MASTER_PORT, with threads of one process as the ranks,
// on loopback.
#include "collectives/rendezvous.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "tests/collectives/loopback.hpp"

namespace cohort::collectives::detail {
namespace {

using namespace std::chrono_literals;

using test::free_port;

RendezvousOptions options(int port, int rank, int size, std::chrono::milliseconds timeout = 30s) {
  RendezvousOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.rank = rank;
  o.size = size;
  o.key = "job 7 restart 0";
  o.timeout = timeout;
  return o;
}

// One outcome per rank: the payload, or the error's message.
struct Outcome {
  std::optional<std::string> payload;
  std::string error;
};

std::vector<Outcome> run_ranks(const std::vector<RendezvousOptions>& ranks,
                               const std::vector<std::string>& failures, std::atomic<int>& payloads_made) {
  std::vector<Outcome> out(ranks.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    threads.emplace_back([&, i] {
      try {
        out[i].payload = rendezvous(ranks[i], failures[i], [&] {
          ++payloads_made;
          return std::string("unique-id:\x01\x00\xff", 13);
        });
      } catch (const Error& e) {
        out[i].error = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  return out;
}

TEST(Rendezvous, EveryRankReceivesRankZerosPayload) {
  const int port = free_port();
  std::vector<RendezvousOptions> ranks;
  for (int r = 0; r < 4; ++r) ranks.push_back(options(port, r, 4));
  std::atomic<int> made{0};
  const auto out = run_ranks(ranks, std::vector<std::string>(4), made);
  EXPECT_EQ(made.load(), 1);
  for (const auto& o : out) {
    ASSERT_TRUE(o.payload) << o.error;
    EXPECT_EQ(*o.payload, std::string("unique-id:\x01\x00\xff", 13));
  }
}

// How ranks without MPI learn each other's addresses: every rank brings its part, binary
// included, and every rank gets all of them in rank order, its own among them.
TEST(Rendezvous, AGatherGivesEveryRankEveryContributionInRankOrder) {
  const int port = free_port();
  constexpr int kRanks = 5;
  std::vector<std::vector<std::string>> got(kRanks);
  std::vector<std::string> errors(kRanks);
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r) {
    threads.emplace_back([&, r] {
      try {
        // Rank 3 brings nothing, rank 4 the most a rank may bring.
        const std::string mine = r == 3 ? "" : r == 4 ? std::string(kMaxContribution, '\0') : "rank " + std::to_string(r);
        got[r] = rendezvous_gather(options(port, r, kRanks), "", mine);
      } catch (const Error& e) {
        errors[r] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  const std::vector<std::string> expected{"rank 0", "rank 1", "rank 2", "", std::string(kMaxContribution, '\0')};
  for (int r = 0; r < kRanks; ++r) {
    EXPECT_EQ(errors[r], "");
    EXPECT_EQ(got[r], expected) << "rank " << r;
  }
}

TEST(Rendezvous, AContributionOverTheLimitIsRefusedBeforeAnyConnection) {
  try {
    rendezvous_gather(options(free_port(), 1, 2), "", std::string(kMaxContribution + 1, 'x'));
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("over the 4096-byte limit"), std::string::npos) << e.what();
  }
}

TEST(Rendezvous, OneRankNeedsNoNetwork) {
  RendezvousOptions o;  // no host, no port
  std::atomic<int> made{0};
  const auto out = run_ranks({o}, {""}, made);
  ASSERT_TRUE(out[0].payload) << out[0].error;
  EXPECT_EQ(made.load(), 1);
}

TEST(Rendezvous, ARankThatIsNotReadyFailsEveryRankWithItsReason) {
  const int port = free_port();
  std::vector<RendezvousOptions> ranks;
  for (int r = 0; r < 3; ++r) ranks.push_back(options(port, r, 3));
  std::atomic<int> made{0};
  const auto out = run_ranks(ranks, {"", "", "no CUDA device is visible"}, made);
  EXPECT_EQ(made.load(), 0);
  for (const auto& o : out) {
    EXPECT_FALSE(o.payload);
    EXPECT_NE(o.error.find("rank 2 cannot take part: no CUDA device is visible"), std::string::npos) << o.error;
  }
}

TEST(Rendezvous, RankZerosFailureReachesThePeers) {
  const int port = free_port();
  std::atomic<int> made{0};
  const auto out = run_ranks({options(port, 0, 2), options(port, 1, 2)}, {"ncclGetUniqueId failed", ""}, made);
  for (const auto& o : out) {
    EXPECT_FALSE(o.payload);
    EXPECT_NE(o.error.find("rank 0 cannot take part: ncclGetUniqueId failed"), std::string::npos) << o.error;
  }
}

TEST(Rendezvous, TwoProcessesClaimingOneRankFailTheJobWithoutWaitingForTheTimeout) {
  const int port = free_port();
  std::atomic<int> made{0};
  // The timeout is long: the job must fail because all three arrived, not because it ran out.
  const auto out = run_ranks({options(port, 0, 3, 600s), options(port, 1, 3, 600s), options(port, 1, 3, 600s)},
                             {"", "", ""}, made);
  EXPECT_EQ(made.load(), 0);
  for (const auto& o : out) {
    EXPECT_FALSE(o.payload);
    EXPECT_NE(o.error.find("two processes claim rank 1"), std::string::npos) << o.error;
  }
}

TEST(Rendezvous, DisagreeingWorldSizesNameTheRank) {
  const int port = free_port();
  std::atomic<int> made{0};
  const auto out = run_ranks({options(port, 0, 2, 600s), options(port, 1, 3, 600s)}, {"", ""}, made);
  for (const auto& o : out) {
    EXPECT_FALSE(o.payload);
    EXPECT_NE(o.error.find("rank 1 cannot take part: it has WORLD_SIZE=3 where rank 0 has 2"), std::string::npos)
        << o.error;
  }
}

TEST(Rendezvous, AMissingRankIsNamedWhenTheOthersGiveUp) {
  const int port = free_port();
  std::atomic<int> made{0};
  // Rank 1 must have arrived before rank 0 gives up, or rank 0 rightly names it too: the
  // wait is long beside the milliseconds an arrival takes, even on a loaded machine.
  const auto out = run_ranks({options(port, 0, 3, 5s), options(port, 1, 3, 5s)}, {"", ""}, made);
  EXPECT_EQ(made.load(), 0);
  for (const auto& o : out) {
    EXPECT_FALSE(o.payload);
    EXPECT_NE(o.error.find("rank(s) 2 did not arrive"), std::string::npos) << o.error;
  }
}

TEST(Rendezvous, APeerWithoutRankZeroGivesUpNamingTheAddress) {
  const int port = free_port();
  std::atomic<int> made{0};
  // Nothing listens on the port, so the outcome cannot depend on how soon the wait ends.
  const auto out = run_ranks({options(port, 1, 2, 300ms)}, {""}, made);
  EXPECT_FALSE(out[0].payload);
  EXPECT_NE(out[0].error.find("could not reach rank 0"), std::string::npos) << out[0].error;
  EXPECT_NE(out[0].error.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << out[0].error;
}

TEST(Rendezvous, StrangersOnThePortAreTurnedAwayAndTheJobGoesOn) {
  const int port = free_port();
  std::atomic<int> made{0};
  std::vector<Outcome> root;
  std::thread job([&] { root = run_ranks({options(port, 0, 2)}, {""}, made); });

  // Something that is not a rank connects first and sends junk: rank 0 hangs up on it.
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  while (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    std::this_thread::yield();  // rank 0 is not listening yet
  }
  const std::string junk = "GET / HTTP/1.1\r\nHost: node-a\r\n\r\n";
  ASSERT_EQ(::send(fd.get(), junk.data(), junk.size(), MSG_NOSIGNAL), static_cast<ssize_t>(junk.size()));
  char byte = 0;
  // Closed with no answer (reset, when junk was left unread).
  const ssize_t n = ::recv(fd.get(), &byte, 1, 0);
  EXPECT_TRUE(n == 0 || (n < 0 && errno == ECONNRESET)) << n;

  const auto peer = run_ranks({options(port, 1, 2)}, {""}, made);
  job.join();
  ASSERT_TRUE(root[0].payload) << root[0].error;
  ASSERT_TRUE(peer[0].payload) << peer[0].error;
}

TEST(Rendezvous, ARankOfAnotherJobOnTheSamePortIsRefusedAndTheJobGoesOn) {
  const int port = free_port();
  RendezvousOptions root = options(port, 0, 2);
  RendezvousOptions stranger = options(port, 1, 2, 30s);
  stranger.key = "job 8 restart 0";
  std::string stranger_error;
  std::thread other([&] {
    try {
      rendezvous(stranger, "", [] { return std::string(); });
    } catch (const Error& e) {
      stranger_error = e.what();
    }
  });
  std::atomic<int> made{0};
  std::vector<Outcome> out;
  std::thread job([&] { out = run_ranks({root}, {""}, made); });
  other.join();  // refused: the root answered it
  // Only now does this job's rank 1 arrive.
  const auto peer = run_ranks({options(port, 1, 2)}, {""}, made);
  job.join();
  EXPECT_NE(stranger_error.find("two jobs share a MASTER_PORT"), std::string::npos) << stranger_error;
  ASSERT_TRUE(out[0].payload) << out[0].error;
  ASSERT_TRUE(peer[0].payload) << peer[0].error;
}

TEST(Rendezvous, APortInUseIsAClearError) {
  Fd holder(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_any;
  ASSERT_EQ(::bind(holder.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(holder.get(), 1), 0);
  socklen_t len = sizeof a;
  ::getsockname(holder.get(), reinterpret_cast<sockaddr*>(&a), &len);
  try {
    rendezvous(options(ntohs(a.sin6_port), 0, 2, 1s), "", [] { return std::string(); });
    FAIL() << "rank 0 listened on a port in use";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("set COHORT_RENDEZVOUS_PORT"), std::string::npos) << e.what();
  }
}

// Sets environment variables for one test and restores them after.
class ScopedEnv {
 public:
  void set(const char* name, const char* value) {
    const char* old = std::getenv(name);
    saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    if (value) ::setenv(name, value, 1);
    else ::unsetenv(name);
  }
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) ::setenv(it->first.c_str(), it->second->c_str(), 1);
      else ::unsetenv(it->first.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

TEST(RendezvousEnvironment, ReadsTheLaunchContract) {
  ScopedEnv env;
  env.set("MASTER_ADDR", "node-a");
  env.set("MASTER_PORT", "29500");
  env.set("COHORT_RENDEZVOUS_TIMEOUT", "42");
  env.set("SLURM_JOB_ID", "1234");
  env.set("SLURM_STEP_ID", "5");  // steps do not matter: one per node is still one job
  env.set("SLURM_HET_JOB_ID", nullptr);
  env.set("COHORT_RESTART_COUNT", "2");
  const auto o = rendezvous_from_environment(3, 8);
  EXPECT_EQ(o.host, "node-a");
  EXPECT_EQ(o.port, 29500);
  EXPECT_EQ(o.rank, 3);
  EXPECT_EQ(o.size, 8);
  EXPECT_EQ(o.timeout, 42s);
  EXPECT_EQ(o.key, "job 1234 restart 2");
  // The components of a heterogeneous job have job ids of their own: they meet as one job.
  env.set("SLURM_HET_JOB_ID", "1230");
  EXPECT_EQ(rendezvous_from_environment(3, 8).key, "job 1230 restart 2");
  // PyTorch's env:// store may hold MASTER_PORT: cohort can meet elsewhere.
  env.set("COHORT_RENDEZVOUS_PORT", "29600");
  EXPECT_EQ(rendezvous_from_environment(3, 8).port, 29600);
}

TEST(RendezvousEnvironment, MissingOrMalformedVariablesAreInputErrors) {
  ScopedEnv env;
  env.set("MASTER_ADDR", nullptr);
  env.set("MASTER_PORT", "29500");
  env.set("COHORT_RENDEZVOUS_TIMEOUT", nullptr);
  env.set("COHORT_RENDEZVOUS_PORT", nullptr);
  EXPECT_NO_THROW(rendezvous_from_environment(0, 1));  // one rank meets nobody
  const auto message_of = [](int size) {
    try {
      rendezvous_from_environment(0, size);
    } catch (const Error& e) {
      EXPECT_EQ(e.exit_code(), 2);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message_of(2).find("MASTER_ADDR is not set"), std::string::npos);
  env.set("MASTER_ADDR", "127.0.0.1");
  for (const char* bad : {"0", "65536", "29500x", "-1", "port"}) {
    env.set("MASTER_PORT", bad);
    EXPECT_NE(message_of(2).find(std::string("MASTER_PORT=") + bad), std::string::npos) << bad;
  }
  env.set("MASTER_PORT", "29500");
  env.set("COHORT_RENDEZVOUS_PORT", "0");
  EXPECT_NE(message_of(2).find("COHORT_RENDEZVOUS_PORT=0"), std::string::npos);
  env.set("COHORT_RENDEZVOUS_PORT", nullptr);
  env.set("COHORT_RENDEZVOUS_TIMEOUT", "soon");
  EXPECT_NE(message_of(2).find("COHORT_RENDEZVOUS_TIMEOUT=soon"), std::string::npos);
}

}  // namespace
}  // namespace cohort::collectives::detail
