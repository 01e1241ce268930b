// An allreduce over every rank and a checkpoint round trip, through an installed cohort.
//   mpirun -n 2 consumer DIR   prints "consumer: ok" on rank 0 when both came out right.
#include <mpi.h>

#include <cstdio>
#include <vector>

#include "checkpoint/checkpoint.hpp"
#include "collectives/communicator.hpp"
#include "common/error.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: consumer DIR\n");
    return 2;
  }
  try {
    auto comm = cohort::collectives::Communicator::from_environment();
    const int rank = comm.rank(), size = comm.size();
    std::vector<float> values(1000, static_cast<float>(rank + 1));
    comm.allreduce(values.data(), values.data(), values.size(), cohort::DType::float32,
                   cohort::collectives::ReduceOp::sum);
    const float expected = static_cast<float>(size * (size + 1) / 2);
    for (float v : values) {
      if (v != expected) {
        std::fprintf(stderr, "consumer: allreduce gave %g, not %g\n", v, expected);
        return 1;
      }
    }

    // A replicated tensor (the same on every rank) and one sharded by rows (each rank's own).
    namespace ck = cohort::checkpoint;
    std::vector<double> weights(8);
    for (std::size_t i = 0; i < weights.size(); ++i) weights[i] = 0.5 * static_cast<double>(i);
    std::vector<std::int64_t> rows(4, 100 * rank);
    const std::vector<std::uint64_t> w_shape{weights.size()}, r_shape{2, 2};
    ck::State state;
    state.tensors.push_back({"w", cohort::DType::float64, w_shape, ck::Sharding::replicated, weights.data()});
    state.tensors.push_back({"rows", cohort::DType::int64, r_shape, ck::Sharding::rows, rows.data()});
    ck::Checkpointer checkpointer(argv[1]);
    checkpointer.save(7, state);
    std::vector<double> w(weights.size(), -1.0);
    std::vector<std::int64_t> r(rows.size(), -1);
    const std::vector<ck::TensorSlot> slots{{"w", cohort::DType::float64, w_shape, ck::Sharding::replicated, w.data()},
                                            {"rows", cohort::DType::int64, r_shape, ck::Sharding::rows, r.data()}};
    const auto resumed = checkpointer.load_latest(slots);
    if (!resumed || resumed->step != 7 || w != weights || r != rows) {
      std::fprintf(stderr, "consumer: the checkpoint did not come back as saved at step 7\n");
      return 1;
    }
    if (rank == 0) std::printf("consumer: ok (%d ranks)\n", size);
  } catch (const cohort::Error& e) {
    std::fprintf(stderr, "consumer: %s\n", e.what());
    return 1;
  }
  return 0;
}
