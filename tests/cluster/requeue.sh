# scontrol requeue re-runs a job, which then sees SLURM_RESTART_COUNT=1.
source "$(dirname "$0")/lib.sh"
require_cluster

cat >"$work/job.sh" <<SCRIPT
#!/bin/bash
echo "\${SLURM_RESTART_COUNT:-0}" >>"$work/runs"
# The first run holds on until the test requeues it; the rerun finishes at once.
if [ "\${SLURM_RESTART_COUNT:-0}" = 0 ]; then
  until [ -e "$work/never" ]; do sleep 0.1; done
fi
SCRIPT
job=$(submit -n1 --requeue -o /dev/null "$work/job.sh")
wait_until 30 "the first run to start" 'test -s $work/runs'
scontrol requeue "$job" || fail "scontrol requeue $job failed"
wait_until 90 "the requeued run to finish" '[[ $(wc -l <$work/runs) -ge 2 ]]'
wait_until 30 "job $job to complete" 'job_done $job'
expect_eq "$(job_state "$job")" COMPLETED "state after the rerun"
expect_eq "$(tr '\n' ' ' <"$work/runs")" "0 1 " "SLURM_RESTART_COUNT of each run"
expect_eq "$(job_field "$job" Restarts)" 1 "restarts scontrol counts"
