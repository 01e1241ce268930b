# A sweep as one array job on the mini-cluster. `cohort sweep submit` with parallelism 2
# ends maxTrialCount trials, none lost and none run twice; and eight array tasks that start
# at the same moment claim distinct trials, the two beyond maxTrialCount finding nothing.
source "$(dirname "$0")/lib.sh"
require_cluster
cohort=$COHORT_BUILD_DIR/bin/cohort

spec() {  # points maxTrialCount parallelTrialCount [goal]
  cat <<YAML
objective: {type: minimize, objectiveMetricName: loss${4:+, goal: $4}}
algorithm: {algorithmName: grid}
maxTrialCount: $2
parallelTrialCount: $3
parameters:
  - {name: x, parameterType: int, feasibleSpace: {min: "1", max: "$1"}}
trialTemplate:
  trialParameters: [{name: x, reference: x}]
  command: [sh, -c, 'echo "epoch=1 loss=\${trialParameters.x}"; echo "host=\$(hostname)"']
YAML
}

# Prints "TRIALS STATES XS" from the sweep's status: how many trials, their distinct states,
# the distinct values of x.
summary() {
  "$cohort" sweep status "$1" --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
t = s["trials"]
print(s["state"], len(t), ",".join(sorted({x["state"] for x in t})),
      len({x["parameters"]["x"] for x in t}), len({x["trial"] for x in t}))'
}
experiment_state() { "$cohort" sweep status "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }

# 1. submit: one array job, two tasks at a time.
spec 8 8 2 >"$work/a.yaml"
job=$("$cohort" sweep submit "$work/a.yaml" --dir "$work/a" -n1 --parsable) || fail "sweep submit failed"
submitted+=("$job")
grep -q -- '--array=0-7%2' "$work/a/sweep.sbatch" || fail "the array is not 0-7%2: $(grep array "$work/a/sweep.sbatch")"
wait_until 150 "the submitted sweep to end" '[[ $(experiment_state "$work/a") != Running ]]'
for t in $(seq 0 7); do wait_until 30 "array task $t to finish" "job_done ${job}_$t"; done
expect_eq "$(summary "$work/a")" "Succeeded 8 Succeeded 8 8" "state, trials, trial states, distinct x, distinct ids"

# 2. eight tasks released at one moment for six trials. Each waits until all eight run,
# so the cluster must have eight CPUs free.
idle_cpus() { sinfo -h -o %C | cut -d/ -f2; }
wait_until 30 "eight idle CPUs (the cluster has $(sinfo -h -o %C) allocated/idle/other/total)" '[[ $(idle_cpus) -ge 8 ]]'
spec 6 6 6 >"$work/b.yaml"
"$cohort" sweep init "$work/b.yaml" --dir "$work/b" >/dev/null || fail "sweep init failed"
cat >"$work/task.sh" <<SCRIPT
#!/bin/bash
touch "$work/ready.\$SLURM_ARRAY_TASK_ID"
until [ \$(ls "$work" | grep -c '^ready\.') -ge 8 ]; do sleep 0.05; done
exec "$cohort" sweep task "$work/b"
SCRIPT
chmod +x "$work/task.sh"
job=$(submit --array=0-7 -n1 -o "$work/b/slurm/%a.out" "$work/task.sh")
for t in $(seq 0 7); do wait_until 150 "array task $t to finish" "job_done ${job}_$t"; done
expect_eq "$(summary "$work/b")" "Succeeded 6 Succeeded 6 6" "state, trials, trial states, distinct x, distinct ids"
idle=$(cat "$work"/b/slurm/*.out | grep -c 'nothing left to run' || true)
expect_eq "$idle" 2 "array tasks that found nothing to claim"
# 3. The first trial reaches the goal: the sweep ends, and the array's pending tasks are
# cancelled rather than started to find nothing (one task at a time, so five are pending).
spec 6 6 1 100 >"$work/c.yaml"
job=$("$cohort" sweep submit "$work/c.yaml" --dir "$work/c" -n1 --parsable) || fail "sweep submit of the goal sweep failed"
submitted+=("$job")
grep -q -- '--array=0-5%1' "$work/c/sweep.sbatch" || fail "the array is not 0-5%1: $(grep array "$work/c/sweep.sbatch")"
wait_until 120 "the goal sweep to end" '[[ $(experiment_state "$work/c") != Running ]]'
wait_until 60 "the array to leave the queue" "[[ -z \$(squeue -h -j $job) ]]"
expect_eq "$(summary "$work/c")" "Succeeded 1 Succeeded 1 1" "state, trials, trial states, distinct x, distinct ids"
# Slurm keeps the pending tasks as one record: cancelled, and none of them left output.
records=$(scontrol show job "$job" -o)
expect_eq "$(grep -c 'JobState=COMPLETED' <<<"$records")" 1 "array tasks that ran"
expect_eq "$(grep -c 'JobState=CANCELLED' <<<"$records")" 1 "records of pending tasks, cancelled"
expect_eq "$(ls "$work/c/slurm")" "${job}_0.out" "array tasks that left output"
note "ok"
