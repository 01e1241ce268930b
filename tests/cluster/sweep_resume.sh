# cohort sweep resume against a real Slurm: a trial whose job still runs is left to it, one
# whose job Slurm has forgotten (its runner was killed outright) is marked Killed and run
# again; the sweep then ends when the running job's trial does. Then a sweep whose array
# job was cancelled is submitted again.
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

# "TRIAL STATE JOB" a line, from the status of the sweep in $1 (default: the first).
trials() {
  "$cohort" sweep status "${1:-$work/d}" --json | /usr/bin/python3 -c '
import json, sys
for t in json.load(sys.stdin)["trials"]:
    print(t["trial"], t["state"], t.get("job", ""))'
}
running() { trials "$@" | awk '$2 == "Running"' | wc -l; }

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

# A submitted sweep whose array job was cancelled is submitted again: the trials the
# cancelled tasks left Running are reclaimed (Killed, not counted) and a new array job runs
# the rest on Slurm. While the first array still runs, a second submit is refused.
sed -e "s#$work/go#$work/go-again#" -e 's/parallelTrialCount: 1/parallelTrialCount: 2/' "$work/exp.yaml" >"$work/again.yaml"
again=$work/again
out=$("$cohort" sweep submit "$work/again.yaml" --dir "$again" -n1) || fail "sweep submit failed: $out"
[[ $out =~ ^experiment\ again:\ submitted\ as\ array\ job\ ([0-9]+),\ 3\ trials,\ 2\ at\ a\ time ]] || fail "submit said: $out"
first=${BASH_REMATCH[1]}
submitted+=("$first")
wait_until 60 "two trials of the first array to run" '[[ $(running "$again") -eq 2 ]]'
refused=$("$cohort" sweep submit "$work/again.yaml" --dir "$again" -n1 2>&1) && fail "a second submit while the first runs was accepted: $refused"
[[ $refused == *"already submitted as array job $first, which Slurm still runs"* ]] || fail "refusal said: $refused"
scancel "$first"
wait_until 60 "the first array to leave the queue" "[[ -z \$(squeue -h -j $first 2>/dev/null) ]]"
# Its experiment is still Running, and its status says that nothing runs it any more.
status=$("$cohort" sweep status "$again") || fail "sweep status failed: $status"
note "trials after the cancel:"$'\n'"$(trials "$again")"
# (Its runners, sent SIGTERM, usually record their trials Killed, which then count as not run.)
[[ $status =~ array\ job\ $first\ has\ ended\ with\ ([0-9]+)\ trial\(s\)\ not\ run\ and\ ([0-9]+)\ left\ Running ]] ||
  fail "the status of the cancelled sweep does not say its array job ended: $status"
expect_eq "$((BASH_REMATCH[1] + BASH_REMATCH[2]))" 3 "trials the status names as not run or left Running"
"$cohort" sweep status "$again" --json | grep -q '"arrayJobAlive": *false' ||
  fail "the JSON status of the cancelled sweep does not say its array job ended"
second=$("$cohort" sweep submit "$work/again.yaml" --dir "$again" -n1 --parsable 2>"$work/resubmit.err") ||
  fail "resubmitting the cancelled sweep failed: $(cat "$work/resubmit.err")"
submitted+=("$second")
note "resubmit: $(cat "$work/resubmit.err")"
touch "$work/go-again"
wait_until 120 "the resubmitted sweep to end" '[[ $("$cohort" sweep status "$again" --json | grep -c "\"state\": *\"Running\"") -eq 0 ]]'
state=$(trials "$again")
note "trials after the resubmit:"$'\n'"$state"
expect_eq "$(awk '$2 == "Succeeded"' <<<"$state" | wc -l)" 3 "trials that succeeded after the resubmit"
expect_eq "$(awk -v j="${second}_" '$2 == "Succeeded" && index($3, j) != 1' <<<"$state" | wc -l)" 0 \
  "succeeded trials outside the new array"
"$cohort" sweep status "$again" --json | grep -q '"state": *"Succeeded"' ||
  fail "the resubmitted sweep did not succeed: $("$cohort" sweep status "$again")"
note "ok"
