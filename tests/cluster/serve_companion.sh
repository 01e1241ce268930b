# A service whose own job holds minReplicas (`slurm: {allocate: minReplicas}`) grows by
# companion jobs: under a load of 8 clients the autoscaler's second replica runs in a job of
# its own (named after the replica, listed in the registry), answers, and is cancelled with
# its companion job when the load falls and the service scales back to one. Scaled up again,
# cancelling the service's job drains it and cancels the companion too. No request fails.
source "$(dirname "$0")/lib.sh"
require_cluster

cohort=$COHORT_BUILD_DIR/bin/cohort
services=$work/services
cd "$work"

/usr/bin/python3 "$COHORT_SOURCE_DIR/tests/cluster/serve_slow_model.py" repo || fail "could not make the model"
cat >isvc.yaml <<YAML
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: comp
  annotations: {autoscaling.knative.dev/window: 4s, autoscaling.knative.dev/panic-window-percentage: "50"}
spec:
  predictor:
    {minReplicas: 1, maxReplicas: 2, scaleMetric: concurrency, scaleTarget: 2,
     model: {modelFormat: {name: pytorch}, storageUri: "file://$work/repo", resources: {limits: {cpu: 1}}}}
slurm: {allocate: minReplicas}
YAML
out=$(timeout 240 "$cohort" serve submit isvc.yaml --dir "$services" --wait-timeout 180) || fail "submit failed: $out"
note "$out"
registry=$services/comp/registry.json
log=$services/comp/job.log
at_exit '[[ ${ok:-} == 1 ]] || { echo "the job log:"; tail -40 "$log"; } >&2'
at_exit 'scancel --name=comp.replica-1,comp.replica-2 2>/dev/null || true'
field() { /usr/bin/python3 -c 'import json,sys; print(eval(sys.argv[2], {"r": json.load(open(sys.argv[1]))}))' "$registry" "$1"; }
job=$(field 'r["job"]')
submitted+=("$job")
url=$(field 'r["url"]')
expect_eq "$(scontrol show job "$job" -o | grep -o 'NumTasks=[0-9]*')" "NumTasks=1" "the service's own job's tasks"

load() { /usr/bin/python3 "$COHORT_SOURCE_DIR/tests/cluster/serve_load.py" "$url" "$services/comp/token" "$1" "$2"; }
companion() { field '[x["job"] for x in r["replicas"] if x["job"]]' | tr -d "[]' "; }

load 8 "[[ \$(grep -c 'answered its first request' '$log') -ge 1 ]]" || fail "requests failed while scaling up"
first=$(companion)
[[ -n $first && $first != "$job" ]] || fail "no replica in a companion job: $(cat "$registry")"
expect_eq "$(job_state "$first")" RUNNING "the companion job's state"
expect_eq "$(job_field "$first" JobName)" comp.replica-1 "the companion job's name"
grep -q "replica-1 goes in companion job $first" "$log" || fail "the job's log does not say where replica 1 went"

# Down to one: the companion's replica drains and its job is cancelled.
load 1 "grep -q 'autoscale: down 2 -> 1:' '$log'" || fail "requests failed while scaling down"
wait_until 60 "companion job $first to end" "job_done $first"
expect_eq "$(companion)" "" "companion jobs after scaling down"

# Up again, then the service's job cancelled: its drain cancels the new companion.
load 8 "[[ \$(grep -c 'answered its first request' '$log') -ge 2 ]]" || fail "requests failed while scaling up again"
second=$(companion)
[[ -n $second && $second != "$first" ]] || fail "no new companion job: $(cat "$registry")"
scancel "$job"
wait_until 120 "job $job to end" "job_done $job"
wait_until 60 "companion job $second to end" "job_done $second"
ok=1
