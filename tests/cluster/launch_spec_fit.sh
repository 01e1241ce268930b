# A job spec the cluster can never start is refused when its script is written: Chief, PS
# and two Workers need three nodes, one a role, and the suite's cluster has two. Without the
# PS it fits, and is written as before.
source "$(dirname "$0")/lib.sh"
require_cluster
cohort=$COHORT_BUILD_DIR/bin/cohort
cd "$work"

nodes=$(sinfo -h -N -o %N | sort -u | wc -l)
((nodes < 3)) || fail "the test needs a cluster of fewer than 3 nodes (the suite's has 2); this one has $nodes"
cat >"$work/big.yaml" <<SPEC
kind: TFJob
metadata: {name: big}
spec:
  tfReplicaSpecs:
    Chief: {replicas: 1, command: [sh, -c, 'true']}
    PS: {replicas: 1, command: [sh, -c, 'true']}
    Worker: {replicas: 2, command: [sh, -c, 'true']}
SPEC
status=0
err=$("$cohort" launch --spec "$work/big.yaml" --emit-sbatch 2>&1 >/dev/null) || status=$?
expect_eq "$status" 2 "exit status of --emit-sbatch for a spec that cannot start"
[[ $err == *"big needs 3 nodes (chief 1, ps 1, worker 1: "*") and the cluster has $nodes; it would wait in the queue for ever"* ]] ||
  fail "refusal said: $err"

sed -i '/PS:/d' "$work/big.yaml"
"$cohort" launch --spec "$work/big.yaml" --emit-sbatch >"$work/fits.sh" || fail "a spec that fits was refused"
grep -q '^#SBATCH hetjob' "$work/fits.sh" || fail "no hetjob script: $(cat "$work/fits.sh")"
