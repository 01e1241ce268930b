// How Communicator::from_environment's ranks find each other without MPI: the launch
// contract alone (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), as torchrun starts ranks.
// The ranks here are forked processes that never initialise MPI.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "collectives/communicator.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "tests/collectives/loopback.hpp"

namespace cohort::collectives {
namespace {

using test::free_port;

struct RankResult {
  int status = -1;     // exit status: 0 joined, 1 failed, 2 bad input
  std::string error;   // what from_environment threw, or what `work` returned
};

// Starts one process per entry of `envs`, each calling Communicator::from_environment()
// with those variables set and then `work`, and collects how each ended.
std::vector<RankResult> run_ranks(const std::vector<std::vector<std::pair<std::string, std::string>>>& envs,
                                  const std::function<std::string(Communicator&)>& work = {}) {
  struct Child {
    pid_t pid;
    Fd out;
  };
  std::vector<Child> children;
  for (const auto& env : envs) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw Error(system_message("pipe", errno));
    Fd read_end(fds[0]), write_end(fds[1]);
    const pid_t pid = ::fork();
    if (pid == 0) {
      read_end.reset();
      for (const auto& [name, value] : env) ::setenv(name.c_str(), value.c_str(), 1);
      int status = 0;
      std::string message;
      try {
        Communicator comm = Communicator::from_environment();
        if (work) message = work(comm);
      } catch (const Error& e) {
        status = e.exit_code();
        message = e.what();
      }
      (void)!::write(write_end.get(), message.data(), message.size());
      ::_exit(status);
    }
    children.push_back(Child{pid, std::move(read_end)});
  }
  std::vector<RankResult> results;
  for (Child& c : children) {
    RankResult r;
    char buf[4096];
    for (ssize_t n; (n = ::read(c.out.get(), buf, sizeof buf)) != 0;) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      r.error.append(buf, static_cast<std::size_t>(n));
    }
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    results.push_back(r);
  }
  return results;
}

std::vector<std::pair<std::string, std::string>> contract(int rank, int size, int port) {
  return {{"RANK", std::to_string(rank)},
          {"WORLD_SIZE", std::to_string(size)},
          {"MASTER_ADDR", "127.0.0.1"},
          {"MASTER_PORT", std::to_string(port)},
          {"COHORT_RENDEZVOUS_TIMEOUT", "60"},
          // No device for anyone, whatever the machine has: the ranks cannot form a NCCL
          // communicator; with the nccl backend they must all say so rather than wait.
          {"CUDA_VISIBLE_DEVICES", ""}};
}

// Ranks started as torchrun starts them learn at the rendezvous how to reach each other,
// and carry host buffers over TCP and shared memory: blocking, non-blocking and in order.
TEST(TcpBootstrap, RanksWithoutMpiAllreduceAndBroadcastHostBuffers) {
  if (std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK")) {
    GTEST_SKIP() << "started by an MPI launcher: the automatic bootstrap would choose MPI";
  }
  const int port = free_port();
  const auto results = run_ranks({contract(0, 3, port), contract(1, 3, port), contract(2, 3, port)},
                                 [](Communicator& comm) {
    std::vector<float> big(1 << 18, static_cast<float>(comm.rank() + 1));
    Request pending = comm.iallreduce(big.data(), big.data(), big.size(), DType::float32, ReduceOp::sum);
    std::int64_t small = comm.rank() + 1;
    comm.allreduce(&small, 1, DType::int64, ReduceOp::max);
    pending.wait();
    std::int64_t root = comm.rank() == 2 ? 42 : 0;
    comm.broadcast(&root, 1, DType::int64, 2);
    comm.barrier();
    return std::to_string(comm.rank()) + " of " + std::to_string(comm.size()) + ": " + std::to_string(big.front()) +
           " " + std::to_string(big.back()) + " " + std::to_string(small) + " " + std::to_string(root) + " " +
           std::to_string(static_cast<int>(comm.device_backend() == BackendKind::nccl));
  });
  for (std::size_t r = 0; r < results.size(); ++r) {
    EXPECT_EQ(results[r].status, 0) << results[r].error;
    EXPECT_EQ(results[r].error, std::to_string(r) + " of 3: 6.000000 6.000000 3 42 0");
  }
}

TEST(TcpBootstrap, WithTheNcclBackendRanksWithoutADeviceAllFailWithRankZerosReason) {
  if (std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK")) {
    GTEST_SKIP() << "started by an MPI launcher: the automatic bootstrap would choose MPI";
  }
  const int port = free_port();
  auto nccl = [&](int rank) {
    auto env = contract(rank, 2, port);
    env.emplace_back("COHORT_COLLECTIVES_BACKEND", "nccl");
    return env;
  };
  const auto results = run_ranks({nccl(0), nccl(1)});
  for (const auto& r : results) {
    EXPECT_EQ(r.status, 1) << r.error;
    EXPECT_NE(r.error.find("rank 0 cannot take part"), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << r.error;
  }
  EXPECT_EQ(results[0].error, results[1].error);
}

// One rank's bad setting is every rank's failure at the meeting: the others do not wait
// for it until the rendezvous times out.
TEST(TcpBootstrap, ARankWithASettingItCannotUseFailsEveryRankWithItsReason) {
  if (std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK")) {
    GTEST_SKIP() << "started by an MPI launcher: the automatic bootstrap would choose MPI";
  }
  const int port = free_port();
  auto bad = contract(1, 2, port);
  bad.emplace_back("COHORT_ALLREDUCE_CHUNK", "100");
  const auto results = run_ranks({contract(0, 2, port), bad});
  for (const auto& r : results) {
    EXPECT_NE(r.status, 0) << r.error;
    EXPECT_NE(r.error.find("rank 1 cannot take part: COHORT_ALLREDUCE_CHUNK=100"), std::string::npos) << r.error;
  }
}

TEST(TcpBootstrap, TheBootstrapCanBeChosenAndIsChecked) {
  const int port = free_port();
  auto tcp_without_contract = std::vector<std::pair<std::string, std::string>>{
      {"COHORT_COLLECTIVES_BOOTSTRAP", "tcp"}};
  auto unknown = contract(0, 2, port);
  unknown.emplace_back("COHORT_COLLECTIVES_BOOTSTRAP", "zeroconf");
  auto no_master = std::vector<std::pair<std::string, std::string>>{
      {"COHORT_COLLECTIVES_BOOTSTRAP", "tcp"}, {"RANK", "1"}, {"WORLD_SIZE", "2"}};
  auto bad_rank = contract(2, 2, port);
  bad_rank.emplace_back("COHORT_COLLECTIVES_BOOTSTRAP", "tcp");
  const auto results = run_ranks({tcp_without_contract, unknown, no_master, bad_rank});
  const char* expected[] = {"RANK and WORLD_SIZE are not set", "bootstrap 'zeroconf'", "MASTER_ADDR is not set",
                            "RANK=2 is outside 0..1"};
  for (std::size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].status, 2) << results[i].error;
    EXPECT_NE(results[i].error.find(expected[i]), std::string::npos) << results[i].error;
  }
}

}  // namespace
}  // namespace cohort::collectives
