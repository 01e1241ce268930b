# An elastic PyTorchJob (Kubeflow's elasticPolicy: 1 to 2 Workers, c10d rendezvous) with
# nprocPerNode 2 on the two-node cluster: its script asks Slurm for 1-2 nodes, Slurm grants
# both, each node's Worker runs torchrun (Debian's, python3 -m torch.distributed.run), the
# two meet on the first node, and the world is 2 nodes x 2 processes: every process's gloo
# all_reduce gives the sum over 4 ranks.
source "$(dirname "$0")/lib.sh"
require_cluster
cohort=$COHORT_BUILD_DIR/bin/cohort
cd "$work"
# Debian's torchrun needs a mend to start under Python 3.11 (see its file).
export PYTHONPATH=$COHORT_SOURCE_DIR/tests/support/torchrun_fix

program=$COHORT_SOURCE_DIR/tests/launcher/fixtures/torchrun_allreduce.py
cat >"$work/elastic.yaml" <<SPEC
kind: PyTorchJob
metadata: {name: elastic}
spec:
  nprocPerNode: "2"
  elasticPolicy: {minReplicas: 1, maxReplicas: 2, rdzvBackend: c10d, maxRestarts: 1}
  pytorchReplicaSpecs:
    Worker: {replicas: 2, restartPolicy: OnFailure, command: [/usr/bin/python3, -m, torch.distributed.run, $program]}
SPEC
"$cohort" launch --spec "$work/elastic.yaml" --emit-sbatch >"$work/elastic.sh" || fail "--emit-sbatch elastic.yaml failed"
grep -q '^#SBATCH --nodes=1-2 --ntasks=2 --spread-job ' "$work/elastic.sh" || fail "no 1-2 node request: $(cat "$work/elastic.sh")"
job=$(submit -o "$work/elastic.out" "$work/elastic.sh")
wait_until 120 "the elastic job to finish" "job_done $job" "tail -20 $work/elastic.out"
expect_eq "$(job_state "$job")" COMPLETED "state of the elastic job ($(tail -30 "$work/elastic.out"))"
expect_eq "$(job_field "$job" NumNodes)" 2 "nodes Slurm granted"
for rank in 0 1 2 3; do
  grep -q "rank $rank of 4: sum 10 (expected 10)" "$work/elastic.out" ||
    fail "rank $rank did not all_reduce in a world of 4: $(cat "$work/elastic.out")"
done
# torchrun's rendezvous made each Worker one node of two, with 2 processes each.
for node in 0 1; do
  expect_eq "$(grep -c "node $node local [01] of 2\$" "$work/elastic.out")" 2 "processes on rendezvous node $node ($(cat "$work/elastic.out"))"
done
grep -q "cohort: launch: succeeded: 2 ranks" "$work/elastic.out" || fail "no success line: $(tail "$work/elastic.out")"
