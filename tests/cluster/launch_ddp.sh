# A PyTorch DDP run (gloo, 2 nodes x 2 ranks) under sbatch + cohort launch: kill -9 of
# one rank tears the gang down, and the relaunch resumes from the last cohort checkpoint
# (saved asynchronously, the ranks agreeing without MPI) with the restart count visible, and
# ends with the very weights of an uninterrupted run. Without restarts, the job fails naming
# the rank.
source "$(dirname "$0")/lib.sh"
require_cluster
cohort=$COHORT_BUILD_DIR/bin/cohort
example=$COHORT_SOURCE_DIR/examples/ddp_train.py
cd "$work"

ddp_job() {  # name max-restarts [step-time]
  printf '#!/bin/bash\nexport PYTHONPATH=%q\nexec %q launch --max-restarts %d -- /usr/bin/python3 %q --steps 30 --checkpoint-every 4 --step-time %s --ckpt-dir %q --pid-dir %q\n' \
    "$COHORT_BUILD_DIR/python" "$cohort" "$2" "$example" "${3:-0.2}" "$work/$1.ckpt" "$work/$1.pids" >"$work/$1.sh"
  submit -N2 --ntasks-per-node=2 -o "$work/$1.out" "$work/$1.sh"
}

kill_rank_3_after_a_checkpoint() {  # name
  # Generous: on a machine just started, the ranks' first import of PyTorch reads its
  # libraries from a cold disk.
  wait_until 300 "a first checkpoint of $1" "[[ -e $work/$1.ckpt/latest && -s $work/$1.pids/rank-3.restart-0 ]]"
  kill -KILL "$(cat "$work/$1.pids/rank-3.restart-0")" || fail "could not kill rank 3"
}

job=$(ddp_job resume 1)
kill_rank_3_after_a_checkpoint resume
wait_until 180 "job $job to finish" "job_done $job"
expect_eq "$(job_state "$job")" COMPLETED "state after a kill and a restart"
grep -q 'rank 3 (node2) killed by SIGKILL first; gang torn down in' resume.out || fail "no teardown line: $(cat resume.out)"
resumed=$(grep -o 'rank [0-9]: resumed from step [0-9]* (restart 1)' resume.out | wc -l)
expect_eq "$resumed" 4 "ranks that resumed from the checkpoint with restart count 1"
step=$(grep -o 'resumed from step [0-9]*' resume.out | head -1 | grep -o '[0-9]*$')
((step >= 4)) || fail "resumed from step $step, before the first checkpoint"
# Every 4th step is saved asynchronously; only the last (30) waits for its save.
expect_eq "$((step % 4))" 0 "resumed step $step modulo the asynchronous saves' interval"
expect_eq "$(grep -c 'finished 30 steps' resume.out)" 4 "ranks that finished training"

# The same seed uninterrupted: the resumed run must end with the same weights, bit for bit.
job=$(ddp_job straight 0 0)
wait_until 300 "job $job to finish" "job_done $job"
expect_eq "$(job_state "$job")" COMPLETED "state of the uninterrupted run ($(tail -5 straight.out))"
weights() { grep -o 'rank [0-9]: weights [0-9a-f]*' "$1" | sort; }
expect_eq "$(weights straight.out | wc -l)" 4 "ranks of the uninterrupted run that printed their weights"
expect_eq "$(weights straight.out | awk '{print $4}' | sort -u | wc -l)" 1 "distinct weights across the uninterrupted run's ranks"
expect_eq "$(weights resume.out)" "$(weights straight.out)" "weights after a kill and a resume from step $step, against an uninterrupted run"

job=$(ddp_job nore 0)
kill_rank_3_after_a_checkpoint nore
wait_until 120 "job $job to fail" "job_done $job"
expect_eq "$(job_state "$job")" FAILED "state without restarts"
grep -q 'failed: rank 3 (node2) killed by SIGKILL first' nore.out || fail "no failure line naming rank 3: $(cat nore.out)"
