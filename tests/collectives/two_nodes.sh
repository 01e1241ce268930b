# cohort's collectives across two mini-cluster nodes under srun --mpi=pmix: every operation
# and dtype, blocking, non-blocking and bucketed, with the ranks on two nodes (so large
# allreduces take the ring, not the node-local path), checked against the reference.
source "$COHORT_SOURCE_DIR/tests/cluster/lib.sh"
require_cluster

binary=$COHORT_BUILD_DIR/tests/collectives_test
[[ -x $binary ]] || fail "$binary not built"

# 2 ranks per node: ranks share a node pairwise but not all, so the automatic choice is the
# ring from 1 MiB and MPI below it. The forced algorithms are left out: NodeLocal needs every
# rank on one node, and the Mpi and Ring variants repeat what Automatic covers here, slowly
# over the emulated network.
filter='-*/NodeLocal:*/Mpi:*/Ring'
out=$(srun -N2 --ntasks-per-node=2 --mpi=pmix bash -c \
        'exec "$0" --gtest_color=no --gtest_filter="$1" --gtest_output=json:"$2/rank-$SLURM_PROCID.json"' \
        "$binary" "$filter" "$work" 2>&1) || fail "collectives across two nodes failed:
$(grep -E 'Failure|FAILED|Error' <<<"$out" | head -20)"
# Every rank's own report: each ran every selected test, none failed and none skipped
# (gtest prints a PASSED line even when other tests failed, so that line proves nothing).
selected=$("$binary" --gtest_filter="$filter" --gtest_list_tests | grep -c '^  ')
/usr/bin/python3 - "$work" "$selected" <<'CHECK' || fail "a rank's test report is not clean: $(grep -E 'FAILED|Skipped' <<<"$out" | head)"
import json, pathlib, sys
work, selected = pathlib.Path(sys.argv[1]), int(sys.argv[2])
reports = sorted(work.glob("rank-*.json"))
assert [p.name for p in reports] == [f"rank-{r}.json" for r in range(4)], reports
for p in reports:
    suites = json.loads(p.read_text())["testsuites"]
    cases = [c for s in suites for c in s["testsuite"] if c.get("result") != "SUPPRESSED"]
    ran = [c for c in cases if c["status"] == "RUN" and c["result"] == "COMPLETED"]
    failed = [c["name"] for c in ran if c.get("failures")]
    skipped = [c["name"] for c in cases if c["result"] == "SKIPPED"]
    assert len(ran) == selected, f"{p.name}: ran {len(ran)} of {selected} tests (skipped: {skipped})"
    assert not failed and not skipped, f"{p.name}: failed {failed}, skipped {skipped}"
CHECK
note "4 ranks, $selected tests each, none failed or skipped"

# The benchmark runs there too, every result checked, with the plain MPI baseline.
bench=$(srun -N2 --ntasks-per-node=1 --mpi=pmix "$COHORT_BUILD_DIR/bin/cohort" bench collectives \
          --sizes 8:4M --iters 3 --warmup 1 --rounds 1 --baseline mpi) || fail "bench across two nodes failed: $bench"
note "$bench"
grep -q "^# Out of bounds values : 0 OK" <<<"$bench" || fail "bench reported wrong results"
grep -q "allreduce_from_bytes 1048576," <<<"$bench" || fail "ranks on two nodes did not choose the ring from 1 MiB"
