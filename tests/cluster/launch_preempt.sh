# The batch script's warning signal: cohort launch asks the ranks to checkpoint through
# the flag file, requeues the job, and the rerun sees SLURM_RESTART_COUNT=1.
# (scancel --batch delivers the signal exactly as sbatch --signal=B:USR1@T does.)
source "$(dirname "$0")/lib.sh"
require_cluster
cohort=$COHORT_BUILD_DIR/bin/cohort
cd "$work"

cat >"$work/rank.sh" <<SCRIPT
#!/bin/bash
echo "restart=\$COHORT_RESTART_COUNT slurm=\${SLURM_RESTART_COUNT:-0}" >>"$work/runs-\$RANK"
if [ "\${SLURM_RESTART_COUNT:-0}" = 0 ]; then
  until [ -e "\$COHORT_CHECKPOINT_REQUEST" ]; do sleep 0.1; done
  echo checkpointed >"$work/checkpoint-\$RANK"
fi
SCRIPT
chmod +x "$work/rank.sh"
printf '#!/bin/bash\nexec %q launch --grace 30 -- %q\n' "$cohort" "$work/rank.sh" >"$work/job.sh"
job=$(submit -N2 --ntasks-per-node=1 --requeue --open-mode=append -o "$work/job.out" "$work/job.sh")
wait_until 60 "both ranks to start" '[[ -s $work/runs-0 && -s $work/runs-1 ]]'
scancel --batch --signal=USR1 "$job" || fail "scancel --batch --signal=USR1 $job failed"
wait_until 120 "the requeued job to complete" "job_done $job"
expect_eq "$(job_state "$job")" COMPLETED "state after the requeue"
expect_eq "$(job_field "$job" Restarts)" 1 "requeues"
for rank in 0 1; do
  [[ -e $work/checkpoint-$rank ]] || fail "rank $rank never saw the checkpoint request"
  expect_eq "$(tr '\n' ' ' <"$work/runs-$rank")" "restart=0 slurm=0 restart=1 slurm=1 " "runs of rank $rank"
done
grep -q "preempted: requeueing job $job (requeue 1 of 3)" job.out || fail "no requeue line: $(cat job.out)"
grep -q "succeeded: 2 ranks" job.out || fail "the rerun did not succeed: $(cat job.out)"

# --max-requeues 0: the same warning now fails the job instead of requeueing it.
printf '#!/bin/bash\nexec %q launch --grace 30 --max-requeues 0 -- %q\n' "$cohort" "$work/rank.sh" >"$work/job0.sh"
rm -f "$work"/runs-* "$work"/checkpoint-*
job=$(submit -N2 --ntasks-per-node=1 --requeue -o "$work/job0.out" "$work/job0.sh")
wait_until 60 "both ranks to start" '[[ -s $work/runs-0 && -s $work/runs-1 ]]'
scancel --batch --signal=USR1 "$job" || fail "scancel --batch --signal=USR1 $job failed"
wait_until 120 "the job to end" "job_done $job"
expect_eq "$(job_state "$job")" FAILED "state after a warning with no requeue left ($(cat job0.out))"
expect_eq "$(job_field "$job" Restarts)" 0 "requeues with --max-requeues 0"
grep -q "failed: preempted again after 0 requeues; not requeueing (raise --max-requeues)" job0.out ||
  fail "no refusal line: $(cat job0.out)"
for rank in 0 1; do
  [[ -e $work/checkpoint-$rank ]] || fail "rank $rank was not asked to checkpoint before the job failed"
done
