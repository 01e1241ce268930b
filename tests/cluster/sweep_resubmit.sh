# A submitted sweep whose array job was cancelled is submitted again: the trials the
# cancelled tasks left Running are reclaimed (Killed, not counted) and a new array job runs
# the rest on Slurm. While the first array still runs, a second submit is refused.
source "$(dirname "$0")/lib.sh"
require_cluster
cohort=$COHORT_BUILD_DIR/bin/cohort
cd "$work"

# A trial waits for $work/go, so that the first array is cancelled with trials running.
cat >"$work/exp.yaml" <<YAML
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: grid}
maxTrialCount: 4
parallelTrialCount: 2
parameters:
  - {name: x, parameterType: int, feasibleSpace: {min: "1", max: "4"}}
trialTemplate:
  trialParameters: [{name: x, reference: x}]
  command: [sh, -c, 'until [ -e $work/go ]; do sleep 0.1; done; echo "loss=\${trialParameters.x}"; echo "host=\$(hostname)" >&2']
YAML

# "TRIAL STATE JOB" a line, from the sweep's status.
trials() {
  "$cohort" sweep status "$work/d" --json | /usr/bin/python3 -c '
import json, sys
for t in json.load(sys.stdin)["trials"]:
    print(t["trial"], t["state"], t.get("job", ""))'
}
count() { trials | awk -v s="$1" '$2 == s' | wc -l; }
experiment_state() { "$cohort" sweep status "$work/d" --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }

out=$("$cohort" sweep submit "$work/exp.yaml" --dir "$work/d" -n1) || fail "sweep submit failed: $out"
[[ $out =~ ^experiment\ exp:\ submitted\ as\ array\ job\ ([0-9]+),\ 4\ trials,\ 2\ at\ a\ time ]] || fail "submit said: $out"
first=${BASH_REMATCH[1]}
submitted+=("$first")
wait_until 60 "two trials of the first array to run" '[[ $(count Running) -eq 2 ]]'

again=$("$cohort" sweep submit "$work/exp.yaml" --dir "$work/d" -n1 2>&1) && fail "a second submit while the first runs was accepted: $again"
[[ $again == *"already submitted as array job $first, which Slurm still runs"* ]] || fail "refusal said: $again"

scancel "$first"
wait_until 60 "the first array to leave the queue" "[[ -z \$(squeue -h -j $first 2>/dev/null) ]]"

second=$("$cohort" sweep submit "$work/exp.yaml" --dir "$work/d" -n1 --parsable 2>"$work/resubmit.err") ||
  fail "resubmitting the cancelled sweep failed: $(cat "$work/resubmit.err")"
submitted+=("$second")
[[ $second != "$first" ]] || fail "no new array job"
touch "$work/go"
wait_until 120 "the resubmitted sweep to end" '[[ $(experiment_state) != Running ]]'
expect_eq "$(experiment_state)" Succeeded "state of the resubmitted sweep"
expect_eq "$(count Succeeded)" 4 "trials succeeded"
# Every trial that ran to its end ran in the second array, on Slurm.
expect_eq "$(trials | awk '$2 == "Succeeded" && $3 !~ /^'"$second"'_/' | wc -l)" 0 "succeeded trials outside the new array"
