# spank_cohort.so on a mini-cluster of its own whose nodes the DGX fixture describes
# (2 sockets, 8 GPUs, mlx5_i behind GPU i's switch): srun --cohort gives every task a
# distinct GPU with cores and HCA local to it and a launch contract that is enough for the
# ranks to meet and sum their ranks (what env:// rendezvous needs), and PyTorch forms its
# process group from it; verbose
# prints one line per task and the planning time; a plan that cannot be made fails the
# tasks with the reason.
source "$(dirname "$0")/lib.sh"

plugin_cluster

# The fixture's GPUs 0-3 sit on package 0 (cores 0-7, PUs 0-7,16-23), 4-7 on package 1.
local_cpus() { (($1 < 4)) && echo 0-7,16-23 || echo 8-15,24-31; }
expand() {  # a CPU list, one CPU a line
  local IFS=, part
  for part in $1; do
    if [[ $part == *-* ]]; then seq "${part%-*}" "${part#*-}"; else echo "$part"; fi
  done
}
within() { [[ -z $(comm -23 <(expand "$1" | sort) <(expand "$2" | sort)) ]]; }

report='echo "$SLURMD_NODENAME $SLURM_PROCID $SLURM_LOCALID $RANK $LOCAL_RANK $WORLD_SIZE $LOCAL_WORLD_SIZE'
report+=' $GROUP_RANK $MASTER_ADDR $MASTER_PORT $TORCHELASTIC_RESTART_COUNT $CUDA_VISIBLE_DEVICES $CUDA_DEVICE_ORDER'
report+=' $COHORT_GPUS $COHORT_CPUS $COHORT_NICS $NCCL_IB_HCA $OMP_NUM_THREADS"'

check_tasks() {  # out tasks_per_node
  local out=$1 per_node=$2
  expect_eq "$(wc -l <<<"$out")" $((2 * per_node)) "tasks that reported"
  local port
  port=$(awk '{print $10}' <<<"$out" | sort -u)
  expect_eq "$(wc -l <<<"$port")" 1 "distinct MASTER_PORT values across the step"
  ((port >= 29500 && port < 31500)) || fail "MASTER_PORT $port outside the default 29500+2000"
  local node procid localid rank lrank ws lws gr addr mport restart cvd order gpus cpus nics hca omp
  while read -r node procid localid rank lrank ws lws gr addr mport restart cvd order gpus cpus nics hca omp; do
    local t="task $procid on $node"
    expect_eq "$rank" "$procid" "$t: RANK"
    expect_eq "$lrank" "$localid" "$t: LOCAL_RANK"
    expect_eq "$ws" $((2 * per_node)) "$t: WORLD_SIZE"
    expect_eq "$lws" "$per_node" "$t: LOCAL_WORLD_SIZE"
    expect_eq "$gr" "$([[ $node == node1 ]] && echo 0 || echo 1)" "$t: GROUP_RANK"
    expect_eq "$addr" node1 "$t: MASTER_ADDR"
    expect_eq "$restart" 0 "$t: TORCHELASTIC_RESTART_COUNT"
    [[ $gpus =~ ^[0-7]$ ]] || fail "$t: COHORT_GPUS='$gpus', expected one GPU"
    # Without device cgroups a task sees every GPU, so the global index is the right name.
    expect_eq "$cvd" "$gpus" "$t: CUDA_VISIBLE_DEVICES"
    expect_eq "$order" PCI_BUS_ID "$t: CUDA_DEVICE_ORDER"
    within "$cpus" "$(local_cpus "$gpus")" || fail "$t: CPUs $cpus are not local to GPU $gpus ($(local_cpus "$gpus"))"
    expect_eq "$nics" "mlx5_$gpus" "$t: the NIC nearest GPU $gpus"
    expect_eq "$hca" "=mlx5_$gpus:1" "$t: NCCL_IB_HCA"
    [[ $omp =~ ^[1-9][0-9]*$ ]] || fail "$t: OMP_NUM_THREADS='$omp'"
  done <<<"$out"
  for node in node1 node2; do
    expect_eq "$(awk -v n="$node" '$1 == n {print $14}' <<<"$out" | sort -u | wc -l)" "$per_node" "distinct GPUs on $node"
    local all_cpus
    all_cpus=$(awk -v n="$node" '$1 == n {print $15}' <<<"$out" | while read -r c; do expand "$c"; done)
    expect_eq "$(sort <<<"$all_cpus" | uniq -d | wc -l)" 0 "CPUs given to two tasks on $node"
  done
}

# The issue's shape: 4 tasks and 4 GPUs per node.
out=$(srun -N2 --ntasks-per-node=4 --gpus-per-node=4 --cohort bash -c "$report") || fail "srun --cohort failed"
note "4 tasks per node:"$'\n'"$out"
check_tasks "$out" 4

# Every GPU of both sockets: tasks on package 1's GPUs get package 1's cores.
out=$(srun -N2 --ntasks-per-node=8 -c 2 --gpus-per-node=8 --cohort bash -c "$report") || fail "srun --cohort (8 per node) failed"
check_tasks "$out" 8
expect_eq "$(awk '$14 >= 4' <<<"$out" | wc -l)" 8 "tasks placed on package 1's GPUs"
expect_eq "$(awk '{print $18}' <<<"$out" | sort -u)" 2 "OMP_NUM_THREADS for 2 cores a task"

# The contract alone lets the ranks meet: each reaches rank 0 at MASTER_ADDR:MASTER_PORT,
# which sums the ranks it hears from.
cat >"$work/meet.py" <<'PY'
import os, socket, time
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
if rank == 0:
    total = 0
    with socket.create_server(("", port)) as server:
        for _ in range(world - 1):
            conn, _ = server.accept()
            with conn, conn.makefile() as f:
                total += int(f.read())
    print("sum", total)
else:
    deadline = time.monotonic() + 30
    while True:  # rank 0 may not be listening yet
        try:
            with socket.create_connection((addr, port), timeout=5) as s:
                s.sendall(str(rank).encode())
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
PY
out=$(srun -N2 --ntasks-per-node=2 --cohort python3 "$work/meet.py") || fail "the ranks could not meet: $out"
expect_eq "$out" "sum 6" "rank 0's sum of the other ranks"

# A real PyTorch program forms its process group from this environment alone (gloo,
# init_method="env://") and all-reduces correctly.
cat >"$work/torch_allreduce.py" <<'PY'
import torch
import torch.distributed as dist
dist.init_process_group("gloo", init_method="env://")
t = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
print("allreduce", int(t.item()), dist.get_world_size())
dist.destroy_process_group()
PY
out=$(srun -N2 --ntasks-per-node=2 --cohort /usr/bin/python3 "$work/torch_allreduce.py") ||
  fail "PyTorch could not form its process group: $out"
expect_eq "$(sort -u <<<"$out")" "allreduce 10 4" "every rank's all-reduced sum of ranks 1..4"
expect_eq "$(wc -l <<<"$out")" 4 "ranks that reported"

# verbose: a planning line per node and one line per task, saying which bindings applied.
# Whether the fixture's CPUs exist here depends on this machine: a task whose planned CPUs
# are all online is bound, any other says it skipped binding and why.
errfile=$work/verbose.err
out=$(srun -N1 -w node1 --ntasks-per-node=4 --gpus-per-node=4 --cohort=verbose bash -c 'echo $SLURM_PROCID $COHORT_CPUS' 2>"$errfile") ||
  fail "srun --cohort=verbose failed: $(cat "$errfile")"
err=$(cat "$errfile")
note "verbose:"$'\n'"$err"
grep -qE '^spank_cohort: node1: step [0-9]+\.0: planned 4 tasks in [0-9.]+ ms \(topology: .*dgx_a100_2s_8gpu_8ib.xml\)$' <<<"$err" ||
  fail "no planning line in: $err"
online=$(cat /sys/devices/system/cpu/online)
expect_eq "$(wc -l <<<"$out")" 4 "tasks that reported their CPUs"
while read -r task task_cpus; do
  if within "$task_cpus" "$online"; then
    binding="CPU binding: applied"
  else
    binding="CPU binding: skipped, CPUs? .* not on this machine"
  fi
  grep -qE "^spank_cohort: node1 task $task \(rank $task\): GPUs [0-3], CPUs .*; $binding" <<<"$err" ||
    fail "task $task (CPUs $task_cpus; this machine has $online): no line with '$binding' in: $err"
done <<<"$out"

# gpus-per-rank the step cannot give: every task fails with the reason, none runs.
if err=$(srun -N1 -w node1 -n2 --gpus-per-node=2 --cohort=gpus-per-rank:3 bash -c 'echo ran' 2>&1); then
  fail "a step with an impossible plan succeeded: $err"
fi
! grep -q '^ran$' <<<"$err" || fail "a task ran without its placement: $err"
grep -q 'spank_cohort: node1 task [01] (rank [01]): not started, placement failed: --cohort=gpus-per-rank 3: only 2 GPUs are allowed (SLURM_STEP_GPUS 0-1)' <<<"$err" ||
  fail "no placement failure line in: $err"
