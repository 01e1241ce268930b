# Lineage on Slurm: a `cohort launch` job whose first attempt fails and whose restart saves
# a checkpoint, and a sweep submitted as an array job whose trials save checkpoints, land
# in one lineage store written from the cluster's nodes: each checkpoint names the launch
# (its job id, one restart, its outcome) or the trial (its parameters, objective, array
# task) that made it, in the job's or the experiment's context.
source "$(dirname "$0")/lib.sh"
require_cluster
cohort=$COHORT_BUILD_DIR/bin/cohort
cd "$work"
export COHORT_LINEAGE=$work/lineage.db PYTHONPATH=$COHORT_BUILD_DIR/python PYTHONDONTWRITEBYTECODE=1
unset COHORT_LINEAGE_EXECUTION COHORT_LINEAGE_SPOOL

cat >"$work/train.py" <<'PY'
import os, sys
import numpy
import cohort.checkpoint as ckpt
x = int(sys.argv[1])
if os.environ.get("COHORT_RESTART_COUNT") == "0" and os.environ.get("FAIL_FIRST"):
    sys.exit(3)
where = os.environ.get("COHORT_TRIAL_DIR", os.getcwd())
ckpt.save({"w": numpy.full(4, float(x))}, os.path.join(where, "ckpt"), 5)
print(f"loss={x * x}")
PY

# 1. A launch that fails once and then saves step 5.
printf '#!/bin/bash\nFAIL_FIRST=1 exec %q launch --max-restarts 1 -- /usr/bin/python3 %q 7\n' "$cohort" "$work/train.py" >launch.sh
job=$(submit -N1 -n1 -o "$work/launch.out" "$work/launch.sh")
wait_until 120 "the launch job $job to end" "job_done $job"
expect_eq "$(job_state "$job")" COMPLETED "state of the launch job"
"$cohort" lineage show "$work/ckpt/step-00000005" --json >show.json || fail "lineage show of the launch's checkpoint failed"
python3 - "$job" show.json <<'PY' || fail "the launch's checkpoint has the wrong history: $(cat show.json)"
import json, sys
job, show = sys.argv[1], json.load(open(sys.argv[2]))
(made,) = show["produced_by"]
e = made["execution"]
assert e["type"] == "Launch" and e["name"].startswith(f"job-{job}/"), e
assert e["state"] == "COMPLETE" and e["properties"]["job_id"] == job, e
assert e["properties"]["restarts"] == 1 and e["properties"]["outcome"] == "succeeded", e
assert [c["name"] for c in made["contexts"]] == [f"job-{job}"], made["contexts"]
PY

# 2. A sweep of two trials as an array job, one task at a time.
cat >"$work/exp.yaml" <<YAML
parameters:
  - {name: x, parameterType: int, feasibleSpace: {min: "1", max: "2"}}
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: grid}
parallelTrialCount: 1
trialTemplate:
  trialParameters: [{name: x, reference: x}]
  command: [/usr/bin/python3, $work/train.py, '\${trialParameters.x}']
YAML
array=$("$cohort" sweep submit "$work/exp.yaml" --dir "$work/sweep" --parsable -n1) || fail "sweep submit failed"
submitted+=("$array")
for t in 0 1; do wait_until 150 "array task $t to finish" "job_done ${array}_$t"; done
for t in 0 1; do
  "$cohort" lineage show "$work/sweep/trials/$t/ckpt/step-00000005" --json >trial.json ||
    fail "lineage show of trial $t's checkpoint failed"
  python3 - "$work/sweep" "$t" "$array" trial.json <<'PY' || fail "trial $t's checkpoint has the wrong history: $(cat trial.json)"
import json, sys
sweep, t, array, show = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.load(open(sys.argv[4]))
(made,) = show["produced_by"]
e = made["execution"]
assert e["type"] == "Trial" and e["name"] == f"{sweep}#{t}" and e["state"] == "COMPLETE", e
x = int(e["properties"]["param.x"])
assert e["properties"]["objective"] == x * x and e["properties"]["job_id"].startswith(f"{array}_"), e
assert sorted(c["type"] for c in made["contexts"]) == ["Experiment", "Job"], made["contexts"]
PY
done
"$cohort" lineage list --type Trial --json | python3 -c '
import json, sys
assert sorted(e["properties"]["param.x"] for e in json.load(sys.stdin)["executions"]) == ["1", "2"]' ||
  fail "the store does not hold the two trials"
note "ok"
