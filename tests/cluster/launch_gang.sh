# cohort launch inside sbatch: every rank gets the contract; a failed or hung rank tears
# the gang down on every node, and the gang restarts per policy or fails naming the rank.
# A rank stopped by a signal is hung without any --heartbeat-timeout; a job that Slurm
# suspends and resumes is not.
source "$(dirname "$0")/lib.sh"
require_cluster
cohort=$COHORT_BUILD_DIR/bin/cohort
cd "$work"

run_job() {  # name sbatch-args... -- launch-args... ; waits for the job, echoes its id
  local name=$1 sbatch_args=() launch_args=()
  shift
  while [[ $1 != -- ]]; do sbatch_args+=("$1"); shift; done
  shift
  launch_args=("$@")
  printf '#!/bin/bash\nexec %q launch' "$cohort" >"$work/$name.sh"
  printf ' %q' "${launch_args[@]}" >>"$work/$name.sh"
  local job
  job=$(submit "${sbatch_args[@]}" -o "$work/$name.out" "$work/$name.sh")
  wait_until 120 "job $name ($job) to end" "job_done $job"
  echo "$job"
}

# The contract, on two nodes with two ranks each.
job=$(run_job contract -N2 --ntasks-per-node=2 -- -- bash -c \
  'echo "contract $RANK $WORLD_SIZE $LOCAL_RANK $LOCAL_WORLD_SIZE $GROUP_RANK $MASTER_ADDR $MASTER_PORT $(hostname)"')
expect_eq "$(job_state "$job")" COMPLETED "state of the contract job"
lines=$(grep ' contract ' contract.out | sed 's/^ *[0-9]*: contract //' | sort -n)
expect_eq "$(wc -l <<<"$lines")" 4 "ranks that reported"
expect_eq "$(cut -d' ' -f1 <<<"$lines" | tr '\n' ' ')" "0 1 2 3 " "RANK values"
expect_eq "$(cut -d' ' -f2,4 <<<"$lines" | sort -u)" "4 2" "WORLD_SIZE and LOCAL_WORLD_SIZE"
expect_eq "$(cut -d' ' -f6,7 <<<"$lines" | sort -u | wc -l)" 1 "rendezvous addresses in use"
expect_eq "$(cut -d' ' -f6 <<<"$lines" | sort -u)" node1 "MASTER_ADDR"
while read -r rank _ local _ group _ _ host; do
  expect_eq "$host" "node$((group + 1))" "node of rank $rank (GROUP_RANK $group)"
  expect_eq "$local" "$((rank % 2))" "LOCAL_RANK of rank $rank"
done <<<"$lines"

# Rank 3 fails while the others would run forever: the gang is torn down and restarted.
fail_then_pass='if [ "$COHORT_RESTART_COUNT" = 0 ]; then [ "$RANK" = 3 ] && exit 7; exec sleep 1000; fi; echo "rank $RANK restart $COHORT_RESTART_COUNT"'
job=$(run_job restart -N2 --ntasks-per-node=2 -- --max-restarts 1 -- bash -c "$fail_then_pass")
expect_eq "$(job_state "$job")" COMPLETED "state after one restart"
grep -q 'rank 3 (node2) exited with 7 first; gang torn down in [0-9.]* s; restarting' restart.out ||
  fail "no teardown line naming rank 3: $(cat restart.out)"
expect_eq "$(grep -c 'restart 1$' restart.out)" 4 "ranks that ran again with COHORT_RESTART_COUNT=1"
grep -q 'succeeded: 4 ranks, 1 restart' restart.out || fail "no success summary: $(cat restart.out)"

# No restarts allowed: the job fails, naming the rank that failed first.
job=$(run_job norestart -N2 --ntasks-per-node=2 -- -- bash -c "$fail_then_pass")
expect_eq "$(job_state "$job")" FAILED "state without restarts"
grep -q 'failed: rank 3 (node2) exited with 7 first' norestart.out || fail "no failure summary: $(cat norestart.out)"

# A rank that stops beating is dumped and the gang restarts.
hang='hb=$COHORT_HEARTBEAT_FILE; if [ "$COHORT_RESTART_COUNT" = 0 ]; then [ "$RANK" = 2 ] && exec sleep 1000; while :; do touch "$hb"; sleep 0.2; done; fi; echo "rank $RANK recovered"'
# Its own run directory, kept after the job: the stack is written there.
job=$(run_job hang -N2 --ntasks-per-node=2 -- --run-dir "$work/hang-run" --heartbeat-timeout 2 --max-restarts 1 -- bash -c "$hang")
expect_eq "$(job_state "$job")" COMPLETED "state after a hang"
grep -q '2: cohort: launch: rank 2 on node2: no heartbeat for 2 s' hang.out || fail "hang not reported: $(cat hang.out)"
grep -q "2: #0 " hang.out || grep -q '2: --- /proc/' hang.out || fail "no stack dump in the log: $(cat hang.out)"
grep -q 'rank 2 (node2) hung (no heartbeat) first' hang.out || fail "hang not named as the failure: $(cat hang.out)"
# The stack is kept in the run directory too, and the failure line says where.
stack=$(sed -n 's/.*hung (no heartbeat) first; its stack in \([^;]*\);.*/\1/p' hang.out | head -1)
[[ $stack == "$work/hang-run/attempt-0/rank-2.stack" ]] || fail "the failure line names no stack file: $(cat hang.out)"
grep -q 'stack of pid' "$stack" || fail "the stack file $stack holds no stack: $(cat "$stack" 2>&1)"
expect_eq "$(grep -c 'recovered$' hang.out)" 4 "ranks that ran again after the hang"

# A rank that stops itself is hung, though no --heartbeat-timeout was given.
stop='if [ "$COHORT_RESTART_COUNT" = 0 ]; then [ "$RANK" = 1 ] && kill -STOP $$; exec sleep 1000; fi; echo "rank $RANK restarted"'
job=$(run_job stopped -N2 --ntasks-per-node=1 -- --max-restarts 1 -- bash -c "$stop")
expect_eq "$(job_state "$job")" COMPLETED "state after a stopped rank"
grep -q '1: cohort: launch: rank 1 on node2: pid [0-9]* (bash) stopped (state T) for [0-9]* s; treating it as hung' stopped.out ||
  fail "stopped rank not reported: $(cat stopped.out)"
grep -q 'rank 1 (node2) hung (stopped) first' stopped.out || fail "stop not named as the failure: $(cat stopped.out)"
expect_eq "$(grep -c 'restarted$' stopped.out)" 2 "ranks that ran again after the stop"

# Slurm suspends the job for longer than a rank may stay stopped and than its heartbeat
# timeout; once resumed, it runs on to success.
printf '#!/bin/bash\nexec %q launch --heartbeat-timeout 5 -- bash -c %q\n' "$cohort" \
  "until [ -e $work/resumed ]; do touch \"\$COHORT_HEARTBEAT_FILE\"; sleep 0.2; done; echo \"rank \$RANK resumed\"" \
  >"$work/suspend.sh"
job=$(submit -N2 --ntasks-per-node=1 -o "$work/suspend.out" "$work/suspend.sh")
wait_until 60 "the ranks of job $job to run" "grep -qs 'all 2 ranks running' suspend.out"
scontrol suspend "$job"
sleep 15
scontrol resume "$job"
touch "$work/resumed"
wait_until 60 "job $job to end" "job_done $job"
expect_eq "$(job_state "$job")" COMPLETED "state after a suspend ($(cat suspend.out))"
! grep -q hung suspend.out || fail "a suspended job was taken for hung: $(cat suspend.out)"
expect_eq "$(grep -c 'resumed$' suspend.out)" 2 "ranks that ran on after the resume"
