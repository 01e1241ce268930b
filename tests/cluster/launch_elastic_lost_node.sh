# An elastic PyTorchJob whose node Slurm loses (its slurmd and the Worker's processes
# there killed, the node marked down): with minReplicas 1 the launch restarts the gang on the node it still
# has, without waiting for Slurm to give the lost one back, and torchrun's rendezvous
# makes a world of that one node; with minReplicas 2 it ends, naming how many nodes are
# left. Killing slurmd takes a cluster of the test's own.
source "$(dirname "$0")/lib.sh"
cohort=$COHORT_BUILD_DIR/bin/cohort
own_cluster --nodes 3 --cpus 2 --gpus-per-node 0
cd "$work"
# Debian's torchrun needs a mend to start under Python 3.11 (see its file).
export PYTHONPATH=$COHORT_SOURCE_DIR/tests/support/torchrun_fix

# Each process all_reduces and says so; in the first attempt it then records its pid and
# waits to be killed.
cat >"$work/worker.py" <<'PY'
import os, sys, time
import torch, torch.distributed as dist
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
total = torch.tensor([float(rank + 1)])
dist.all_reduce(total)
attempt = os.environ["COHORT_RESTART_COUNT"]
os.write(1, f"attempt {attempt}: rank {rank} of {world}: sum {int(total.item())}\n".encode())
if attempt == "0":
    path = f"{sys.argv[1]}-pid-{os.uname().nodename}"
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(path + ".tmp", path)
    time.sleep(1000)
PY

# start NAME MIN NODES: the elastic job NAME of MIN..2 Workers, one process each, on NODES;
# waits until both Workers' processes have met in one world. (With minReplicas 1 the first
# node may meet alone at first; torchrun then meets again when the second joins.)
start() {
  local name=$1 least=$2 nodes=$3
  cat >"$work/$name.yaml" <<SPEC
kind: PyTorchJob
metadata: {name: $name}
spec:
  nprocPerNode: 1
  elasticPolicy: {minReplicas: $least, maxReplicas: 2, maxRestarts: 0, rdzvConf: [{key: last_call_timeout, value: "1"}]}
  pytorchReplicaSpecs:
    Worker: {replicas: 2, restartPolicy: OnFailure, command: [/usr/bin/python3, -m, torch.distributed.run, $work/worker.py, $work/$name]}
SPEC
  "$cohort" launch --spec "$work/$name.yaml" --emit-sbatch >"$work/$name.sh" || fail "--emit-sbatch $name.yaml failed"
  job=$(submit -w "$nodes" -o "$work/$name.out" "$work/$name.sh")
  # A world of one may form first; torchrun sees the other node at its next look and
  # restarts its worker, which imports torch again: on a loaded machine, most of a minute.
  wait_until 180 "both Workers of $name to meet" "[[ \$(grep -c 'attempt 0: rank [01] of 2: sum 3\$' $work/$name.out) == 2 ]]" \
    "cat $work/$name.out"
}

# lose NODE: what a node's death does: its slurmd and the Worker there (its program,
# torchrun and cohort's wrapper above them) killed, and Slurm's verdict given at once
# rather than after SlurmdTimeout: the node is down. The job's --no-kill keeps it going.
lose() {
  local pid worker agent wrapper
  pid=$(cat "$COHORT_MINICLUSTER_DIR/run/slurmd-$1.pid")
  [[ $(tr '\0' ' ' <"/proc/$pid/cmdline") == *slurmd* ]] || fail "pid $pid of $1 is not its slurmd"
  wait_until 30 "the Worker on $1 to record its pid" "[[ -s $work/$name-pid-$1 ]]"
  worker=$(cat "$work/$name-pid-$1")
  # ps pads the parent's pid; arithmetic takes the padding off.
  agent=$(($(ps -o ppid= -p "$worker"))) && wrapper=$(($(ps -o ppid= -p "$agent"))) || fail "no torchrun above pid $worker"
  [[ $(tr '\0' ' ' <"/proc/$wrapper/cmdline") == *"launch --as-rank"* ]] || fail "pid $wrapper is not cohort's wrapper"
  kill -KILL "$pid" "$wrapper" "$agent" "$worker"
  scontrol update NodeName="$1" State=DOWN Reason="lost in a test"
}

name=shrinks
start shrinks 1 "node[1-2]"
lose node2
wait_until 120 "the elastic job to finish on node1" "job_done $job" "cat shrinks.out"
expect_eq "$(job_state "$job")" COMPLETED "state of the job that lost node2 ($(cat shrinks.out))"
grep -q 'Slurm lost node node2 .*; restart 1 of 6 goes on with the 1 node the job still has (minReplicas 1)$' shrinks.out ||
  fail "the launch does not say it goes on without node2: $(cat shrinks.out)"
grep -q '^0: attempt 1: rank 0 of 1: sum 1$' shrinks.out || fail "the restart was not a world of node1 alone: $(cat shrinks.out)"
grep -q 'cohort: launch: succeeded: 1 rank, 1 restart' shrinks.out || fail "no success on one node: $(cat shrinks.out)"

name=ends
start ends 2 "node[1,3]"
lose node3
wait_until 120 "the elastic job to end" "job_done $job" "cat ends.out"
grep -q 'cannot go on: only 1 node remains, fewer than minReplicas (2)' ends.out ||
  fail "the launch does not say too few nodes remain: $(cat ends.out)"
! grep -q 'attempt 1' ends.out || fail "a restart ran below minReplicas: $(cat ends.out)"
