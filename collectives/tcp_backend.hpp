// collectives/tcp_backend.hpp — host-buffer collectives for ranks that share no MPI.
//
// Ranks that met through a PeerDirectory (torch's store, under torchrun) join a mesh of TCP
// connections, one per pair of ranks, each rank listening on a port of its own that it
// publishes in the directory. Where every rank runs on one node, allreduce goes through the
// same node-local shared-memory path as under MPI, its segments made with shm_open under
// names the directory agrees and unlinked once every rank has mapped them; the other
// collectives, and allreduce across nodes, go round a ring of the TCP connections.
//
// A peer that closes its connection (it ended) or stays silent past the timeout makes the
// call throw, naming it.
//
// Private to collectives/ (namespace detail): users include communicator.hpp and bucketing.hpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "collectives/communicator.hpp"
#include "collectives/host_engine.hpp"
#include "collectives/node_allreduce.hpp"
#include "common/fd.hpp"

namespace cohort::collectives::detail {

struct TcpSettings {
  AllreduceAlgorithm algorithm = AllreduceAlgorithm::automatic;  // mpi counts as automatic
  std::size_t chunk_bytes = NodeAllreduce::kDefaultChunkBytes;
  std::chrono::milliseconds timeout{0};  // 0: collectives_timeout()
};

class TcpEngine final : public HostEngine {
 public:
  // Collective over the ranks: every rank publishes its address and waits for the others'.
  TcpEngine(int rank, int size, PeerDirectory& directory, TcpSettings settings);
  TcpEngine(const TcpEngine&) = delete;
  TcpEngine& operator=(const TcpEngine&) = delete;
  ~TcpEngine() override;

  // Whether every rank runs on this node (allreduce then goes through shared memory).
  bool node_local() const { return node_local_; }

  void allreduce(const void* send, void* recv, std::size_t count, DType dtype, ReduceOp op) override;
  void broadcast(void* buffer, std::size_t count, DType dtype, int root) override;
  void allgather(const void* send, void* recv, std::size_t count, DType dtype) override;
  void reduce_scatter(const void* send, void* recv, std::size_t count, DType dtype, ReduceOp op) override;
  void barrier() override;

 private:
  struct Segment {
    void* base = nullptr;
    std::size_t bytes = 0;
  };

  void connect_mesh(PeerDirectory& directory);
  // Connects to rank r (below this one) and says hello with the job's token.
  Fd dial(int r, const std::string& address, const std::string& port,
          std::chrono::steady_clock::time_point deadline);
  // Waits for every rank above this one to connect, dropping strangers.
  void accept_higher_ranks(const Fd& listener, std::chrono::steady_clock::time_point deadline);
  void map_node_segments();
  // Sends `out` to rank `to` while receiving `in` from rank `from`, both whole.
  void exchange(const char* what, int to, const void* out, std::size_t out_bytes, int from, void* in,
                std::size_t in_bytes);
  void ring_allreduce(const void* send, void* recv, std::size_t count, DType dtype, ReduceOp op);
  void check_agreement(const char* what, int kind, std::size_t count, DType dtype, int extra);
  std::byte* scratch(std::size_t bytes);

  int rank_ = 0;
  int size_ = 1;
  TcpSettings settings_;
  bool node_local_ = false;
  std::string token_;  // rank 0's, from the directory: in every hello and segment name
  std::vector<Fd> peers_;  // by rank; this rank's own is empty
  std::vector<Segment> segments_;
  std::unique_ptr<NodeAllreduce> node_;
  std::vector<std::byte> scratch_;
};

}  // namespace cohort::collectives::detail
