# cohort launch when Slurm loses a node of the allocation (its slurmd killed): the launch
# names the node and says Slurm lost it, where srun says only "Communication connection
# failure". A rank killed on the lost node with no restart allowed: the launch fails naming
# the node. A rank killed on a healthy node while its partner runs on the lost one: the
# partner cannot be killed, so the restart waits for Slurm, which ends the job for the node
# failure and requeues it. Slurm learns that a node is gone at its next ping of it (every
# SlurmdTimeout/3); when the partner's step outlives the teardown before that, the launch
# waits for Slurm's word. Killing slurmd takes a cluster of the test's own.
source "$(dirname "$0")/lib.sh"
cohort=$COHORT_BUILD_DIR/bin/cohort
own_cluster --nodes 3 --cpus 2 --gpus-per-node 0
cd "$work"

# start NAME NODES RESTARTS: a two-rank launch on NODES, one rank a node, allowed RESTARTS;
# each rank's program writes its pid to NAME-pid-RANK-RESTART. Waits until both ranks run.
start() {
  local name=$1 nodes=$2 restarts=$3
  printf '#!/bin/bash\nexec %q launch --max-restarts %d -- bash -c %q\n' "$cohort" "$restarts" \
    "echo \$\$ >$work/$name-pid-\$RANK-\$COHORT_RESTART_COUNT.tmp && mv $work/$name-pid-\$RANK-\$COHORT_RESTART_COUNT.tmp $work/$name-pid-\$RANK-\$COHORT_RESTART_COUNT; exec sleep 1000" \
    >"$work/$name.sh"
  job=$(submit -N2 -w "$nodes" --ntasks-per-node=1 --requeue -o "$work/$name.out" "$work/$name.sh")
  wait_until 60 "both ranks of $name to run" "[[ -s $work/$name-pid-0-0 && -s $work/$name-pid-1-0 ]]"
}

# lose NODE: kill the node's slurmd, by the pid it recorded.
lose() {
  local pid
  pid=$(cat "$COHORT_MINICLUSTER_DIR/run/slurmd-$1.pid")
  [[ $(tr '\0' ' ' <"/proc/$pid/cmdline") == *slurmd* ]] || fail "pid $pid of $1 is not its slurmd"
  kill -KILL "$pid"
}

# The rank on the lost node is killed, and no restart is allowed.
start there node[1-2] 0
lose node2
# The rank's own slurmstepd still reports its end, so Slurm names the node only once it has
# pinged it: the rank is killed after that.
wait_until 120 "Slurm to find node2 not responding" "scontrol show node node2 -o | grep -q 'State=[A-Z+]*NOT_RESPONDING'" "scontrol show node node2 -o"
kill -KILL "$(cat there-pid-1-0)"
# The job stays COMPLETING until Slurm declares node2 down; its exit code is final already.
wait_until 120 "the launch on node[1-2] to end" "[[ \$(job_field $job ExitCode) != 0:0 ]]" "cat there.out"
expect_eq "$(job_field "$job" ExitCode)" 1:0 "exit code with a rank lost on a lost node"
grep -q 'cohort: launch: failed: rank 1 (node2) killed by SIGKILL first; Slurm lost node node2 (not responding: its slurmd does not answer): ranks there can be neither killed nor started' there.out ||
  fail "the failure does not name the lost node: $(cat there.out)"
! grep -q 'failed before any rank reported' there.out || fail "the lost node is reported as an unexplained step failure: $(cat there.out)"

# The rank on the healthy node is killed; its partner on the lost node cannot be.
start partner node[1,3] 1
lose node3
# Slurm learns that the node is gone at its next ping (every SlurmdTimeout/3), before the
# teardown ends or after it: then the launch waits for Slurm's word before it restarts.
kill -KILL "$(cat partner-pid-0-0)"
wait_until 120 "the launch to wait for the lost node" "grep -q 'waits until Slurm has the node back' partner.out" "cat partner.out"
grep -q 'rank 0 (node1) killed by SIGKILL first; Slurm lost node node3 (not responding: its slurmd does not answer): ranks there can be neither killed nor started; gang torn down in [0-9.]* s; restart 1 of 1 waits until Slurm has the node back' partner.out ||
  fail "the teardown does not name the lost node: $(cat partner.out)"
[[ ! -e partner-pid-0-1 ]] || fail "a restart ran beside the lost node: $(cat partner.out)"
# Slurm's verdict, without waiting out SlurmdTimeout: the node is down, the job ends for
# it and, being requeueable, goes back to the queue.
scontrol update NodeName=node3 State=DOWN Reason="slurmd killed by a test"
wait_until 60 "Slurm to requeue job $job" "[[ \$(job_field $job Restarts) == 1 ]]"
wait_until 30 "the launch to end" "grep -q 'stopped by SIGTERM while waiting for Slurm' partner.out"
scancel "$job"
