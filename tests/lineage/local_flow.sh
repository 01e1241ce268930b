# A sweep whose trials are `cohort launch` jobs saving checkpoints lands in the lineage
# store whole: each checkpoint is the output of its launch and of its trial, whose
# parameters and objective answer "which parameters produced this checkpoint". Then:
# COHORT_LINEAGE=off records nothing, and a store that cannot be written costs the job one
# warning line and nothing else.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unset SLURM_JOB_ID SLURM_ARRAY_JOB_ID COHORT_LINEAGE_EXECUTION COHORT_SWEEP_DIR COHORT_TRIAL_ID
export COHORT_LINEAGE=$work/lineage.db
fail() { echo "local_flow: $*" >&2; exit 1; }

cat >"$work/train.py" <<'PY'
import os, sys
import numpy
import cohort.checkpoint as ckpt
x = int(sys.argv[1])
ckpt.save({"w": numpy.full(4, float(x))}, os.path.join(os.environ["COHORT_TRIAL_DIR"], "ckpt"), 10)
print(f"loss={x * x}")
PY
cat >"$work/exp.yaml" <<YAML
parameters:
  - {name: x, parameterType: int, feasibleSpace: {min: "1", max: "3"}}
trialTemplate:
  command: [$COHORT_BIN, launch, --local, --nproc, "1", --, /usr/bin/python3, $work/train.py, '\${trialParameters.x}']
  trialParameters: [{name: x, reference: x}]
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: grid}
parallelTrialCount: 2
YAML
"$COHORT_BIN" sweep run "$work/exp.yaml" --dir "$work/sweep" >"$work/sweep.log" 2>&1 || fail "the sweep failed: $(cat "$work/sweep.log")"
grep -q "lineage" "$work/sweep.log" && fail "recording warned: $(cat "$work/sweep.log")"

for trial in 0 1 2; do
  "$COHORT_BIN" lineage show "$work/sweep/trials/$trial/ckpt/step-00000010" --json >"$work/show.json"
  /usr/bin/python3 - "$work/show.json" "$work/sweep" "$trial" <<'PY' || fail "trial $trial's checkpoint has the wrong history: $(cat "$work/show.json")"
import json, sys
show, sweep, trial = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3])
x = trial + 1
assert show["artifact"]["type"] == "Checkpoint" and show["artifact"]["properties"]["step"] == 10
assert show["artifact"]["digest"].startswith("crc32c:")
made = {p["execution"]["type"]: p for p in show["produced_by"]}
t = made["Trial"]["execution"]
assert t["name"] == f"{sweep}#{trial}", t
assert t["state"] == "COMPLETE" and t["properties"]["param.x"] == str(x), t
assert t["properties"]["objective"] == x * x and t["properties"]["trial_state"] == "Succeeded", t
launch = made["Launch"]["execution"]
assert launch["state"] == "COMPLETE" and launch["properties"]["outcome"] == "succeeded", launch
assert launch["properties"]["restarts"] == 0 and launch["properties"]["trial"] == t["name"], launch
assert launch["properties"]["command"].endswith(f"train.py {x}"), launch
assert [c["name"] for c in made["Trial"]["contexts"]] == [sweep]
PY
done
"$COHORT_BIN" lineage list --type Trial --json | /usr/bin/python3 -c '
import json, sys
assert len(json.load(sys.stdin)["executions"]) == 3' || fail "the store does not hold exactly 3 trials"

count() { "$COHORT_BIN" lineage list --type Launch --json | /usr/bin/python3 -c 'import json, sys; print(len(json.load(sys.stdin)["executions"]))'; }
before=$(count)
COHORT_LINEAGE=off "$COHORT_BIN" launch --local -- true 2>"$work/off.err" || fail "a launch with lineage off failed"
grep -q lineage "$work/off.err" && fail "lineage off still spoke: $(cat "$work/off.err")"
[[ $(count) == "$before" ]] || fail "COHORT_LINEAGE=off recorded a launch"

# /sys refuses new files even to root.
COHORT_LINEAGE=/sys/cohort-lineage.db "$COHORT_BIN" launch --local -- sh -c 'exit 0' 2>"$work/ro.err" ||
  fail "an unwritable store failed the job: $(cat "$work/ro.err")"
[[ $(grep -c '^cohort: lineage:' "$work/ro.err") == 1 ]] || fail "expected one warning line: $(cat "$work/ro.err")"
grep -q 'cohort-lineage.db' "$work/ro.err" || fail "the warning does not name the store: $(cat "$work/ro.err")"
# The spool, as on a parallel file system: records wait as files and the next reader merges
# them, in order (the launch ends COMPLETE, not RUNNING), and a file that is no record is
# set aside with a warning, never lost or fatal.
before=$(count)
COHORT_LINEAGE_SPOOL=1 "$COHORT_BIN" launch --local -- true 2>/dev/null || fail "a spooled launch failed"
spooled=$(ls "$COHORT_LINEAGE.spool" | wc -l)
[[ $spooled == 2 ]] || fail "expected the launch's start and end in the spool, found $spooled files"
echo 'not json' >"$COHORT_LINEAGE.spool/00000000000000000000-junk.json"
"$COHORT_BIN" lineage list --type Launch --json 2>"$work/merge.err" >"$work/launches.json"
[[ $(/usr/bin/python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["executions"]))' "$work/launches.json") == $((before + 1)) ]] ||
  fail "the spooled launch was not merged: $(cat "$work/launches.json")"
/usr/bin/python3 -c 'import json, sys; assert json.load(open(sys.argv[1]))["executions"][-1]["state"] == "COMPLETE"' "$work/launches.json" ||
  fail "the merged launch did not end COMPLETE"
grep -q 'hold no record' "$work/merge.err" || fail "the damaged spool file went unmentioned: $(cat "$work/merge.err")"
[[ -e "$COHORT_LINEAGE.spool/00000000000000000000-junk.json.damaged" ]] || fail "the damaged spool file was not kept aside"
[[ $(ls "$COHORT_LINEAGE.spool" | grep -c '\.json$') == 0 ]] || fail "merged records were left in the spool"
echo "local_flow: ok"
