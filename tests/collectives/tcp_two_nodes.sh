# Ranks that no MPI started meet over TCP at MASTER_ADDR:MASTER_PORT across two mini-cluster
# nodes: cohort launch starts them (srun without --mpi, so only the launch contract knows
# them), rank 0 listens on node1 and the others connect from both nodes. First the meeting
# alone: every rank receives what rank 0 sent. Then a whole communicator, whose ranks learn
# there how to reach each other and allreduce host memory across both nodes. Then the nccl
# backend: the mini-cluster has no real GPU, so rank 0 cannot take part, and every rank must
# fail at once with rank 0's reason rather than wait for it.
source "$COHORT_SOURCE_DIR/tests/cluster/lib.sh"
require_cluster
probe=$COHORT_BUILD_DIR/tests/join_probe
[[ -x $probe ]] || fail "$probe not built"
cd "$work"

printf '#!/bin/bash\nexec %q launch -- %q --rendezvous\n' "$COHORT_BUILD_DIR/bin/cohort" "$probe" >"$work/meet.sh"
job=$(submit -N2 --ntasks-per-node=2 -o "$work/meet.out" "$work/meet.sh")
wait_until 120 "job $job to end" "job_done $job"
expect_eq "$(job_state "$job")" COMPLETED "state of the rendezvous job"
expect_eq "$(grep -c 'received node1$' meet.out)" 4 "ranks that received rank 0's host name from node1"

printf '#!/bin/bash\nexec %q launch -- %q\n' "$COHORT_BUILD_DIR/bin/cohort" "$probe" >"$work/sum.sh"
job=$(submit -N2 --ntasks-per-node=2 -o "$work/sum.out" "$work/sum.sh")
wait_until 120 "job $job to end" "job_done $job"
expect_eq "$(job_state "$job")" COMPLETED "state of the allreduce job ($(cat sum.out))"
for rank in 0 1 2 3; do
  grep -q "joined $rank 4 sum 10\$" sum.out || fail "rank $rank did not allreduce to 10 in a world of 4: $(cat sum.out)"
done

printf '#!/bin/bash\nexport COHORT_COLLECTIVES_BACKEND=nccl\nexec %q launch -- %q\n' "$COHORT_BUILD_DIR/bin/cohort" \
  "$probe" >"$work/join.sh"
job=$(submit -N2 --ntasks-per-node=2 -o "$work/join.out" "$work/join.sh")
# Only a hang guard: the rendezvous itself would wait 600 s for a missing rank.
wait_until 120 "job $job to end" "job_done $job"
expect_eq "$(job_state "$job")" FAILED "state of a job whose ranks cannot form a NCCL communicator"
reasons=$(grep 'join_probe: ' join.out | sed 's/^ *[0-9]*: //' | sort | uniq -c)
note "$reasons"
expect_eq "$(grep -c 'join_probe: rendezvous at node1:[0-9]*: rank 0 cannot take part: ' join.out)" 4 \
  "ranks that report rank 0's reason from the rendezvous on node1"
expect_eq "$(wc -l <<<"$reasons")" 1 "distinct messages (every rank says the same)"

# A heterogeneous job: one component per role, each with a job id of its own. The ranks of
# both components meet as one job (the key is the heterogeneous job's id), one on each node.
cat >"$work/ptjob.yaml" <<SPEC
kind: PyTorchJob
spec:
  pytorchReplicaSpecs:
    Master: {replicas: 1, command: [$probe, --rendezvous]}
    Worker: {replicas: 1, command: [$probe, --rendezvous]}
SPEC
"$COHORT_BUILD_DIR/bin/cohort" launch --spec "$work/ptjob.yaml" --emit-sbatch >"$work/ptjob.sh" ||
  fail "--emit-sbatch failed"
expect_eq "$(grep -c '^#SBATCH hetjob' "$work/ptjob.sh")" 1 "hetjob separators in the emitted script"
job=$(submit -o "$work/ptjob.out" "$work/ptjob.sh")
wait_until 120 "heterogeneous job $job to end" "job_done $job"
expect_eq "$(job_state "$job")" COMPLETED "state of the heterogeneous rendezvous job ($(cat ptjob.out))"
expect_eq "$(grep -c 'received node[12]$' ptjob.out)" 2 "ranks of both components that received rank 0's host name"
