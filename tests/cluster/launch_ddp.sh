# A PyTorch DDP run (gloo, 2 nodes x 2 ranks) under sbatch + cohort launch: kill -9 of
# one rank tears the gang down, and the relaunch resumes from the last checkpoint with the
# restart count visible. Without restarts, the job fails naming the rank.
source "$(dirname "$0")/lib.sh"
require_cluster
cohort=$COHORT_BUILD_DIR/bin/cohort
example=$COHORT_SOURCE_DIR/examples/ddp_train.py
cd "$work"

ddp_job() {  # name max-restarts
  printf '#!/bin/bash\nexec %q launch --max-restarts %d -- /usr/bin/python3 %q --steps 30 --checkpoint-every 4 --step-time 0.2 --ckpt-dir %q --pid-dir %q\n' \
    "$cohort" "$2" "$example" "$work/$1.ckpt" "$work/$1.pids" >"$work/$1.sh"
  submit -N2 --ntasks-per-node=2 -o "$work/$1.out" "$work/$1.sh"
}

kill_rank_3_after_a_checkpoint() {  # name
  # Generous: on a machine just started, the ranks' first import of PyTorch reads its
  # libraries from a cold disk.
  wait_until 300 "a first checkpoint of $1" "[[ -e $work/$1.ckpt/latest.pt && -s $work/$1.pids/rank-3.restart-0 ]]"
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
expect_eq "$(grep -c 'finished 30 steps' resume.out)" 4 "ranks that finished training"

job=$(ddp_job nore 0)
kill_rank_3_after_a_checkpoint nore
wait_until 120 "job $job to fail" "job_done $job"
expect_eq "$(job_state "$job")" FAILED "state without restarts"
grep -q 'failed: rank 3 (node2) killed by SIGKILL first' nore.out || fail "no failure line naming rank 3: $(cat nore.out)"
