# sbatch --array=0-3%2 runs at most two tasks at once. Each task holds its CPU until the
# test releases it, so the throttle, not the tasks' speed, decides what runs.
source "$(dirname "$0")/lib.sh"
require_cluster

cat >"$work/task.sh" <<SCRIPT
#!/bin/bash
touch "$work/started.\$SLURM_ARRAY_TASK_ID"
until [ -e "$work/release.\$SLURM_ARRAY_TASK_ID" ]; do sleep 0.1; done
SCRIPT
job=$(submit --array=0-3%2 -n1 -o /dev/null "$work/task.sh")

running_tasks() { squeue -h -r -j "$job" -t RUNNING -o '%K' | sort -n | tr '\n' ' '; }
throttled_tasks() { squeue -h -r -j "$job" -t PENDING -o '%K %r' | grep -c JobArrayTaskLimit || true; }
started() { count_files "$work/started.*"; }

for round in 1 2; do
  wait_until 30 "two tasks to start (round $round)" '[[ $(started) -ge $((round * 2)) ]]'
  expect_eq "$(started)" $((round * 2)) "tasks started by round $round"
  expect_eq "$(running_tasks | wc -w)" 2 "tasks running in round $round ($(running_tasks))"
  expect_eq "$(throttled_tasks)" $((4 - round * 2)) "tasks held back by the array limit in round $round"
  for t in $(running_tasks); do touch "$work/release.$t"; done
done
for t in 0 1 2 3; do
  wait_until 30 "array task $t to finish" 'job_done ${job}_$t'
  expect_eq "$(job_state "${job}_$t")" COMPLETED "state of array task $t"
done
