# `cohort serve submit` autoscaling: a service of minReplicas 1, maxReplicas 3 and a target of
# 2 requests under way per replica, with short windows (Knative's annotations). A bounded load
# of 8 clients on a slow model scales it up to 3 replicas, and the new ones answer; a rolling
# update while every slot of the allocation is taken replaces each replica in place, and so
# does a canary, rolled back, then again, promoted, each leaving 3 replicas;
# once the load falls to one client it scales back to 1 after the down-window, with no
# decision going back up in between. No request fails throughout, the scale-down's drain
# included; every decision is in the job's log with its reason, and status shows the last.
source "$(dirname "$0")/lib.sh"
require_cluster

cohort=$COHORT_BUILD_DIR/bin/cohort
services=$work/services
cd "$work"

# A model slow enough (some 20 ms a request on one CPU) that 8 clients keep requests waiting.
/usr/bin/python3 "$COHORT_SOURCE_DIR/tests/cluster/serve_slow_model.py" repo || fail "could not make the model"
cp -r repo repo2
cp -r repo repo3

cat >isvc.yaml <<YAML
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: slow
  annotations:
    autoscaling.knative.dev/window: 4s
    autoscaling.knative.dev/panic-window-percentage: "50"
spec:
  predictor:
    minReplicas: 1
    maxReplicas: 3
    scaleMetric: concurrency
    scaleTarget: 2
    model:
      modelFormat: {name: pytorch}
      storageUri: file://$work/repo
      resources: {limits: {cpu: 1}}
YAML
out=$(timeout 240 "$cohort" serve submit isvc.yaml --dir "$services" --wait-timeout 180) || fail "submit failed: $out"
note "$out"
registry=$services/slow/registry.json
log=$services/slow/job.log
at_exit '[[ ${ok:-} == 1 ]] || { echo "the job log:"; tail -40 "$log"; } >&2'
job=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["job"])' "$registry")
submitted+=("$job")
url=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$registry")
expect_eq "$(/usr/bin/python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["replicas"]))' "$registry")" 1 \
  "replicas at the start"

# CLIENTS clients until DONE (a shell condition) holds, for at most 120 s; any failed request fails.
load() { /usr/bin/python3 "$COHORT_SOURCE_DIR/tests/cluster/serve_load.py" "$url" "$services/slow/token" "$1" "$2"; }
replicas_ready() {  # replicas_ready OP N: the registry's ready replicas compare so with N
  /usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["replicas"]; n=sum(x["state"]=="ready" for x in r)
sys.exit(0 if eval(f"{n} {sys.argv[2]} {sys.argv[3]}") and len(r) == n else 1)' "$registry" "$1" "$2"
}
# Up: until the two replicas the autoscaler started have answered requests.
load 8 "[[ \$(grep -c 'answered its first request' '$log') -ge 2 ]]" || fail "requests failed while scaling up"
replicas_ready '==' 3 || fail "not 3 ready replicas after scaling up: $(cat "$registry")"
# At maxReplicas no step more fits: the update takes each old replica out before its successor.
load 8 "'$cohort' serve update slow --dir '$services' --storage-uri '$work/repo2' >/dev/null" ||
  fail "requests failed in a rolling update at maxReplicas"
expect_eq "$(/usr/bin/python3 -c 'import json,sys; print(sorted((x["version"], x["state"]) for x in json.load(open(sys.argv[1]))["replicas"]))' "$registry")" \
  "[('2', 'ready'), ('2', 'ready'), ('2', 'ready')]" "replicas after the rolling update"
# A canary at maxReplicas takes an old replica's place; rolled back, it gives the place back.
load 8 "'$cohort' serve update slow --dir '$services' --storage-uri '$work/repo3' --canary 50 >/dev/null &&
        '$cohort' serve rollback slow --dir '$services' >/dev/null" || fail "requests failed in a rollback at maxReplicas"
expect_eq "$(/usr/bin/python3 -c 'import json,sys; print(sorted((x["version"], x["state"]) for x in json.load(open(sys.argv[1]))["replicas"]))' "$registry")" \
  "[('2', 'ready'), ('2', 'ready'), ('2', 'ready')]" "replicas after the canary's rollback"
load 8 "'$cohort' serve update slow --dir '$services' --storage-uri '$work/repo3' --canary 50 >/dev/null &&
        '$cohort' serve promote slow --dir '$services' >/dev/null" || fail "requests failed in a canary at maxReplicas"
expect_eq "$(/usr/bin/python3 -c 'import json,sys; print(sorted((x["version"], x["state"]) for x in json.load(open(sys.argv[1]))["replicas"]))' "$registry")" \
  "[('4', 'ready'), ('4', 'ready'), ('4', 'ready')]" "replicas after the canary's promotion (version 3 was rolled back)"
# Down: one client keeps a request under way, which wants one replica.
scaled_down="grep -E 'autoscale: (up|down) ' '$log' | tail -1 | grep -q 'down [0-9]* -> 1:'"
load 1 "$(declare -f replicas_ready); registry='$registry'; $scaled_down && replicas_ready '==' 1" ||
  fail "requests failed while scaling down"

grep 'autoscale:' "$log" | sed "s/^/$test_name: /"
/usr/bin/python3 - "$log" <<'PY' || fail "the decisions in the job's log"
import re, sys
decisions = re.findall(r"autoscale: (up|down) (\d+) -> (\d+): (.*)", open(sys.argv[1]).read())
assert decisions, "no decision logged"
kinds = [d[0] for d in decisions]
assert kinds[0] == "up" and kinds[-1] == "down", kinds
assert kinds == sorted(kinds, key=lambda k: k == "down"), f"it flapped: {kinds}"
for kind, frm, to, reason in decisions:
    assert "concurrency" in reason and "target 2.0" in reason, reason
    assert 1 <= int(to) <= 3, (frm, to)
assert int(decisions[-1][2]) == 1, decisions[-1]
assert any("4 s down-window" in d[3] for d in decisions if d[0] == "down"), decisions
PY

"$cohort" serve status slow --dir "$services" --json >status.json
/usr/bin/python3 - <<'PY' || fail "serve status after scaling: $(cat status.json)"
import json
a = json.load(open("status.json"))["autoscale"]
assert (a["min"], a["max"], a["current"], a["desired"]) == (1, 3, 1, 1), a
assert a["decision"].startswith("down ") and a["decided_at"] > 0, a
PY
[[ $("$cohort" serve status slow --dir "$services") == *"replicas: 1 ready, desired 1 (min 1, max 3); last decision"* ]] ||
  fail "serve status shows no autoscaling line"

scancel "$job"
wait_until 120 "job $job to end" 'job_done $job'
ok=1
