# An MPI program started by srun --mpi=pmix across two emulated nodes reduces correctly,
# and every rank runs on, and reports, its own node's hostname.
source "$(dirname "$0")/lib.sh"
require_cluster

probe=$COHORT_BUILD_DIR/tests/cluster_mpi_probe
[[ -x $probe ]] || fail "$probe not built"

out=$(srun -N2 --ntasks-per-node=2 --mpi=pmix -l "$probe") || fail "srun --mpi=pmix failed: $out"
note "$out"
expect_eq "$(grep -c 'sum=10 expected=10' <<<"$out")" 4 "ranks that saw the right sum"
expect_eq "$(grep -c 'size=4 ' <<<"$out")" 4 "ranks that saw world size 4"
# srun -l prefixes each line with the task id; block distribution puts 0,1 on the first
# node and 2,3 on the second.
host_of() { grep "^ *$1: " <<<"$out" | grep -o 'host=[^ ]*' | cut -d= -f2; }
expect_eq "$(host_of 0)" "$(host_of 1)" "ranks 0 and 1 share a node"
expect_eq "$(host_of 2)" "$(host_of 3)" "ranks 2 and 3 share a node"
[[ $(host_of 0) != "$(host_of 2)" ]] || fail "all ranks reported one hostname ($(host_of 0))"

# The hostname a rank reports is the one Slurm placed it on, and resolves on every node
# to that node's own address: it is a usable rendezvous address.
where=$(srun -N2 --ntasks-per-node=1 -l bash -c 'echo "$(hostname) $SLURMD_NODENAME $(getent hosts node1 | cut -d" " -f1)"')
while read -r task host slurm_name node1_addr; do
  expect_eq "$host" "$slurm_name" "hostname of task ${task%:}"
  expect_eq "$node1_addr" "$(scontrol show node node1 | grep -o 'NodeAddr=[^ ]*' | cut -d= -f2)" \
    "address of node1 as resolved on $host"
done <<<"$where"
