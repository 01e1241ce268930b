// collectives/rendezvous.hpp — the ranks of a job meet over TCP at MASTER_ADDR:MASTER_PORT.
//
// What ranks that no MPI started (torchrun's contract) need to find each other: every rank
// brings how to reach it and every rank learns all of that (rendezvous_gather), or rank 0
// makes a small blob (NCCL's unique id) that every other rank must receive (rendezvous).
// Rank 0 listens on MASTER_PORT; every other rank connects to MASTER_ADDR:MASTER_PORT, says
// who it is, whether it is ready and what it brings, and waits for the reply. Only when
// every rank has arrived ready does rank 0 answer, so a rank that cannot take part (no
// device, a bad setting) makes every rank fail with its reason instead of leaving the
// others waiting.
//
// Connections are checked: a stranger on the port (another job whose port collides, a port
// scanner) is turned away without disturbing the job; two processes claiming one rank, or
// disagreeing on the world size, fail the job with a message that names them.
//
// Private to collectives/ (namespace detail): users include communicator.hpp and bucketing.hpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace cohort::collectives::detail {

struct RendezvousOptions {
  std::string host;  // where rank 0 listens: MASTER_ADDR
  int port = 0;      // MASTER_PORT
  int rank = 0;
  int size = 1;
  // Tells this job's ranks from any other's on the same port: the Slurm job and the restart
  // count, so that a rank left over from an earlier attempt cannot join.
  std::string key;
  // How long a rank waits for the others to arrive, and peers for rank 0 to listen.
  std::chrono::milliseconds timeout = std::chrono::minutes(10);
};

// Reads MASTER_ADDR, MASTER_PORT (COHORT_RENDEZVOUS_PORT, when set, replaces it) and
// COHORT_RENDEZVOUS_TIMEOUT (seconds), and forms the key from SLURM_HET_JOB_ID (else
// SLURM_JOB_ID) and COHORT_RESTART_COUNT; throws an input error naming a missing or
// malformed variable.
RendezvousOptions rendezvous_from_environment(int rank, int size);

// Every rank calls this once. `failure` is empty when this rank is ready, else why it is
// not. When every rank is ready, rank 0 calls make_payload (at most 64 KiB) and every rank
// returns what it returned; otherwise every rank throws a cohort::Error naming the first
// rank that was not ready and its reason. A rank that does not arrive within the timeout
// makes the ranks that did arrive throw, naming it.
std::string rendezvous(const RendezvousOptions& options, const std::string& failure,
                       const std::function<std::string()>& make_payload);

// The largest contribution a rank brings to rendezvous_gather.
inline constexpr std::uint32_t kMaxContribution = 4096;

// The same meeting, where every rank brings `contribution` (at most kMaxContribution bytes)
// and every rank returns all of them, in rank order: how ranks without MPI learn each
// other's addresses in one round.
std::vector<std::string> rendezvous_gather(const RendezvousOptions& options, const std::string& failure,
                                           const std::string& contribution);

}  // namespace cohort::collectives::detail
