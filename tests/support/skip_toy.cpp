// A toy that scripts/test's counting is checked against: one test that always skips and
// one that fails on the rank COHORT_TOY_FAIL_RANK names (and skips elsewhere). Built and
// registered exactly as the gpu tests are; labelled `selftest`, so only
// skip_counting.sh runs it.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdlib>
#include <string>

namespace {

int world_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

// MPI up on every rank until exit, as cohort's communicator leaves it.
class MpiEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    std::atexit([] { MPI_Finalize(); });
  }
};
const auto* const kMpi = ::testing::AddGlobalTestEnvironment(new MpiEnvironment);

TEST(Toy, SkipsEverywhere) { GTEST_SKIP() << "the toy has nothing to run here"; }

TEST(Toy, FailsOnTheRankAskedFor) {
  const char* rank = std::getenv("COHORT_TOY_FAIL_RANK");
  if (!rank || std::to_string(world_rank()) != rank) GTEST_SKIP() << "no failure asked of this rank";
  ADD_FAILURE() << "the failure asked of rank " << rank;
}

}  // namespace
