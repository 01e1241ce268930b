# scripts/test's counting against a real ctest run of the toy (skip_toy.cpp), registered as
# the gpu and multi-rank tests are: a skipped test is counted as not run, and a failing
# test beside skipped ones, on any rank, is a failure.
#   skip_counting.sh BUILD_DIR_OF_tests/support
set -euo pipefail
dir=$1
source "$COHORT_SOURCE_DIR/scripts/lib/ctest-counts.sh"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

fail() { echo "FAIL: $*" >&2; echo "--- ctest said:" >&2; cat "$log" >&2; exit 1; }
# counts FAIL_RANK: runs the toy's two tests, prints what ctest_counts makes of them.
counts() {
  COHORT_TOY_FAIL_RANK=$1 ctest --test-dir "$dir" -L '^selftest$' --no-tests=error >"$log" 2>&1 || true
  ctest_counts "$log"
}

got=$(counts none)
[[ $got == "0 0 2" ]] || fail "nothing failing: expected 0 passed, 0 failed, 2 skipped; got '$got'"
got=$(counts 0)
[[ $got == "0 2 0" ]] || fail "rank 0 failing: expected both runs failed; got '$got'"
# One rank fails while the other skipped everything: the skip must not mask it, whichever
# rank mpirun hears from first. The one-rank run has no rank 1 and skips.
got=$(counts 1)
[[ $got == "0 1 1" ]] || fail "rank 1 of 2 failing: expected 1 failed, 1 skipped; got '$got'"
echo "skipped tests are counted as not run; a failure beside them is a failure"
