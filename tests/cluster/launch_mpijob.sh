# An MPIJob spec: the emitted script allocates the workers, cohort launch runs the
# launcher in the batch step with COHORT_HOSTFILE naming the workers' nodes, and the
# launcher's mpirun starts an MPI program across both nodes of the allocation.
source "$(dirname "$0")/lib.sh"
require_cluster
cohort=$COHORT_BUILD_DIR/bin/cohort
probe=$COHORT_BUILD_DIR/tests/cluster_mpi_probe
cd "$work"

cat >"$work/mpijob.yaml" <<SPEC
apiVersion: kubeflow.org/v2beta1
kind: MPIJob
metadata: {name: mpi-probe}
spec:
  mpiReplicaSpecs:
    Launcher:
      replicas: 1
      command: [sh, -c, 'cp "\$COHORT_HOSTFILE" $work/hostfile; mpirun --allow-run-as-root -np 4 $probe']
    Worker: {replicas: 4, resources: {nodes: 2}}
SPEC
"$cohort" launch --spec "$work/mpijob.yaml" --emit-sbatch >"$work/mpijob.sh" || fail "--emit-sbatch failed"
grep -q '^#SBATCH --nodes=2 --ntasks=4 ' "$work/mpijob.sh" || fail "the script does not allocate the workers: $(cat "$work/mpijob.sh")"
! grep -q 'hetjob' "$work/mpijob.sh" || fail "an MPIJob is one allocation, not a heterogeneous job"
job=$(submit -o "$work/mpijob.out" "$work/mpijob.sh")
wait_until 120 "the MPIJob to finish" "job_done $job"
expect_eq "$(job_state "$job")" COMPLETED "state of the MPIJob ($(cat "$work/mpijob.out"))"
expect_eq "$(grep -c 'sum=10 expected=10' "$work/mpijob.out")" 4 "MPI ranks that reduced correctly"
expect_eq "$(grep -o 'host=node[0-9]*' "$work/mpijob.out" | sort -u | wc -l)" 2 "nodes the MPI ranks ran on"
expect_eq "$(cut -d' ' -f1 "$work/hostfile" | tr '\n' ' ')" "node1 node2 " "hosts in COHORT_HOSTFILE"
expect_eq "$(grep -o 'slots=[0-9]*' "$work/hostfile" | awk -F= '{s += $2} END {print s}')" 4 "slots in COHORT_HOSTFILE"
