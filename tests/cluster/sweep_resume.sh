# cohort sweep resume against a real Slurm: a trial whose job still runs is left to it, one
# whose job Slurm has forgotten (its runner was killed outright) is marked Killed and run
# again; the sweep then ends when the running job's trial does.
source "$(dirname "$0")/lib.sh"
require_cluster
cohort=$COHORT_BUILD_DIR/bin/cohort
cd "$work"

# Inside a job a trial waits for $work/go; run here by resume it ends at once.
cat >"$work/exp.yaml" <<YAML
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: grid}
maxTrialCount: 3
parallelTrialCount: 1
parameters:
  - {name: x, parameterType: int, feasibleSpace: {min: "1", max: "3"}}
trialTemplate:
  trialParameters: [{name: x, reference: x}]
  command: [sh, -c, 'if [ -n "\$SLURM_JOB_ID" ]; then until [ -e $work/go ]; do sleep 0.1; done; fi; echo "loss=\${trialParameters.x}"']
YAML
"$cohort" sweep init "$work/exp.yaml" --dir "$work/d" >/dev/null || fail "sweep init failed"

# "TRIAL STATE JOB" a line, from the sweep's status.
trials() {
  "$cohort" sweep status "$work/d" --json | /usr/bin/python3 -c '
import json, sys
for t in json.load(sys.stdin)["trials"]:
    print(t["trial"], t["state"], t.get("job", ""))'
}
running() { trials | awk '$2 == "Running"' | wc -l; }

# The runner records its pid (exec keeps it) so that the test can kill that process alone.
task_script() {
  printf '#!/bin/bash\necho $$ >%q\nexec %q sweep task %q\n' "$work/$1.pid" "$cohort" "$work/d" >"$work/$1.sh"
  chmod +x "$work/$1.sh"
}
task_script keeper
task_script victim
keeper=$(submit -n1 -o "$work/keeper.out" "$work/keeper.sh")
wait_until 60 "the first job to claim a trial" '[[ $(running) -eq 1 ]]'
victim=$(submit -n1 -o "$work/victim.out" "$work/victim.sh")
wait_until 60 "the second job to claim a trial" '[[ $(running) -eq 2 ]]'
# SIGKILL to the runner: it dies without a word, as on a node that crashed, and its trial
# stays Running in the journal. (scancel would end the job with SIGTERM first, which the
# runner handles by recording the trial's end.) Slurm ends the job with its batch script.
kill -KILL "$(cat "$work/victim.pid")" || fail "could not kill the second job's runner"
wait_until 60 "the killed job to end" "job_done $victim"
expect_eq "$(running)" 2 "trials still marked Running after the kill"

out=$("$cohort" sweep resume "$work/d" 2>&1) && fail "resume ended with success while a trial still runs: $out"
note "resume:"$'\n'"$out"
grep -q "1 abandoned trials marked Killed" <<<"$out" || fail "resume did not reclaim the killed job's trial: $out"
state=$(trials)
note "trials after resume:"$'\n'"$state"
expect_eq "$(awk -v j="$keeper" '$3 == j {print $2}' <<<"$state")" Running "the trial of the job that still runs"
expect_eq "$(awk -v j="$victim" '$3 == j {print $2}' <<<"$state")" Killed "the trial of the killed job"
expect_eq "$(awk '$2 == "Succeeded"' <<<"$state" | wc -l)" 2 "trials resume ran here"

touch "$work/go"
wait_until 60 "the first job to end" "job_done $keeper"
expect_eq "$(job_state "$keeper")" COMPLETED "state of the job that kept its trial"
expect_eq "$(trials | awk '$2 == "Succeeded"' | wc -l)" 3 "trials that succeeded in the end"
"$cohort" sweep status "$work/d" --json | grep -q '"state": *"Succeeded"' ||
  fail "the sweep did not succeed: $("$cohort" sweep status "$work/d")"
note "ok"
