# cohort launch when the link between a node and its supervisor fails. The supervisor's
# connection to node2's watcher is cut (the socket destroyed with `ss -K` in node1's network
# namespace, as a failed network does, so both ends see it reset): that is node2's failure,
# named as such; node2's watcher kills its rank by itself, and the gang is torn down and
# restarted. The same when the link's packets are dropped silently (an nftables rule in
# node2's namespace): TCP keepalive finds it. The supervisor killed with SIGKILL while its batch script lives on (so Slurm
# does not end the job for it): every rank on every node ends, through its watcher. A
# node's agent killed: its node's failure, every rank it carried named.
source "$(dirname "$0")/lib.sh"
require_cluster
cohort=$COHORT_BUILD_DIR/bin/cohort
cd "$work"
source "$COHORT_MINICLUSTER_DIR/instance"  # prefix, subnet: the nodes' namespaces and addresses
command -v ss >/dev/null || fail "ss (iproute2) is needed to cut a connection"

# start NAME RESTARTS NODES RANKS-PER-NODE: a launch run in the background of its batch
# script, which records the supervisor's pid in NAME.sup, then waits for NAME.release (made
# here for NAME=cut) before it ends with the launch's status. Each rank's program writes its
# pid to NAME-pid-RANK-RESTART; on a restart it says so and ends. Waits until all run.
start() {
  local name=$1 restarts=$2 nodes=$3 per_node=$4
  local program="echo \$\$ >$work/$name-pid-\$RANK-\$COHORT_RESTART_COUNT.tmp && mv $work/$name-pid-\$RANK-\$COHORT_RESTART_COUNT.tmp $work/$name-pid-\$RANK-\$COHORT_RESTART_COUNT; [ \$COHORT_RESTART_COUNT = 0 ] || { echo \"rank \$RANK restarted\"; exit 0; }; exec sleep 1000"
  printf '#!/bin/bash\n%q launch --max-restarts %d -- bash -c %q &\necho $! >%q\nwait $!\nrc=$?\nuntil [ -e %q ]; do sleep 0.2; done\nexit $rc\n' \
    "$cohort" "$restarts" "$program" "$work/$name.sup" "$work/$name.release" >"$work/$name.sh"
  job=$(submit -N"$nodes" --ntasks-per-node="$per_node" -o "$work/$name.out" "$work/$name.sh")
  local r
  for ((r = 0; r < nodes * per_node; r++)); do
    wait_until 60 "rank $r of $name to run" "[[ -s $work/$name-pid-$r-0 ]]" "cat $work/$name.out"
  done
}

# ended PID: whether the process is gone, or a zombie that whoever adopted it (an orphan
# goes to init) has yet to reap.
ended() { ! kill -0 "$1" 2>/dev/null || [[ $(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) == Z ]]; }

# The cut: node2's watcher is cut off from the supervisor on node1.
touch "$work/cut.release"
start cut 1 2 1
sup=$(cat cut.sup)
in_node1=(nsenter --net="/run/netns/$prefix-node1")
port=$("${in_node1[@]}" ss -Htlnp | grep "pid=$sup," | awk '{print $4}' | sed 's/.*://' | head -1)
[[ -n $port ]] || fail "no listening port of the supervisor (pid $sup) in node1: $("${in_node1[@]}" ss -tlnp)"
cut=$("${in_node1[@]}" ss -HK state established "( sport = :$port and dst $subnet.12 )")
[[ -n $cut ]] || fail "no connection from node2's watcher to port $port to cut: $("${in_node1[@]}" ss -tnp)"
rank1=$(cat cut-pid-1-0) rank0=$(cat cut-pid-0-0)
wait_until 30 "rank 1 (pid $rank1), cut off on node2, to end" "ended $rank1" "cat cut.out"
wait_until 30 "rank 0 (pid $rank0) to be torn down" "ended $rank0" "cat cut.out"
wait_until 120 "job $job to end" "job_done $job" "cat cut.out"
expect_eq "$(job_state "$job")" COMPLETED "state after the cut and a restart ($(cat cut.out))"
grep -q 'lost the watcher of rank 1 on node2: its connection ended while the rank ran' cut.out ||
  fail "the supervisor does not name the rank it lost: $(cat cut.out)"
grep -q 'rank 1 (node2) lost (its node or the network to it failed) first; gang torn down in [0-9.]* s; restarting' cut.out ||
  fail "the cut is not node2's failure: $(cat cut.out)"
expect_eq "$(grep -c 'restarted$' cut.out)" 2 "ranks that ran again after the cut"
grep -q 'succeeded: 2 ranks, 1 restart' cut.out || fail "no success after the restart: $(cat cut.out)"

# A silent partition: node2 drops every packet of its link to the supervisor, without a
# reset, so that only TCP's own probes can tell either end. Once the supervisor has given
# node2 up, the firewall goes, so that the restart can reach it.
command -v nft >/dev/null || fail "nft (nftables) is needed to drop a link's packets"
start drop 1 2 1
sup=$(cat drop.sup)
port=$("${in_node1[@]}" ss -Htlnp | grep "pid=$sup," | awk '{print $4}' | sed 's/.*://' | head -1)
[[ -n $port ]] || fail "no listening port of the supervisor (pid $sup) in node1"
in_node2=(nsenter --net="/run/netns/$prefix-node2")
at_exit "${in_node2[*]} nft delete table inet cohort_partition 2>/dev/null"
"${in_node2[@]}" nft -f - <<NFT || fail "could not set up the firewall in node2"
table inet cohort_partition {
  chain out { type filter hook output priority 0; ip daddr $subnet.11 tcp dport $port drop; }
  chain in { type filter hook input priority 0; ip saddr $subnet.11 tcp sport $port drop; }
}
NFT
rank1=$(cat drop-pid-1-0)
wait_until 60 "the supervisor to give node2's watcher up" "grep -q 'lost the watcher of rank 1 on node2' drop.out" "cat drop.out"
"${in_node2[@]}" nft delete table inet cohort_partition
wait_until 30 "rank 1 (pid $rank1), cut off on node2, to end" "ended $rank1" "cat drop.out"
touch "$work/drop.release"
wait_until 120 "job $job to end" "job_done $job" "cat drop.out"
expect_eq "$(job_state "$job")" COMPLETED "state after the silent partition and a restart ($(cat drop.out))"
grep -q 'rank 1 (node2) lost (its node or the network to it failed) first; gang torn down in [0-9.]* s; restarting' drop.out ||
  fail "the silent partition is not node2's failure: $(cat drop.out)"
expect_eq "$(grep -c 'restarted$' drop.out)" 2 "ranks that ran again after the silent partition"

# A node's ranks report through its first wrapper, the node's agent, so the supervisor
# holds a connection per node, not per rank. The agent killed outright takes its node's
# ranks with it: node2's failure, naming both its ranks; the gang restarts.
touch "$work/agent.release"
start agent 1 2 2
# A rank's pid file can come before its start has reached the supervisor through the agent.
wait_until 30 "the supervisor to see all 4 ranks over 2 connections" \
  "grep -q 'all 4 ranks running after [0-9.]* s, reporting over 2 connections' agent.out" "cat agent.out"
rank2=$(cat agent-pid-2-0) rank3=$(cat agent-pid-3-0)
agent=$(ps -o ppid= -p "$rank2" | tr -d ' ')
[[ -n $agent ]] || fail "no wrapper of rank 2 on node2"
kill -KILL "$agent"
# The agent's own rank goes with it (a parent-death signal): the mini-cluster's
# proctrack/linuxproc would lose it, orphaned.
wait_until 30 "rank 2 (pid $rank2), whose wrapper was killed, to end" "ended $rank2" "cat agent.out"
wait_until 30 "rank 3 (pid $rank3), whose node's agent was killed, to end" "ended $rank3" "cat agent.out"
wait_until 120 "job $job to end" "job_done $job" "cat agent.out"
expect_eq "$(job_state "$job")" COMPLETED "state after node2's agent was killed and a restart ($(cat agent.out))"
grep -q 'lost the watcher of ranks 2, 3 on node2: its connection ended while they ran' agent.out ||
  fail "the supervisor does not name the node's ranks it lost: $(cat agent.out)"
expect_eq "$(grep -c 'restarted$' agent.out)" 4 "ranks that ran again after node2's agent was killed"

# The supervisor killed outright: its watchers on both nodes kill their ranks.
start orphan 0 2 2
kill -KILL "$(cat orphan.sup)"
for r in 0 1 2 3; do
  pid=$(cat "orphan-pid-$r-0")
  wait_until 30 "rank $r (pid $pid) to end after its supervisor was killed" "ended $pid" "cat orphan.out"
done
touch "$work/orphan.release"
wait_until 60 "job $job to end" "job_done $job" "cat orphan.out"
