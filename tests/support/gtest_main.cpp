// main() for a GoogleTest binary that ctest runs whole, as one test (under mpirun, say).
// ctest's SKIP_RETURN_CODE then tells "nothing could run here" from "ran and passed": the
// binary exits 77 when every test it ran was skipped and none failed, on every rank, and
// only then. A failure always wins, so a machine that lacks what some tests need never
// hides the failure of another.
#include <gtest/gtest.h>
#include <mpi.h>

namespace {

constexpr int kAllSkipped = 77;  // the Automake convention that ctest's SKIP_RETURN_CODE reads

// mpirun exits with the status of whichever rank ended first with a non-zero one, so ranks
// agree before any returns 77: one rank that skipped everything must not mask another's
// failure. Without MPI running, this rank's own verdict stands.
bool every_rank_skipped_everything(bool here) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return here;
  int mine = here ? 1 : 0, all = 0;
  if (MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS) return false;
  return all == 1;
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  const ::testing::UnitTest& unit = *::testing::UnitTest::GetInstance();
  const bool skipped_everything = rc == 0 && unit.failed_test_count() == 0 &&
                                  unit.test_to_run_count() > 0 &&
                                  unit.skipped_test_count() == unit.test_to_run_count();
  const bool everywhere = every_rank_skipped_everything(skipped_everything);
  return everywhere ? kAllSkipped : rc;
}
