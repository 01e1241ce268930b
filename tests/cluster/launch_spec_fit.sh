# A job spec whose heterogeneous job the cluster could never start: Chief, PS and two
# Workers need three nodes, one a role, and the suite's cluster has two. Its roles ask for
# the same resources, so the script packs them into one plain allocation, and the job runs,
# each replica in its role. With a role asking for more CPUs it cannot be packed and is
# refused when its script is written, naming why. Without the PS it fits as a
# heterogeneous job, written as before.
source "$(dirname "$0")/lib.sh"
require_cluster
cohort=$COHORT_BUILD_DIR/bin/cohort
cd "$work"

nodes=$(sinfo -h -N -o %N | sort -u | wc -l)
((nodes < 3)) || fail "the test needs a cluster of fewer than 3 nodes (the suite's has 2); this one has $nodes"
# Each replica says its role and leaves a mark; the chief, which decides the job, ends once
# all four marks are there (for at most 60 s).
cat >"$work/replica.sh" <<'SH'
echo "role $COHORT_ROLE $COHORT_ROLE_INDEX rank $RANK"
touch "$1/started-$RANK"
[ "$COHORT_ROLE" = chief ] || exec sleep 120
for _ in $(seq 600); do [ "$(ls "$1"/started-* | wc -l)" -ge 4 ] && exit 0; sleep 0.1; done
exit 1
SH
cat >"$work/big.yaml" <<SPEC
kind: TFJob
metadata: {name: big}
spec:
  tfReplicaSpecs:
    Chief: {replicas: 1, command: [sh, $work/replica.sh, $work]}
    PS: {replicas: 1, command: [sh, $work/replica.sh, $work]}
    Worker: {replicas: 2, command: [sh, $work/replica.sh, $work]}
SPEC
"$cohort" launch --spec "$work/big.yaml" --emit-sbatch >"$work/packed.sh" || fail "a spec that packs was refused"
grep -q '^#SBATCH --ntasks=4 --cpus-per-task=1  # chief 1, ps 1, worker 2$' "$work/packed.sh" ||
  fail "no packed script: $(cat "$work/packed.sh")"
job=$(submit -o "$work/packed.out" "$work/packed.sh")
wait_until 120 "the packed job to finish" "job_done $job"
expect_eq "$(job_state "$job")" COMPLETED "state of the packed job ($(tail -20 "$work/packed.out"))"
# The chief decided; the others were ended once it had succeeded, having each said their role.
for line in "role chief 0 rank 0" "role ps 0 rank 1" "role worker 0 rank 2" "role worker 1 rank 3"; do
  grep -q "$line\$" "$work/packed.out" || fail "no '$line' in the packed job's output: $(cat "$work/packed.out")"
done

sed -i 's/Worker: {replicas: 2, /Worker: {replicas: 2, resources: {cpus: 2}, /' "$work/big.yaml"
status=0
err=$("$cohort" launch --spec "$work/big.yaml" --emit-sbatch 2>&1 >/dev/null) || status=$?
expect_eq "$status" 2 "exit status of --emit-sbatch for a spec that cannot start"
[[ $err == *"big needs 3 nodes (chief 1, ps 1, worker 1: "*") and the cluster has $nodes; it would wait in the queue for ever, and its roles cannot share one allocation"* ]] ||
  fail "refusal said: $err"

sed -i '/PS:/d' "$work/big.yaml"
"$cohort" launch --spec "$work/big.yaml" --emit-sbatch >"$work/fits.sh" || fail "a spec that fits was refused"
grep -q '^#SBATCH hetjob' "$work/fits.sh" || fail "no hetjob script: $(cat "$work/fits.sh")"
