# scripts/minicluster up/down of a second cluster beside the suite's: every node comes up
# idle, names resolve on the nodes and for the controller, a second 'up' is refused, and
# after 'down' nothing it started is left: no process, namespace, bridge, mount or file.
source "$(dirname "$0")/lib.sh"

mc=$COHORT_SOURCE_DIR/scripts/minicluster
export COHORT_MINICLUSTER_DIR=$work/cluster
unset SLURM_CONF

at_exit '"$mc" down >/dev/null 2>&1' 

"$mc" up --nodes 3 --cpus 2 --gpus-per-node 2 || fail "up failed"
eval "$("$mc" env)"
expect_eq "$(sinfo -h -N -o '%N %T' | tr '\n' ' ')" "node1 idle node2 idle node3 idle " "node states after up"
status=$("$mc" status)
grep -q "^node3 *idle" <<<"$status" || fail "status does not show node3 idle: $status"

# Names resolve on every node, to that node's address, and for the controller.
source "$COHORT_MINICLUSTER_DIR/instance"
expected="$subnet.11 $subnet.12 $subnet.13"
resolved=$(srun -N3 --ntasks-per-node=1 bash -c 'echo $(getent hosts node1 node2 node3 | cut -d" " -f1)')
expect_eq "$(wc -l <<<"$resolved")" 3 "nodes that answered"
while read -r line; do expect_eq "$line" "$expected" "addresses seen on a node"; done <<<"$resolved"
ctl_pid=$(cat "$COHORT_MINICLUSTER_DIR/run/slurmctld.pid")
expect_eq "$(nsenter --mount --target "$ctl_pid" getent hosts node2 | cut -d' ' -f1)" "$subnet.12" \
  "node2's address as the controller resolves it"

# A second 'up' is refused and leaves the running cluster alone.
if out=$("$mc" up 2>&1); then fail "a second up succeeded: $out"; fi
grep -q "already up" <<<"$out" || fail "second up did not say 'already up': $out"
# The three-node step above may still be in its epilog (completing) on some node.
wait_until 30 "every node to be idle after the refused up" "[[ \$(sinfo -h -N -o '%T' | sort -u) == idle ]]" \
  "sinfo -N"

# Each job has a TMPDIR of its own on each node, whatever the caller's (here the host's
# /tmp, which every node shares), and the job's end (its epilog) removes it.
job_tmp=$(TMPDIR=/tmp srun -N1 -w node2 bash -c 'touch "$TMPDIR/left"; echo "$SLURM_JOB_ID $TMPDIR"') ||
  fail "a job writing to its TMPDIR failed"
read -r tmp_job tmp_dir <<<"$job_tmp"
expect_eq "$tmp_dir" "/dev/shm/job$tmp_job" "a job's TMPDIR on its node"
wait_until 30 "node2 to finish the job's epilog" "[[ \$(sinfo -h -n node2 -o %T) == idle ]]"
expect_eq "$(srun -N1 -w node2 bash -c "ls -d $tmp_dir 2>/dev/null | wc -l")" 0 "TMPDIRs of ended jobs left on the node"

# Everything 'up' started, to check after 'down'.
pids=$(cat "$COHORT_MINICLUSTER_DIR"/run/*.pid; for i in 1 2 3; do ip netns pids "$prefix-node$i"; done)
[[ $(wc -w <<<"$pids") -ge 5 ]] || fail "expected munged, slurmctld and 3 slurmd, found pids: $pids"

"$mc" down || fail "down failed"
for pid in $pids; do
  ! kill -0 "$pid" 2>/dev/null || fail "process $pid ($(tr '\0' ' ' </proc/"$pid"/cmdline)) survived down"
done
! ip netns list | grep -q "^$prefix-" || fail "namespaces left: $(ip netns list | grep "^$prefix-")"
! ip link show "$bridge" >/dev/null 2>&1 || fail "bridge $bridge left after down"
! ip link show | grep -q "${prefix}v" || fail "veth interfaces left after down"
! grep -q "$COHORT_MINICLUSTER_DIR" /proc/mounts || fail "mounts left: $(grep "$COHORT_MINICLUSTER_DIR" /proc/mounts)"
[[ ! -e $COHORT_MINICLUSTER_DIR ]] || fail "state directory left: $(ls -A "$COHORT_MINICLUSTER_DIR")"

# down when down is a no-op.
"$mc" down || fail "a second down failed"
