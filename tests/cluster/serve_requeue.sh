# A served model requeued by Slurm: `scontrol requeue` drains the service and the registry
# says "requeued"; when Slurm runs the job again the service serves again under the same
# name, folder, job and token, at the router address its registry now gives, with the
# requeue counted. Slurm's warning signal makes it drain and requeue itself the same way.
# Requests before and after all succeed; scancel then stops it for good.
source "$(dirname "$0")/lib.sh"
require_cluster

cohort=$COHORT_BUILD_DIR/bin/cohort
services=$work/services
cd "$work"

/usr/bin/python3 - <<'PY' || fail "could not make the model"
import os, torch
os.makedirs("repo/mlp/1", exist_ok=True)
m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
torch.jit.script(m).save("repo/mlp/1/model.pt")
with open("repo/mlp/config.yaml", "w") as f:
    f.write("max_batch_size: 8\ninputs: [{name: x, datatype: FP32, dims: [4]}]\n"
            "outputs: [{name: y, datatype: FP32, dims: [2]}]\n")
PY
printf '%s\n' "apiVersion: serving.kserve.io/v1beta1" "kind: InferenceService" "metadata: {name: mlp}" \
  "spec: {predictor: {model: {modelFormat: {name: pytorch}, storageUri: '$work/repo', resources: {limits: {cpu: 1}}}}}" \
  >isvc.yaml
timeout 240 "$cohort" serve submit isvc.yaml --dir "$services" --wait-timeout 180 || fail "submit failed"
registry=$services/mlp/registry.json
at_exit '[[ ${ok:-} == 1 ]] || { echo "the job log:"; tail -40 "$services/mlp/job.log"; } >&2'
field() { /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$registry" "$1"; }
job=$(field job)
submitted+=("$job")
url=$(field url)
token=$(cat "$services/mlp/token")

requests_ok() {  # requests_ok URL: 40 inferences from 2 clients, every one answered 200
  /usr/bin/python3 - "$1" "$services/mlp/token" <<'PY'
import json, sys, threading, requests
url, token = sys.argv[1], open(sys.argv[2]).read().strip()
body = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})
failures = []
def client():
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + token
    for _ in range(20):
        r = s.post(url + "/models/mlp/infer", data=body, timeout=60)
        if r.status_code != 200: failures.append((r.status_code, r.text))
threads = [threading.Thread(target=client) for _ in range(2)]
for t in threads: t.start()
for t in threads: t.join()
assert not failures, failures[:3]
PY
}
requests_ok "$url" || fail "requests failed before the requeue"
expect_eq "$(field state) $(field requeues)" "ready 0" "state and requeues before the requeue"

scontrol requeue "$job" || fail "scontrol requeue $job failed"
wait_until 60 "the registry to say the service was requeued" '[[ $(field state) == requeued ]]' 'cat $registry'
# The registry is published first, the log line written after it.
wait_until 30 "the job's log to say it drained before the requeue" "grep -q 'drained; requeued' '$services/mlp/job.log'" \
  "tail -5 '$services/mlp/job.log'"
"$cohort" serve status mlp --dir "$services" >status.txt || fail "serve status failed while requeued"
[[ $(head -1 status.txt) == "mlp: requeued, job $job, no URL yet" ]] || fail "status while requeued: $(cat status.txt)"

wait_until 180 "the requeued service to serve again" '[[ $(field state) == ready ]]' 'cat $registry'
"$cohort" serve status mlp --dir "$services" --json >status.json
new_url=$(field url)
expect_eq "$(/usr/bin/python3 -c 'import json; d=json.load(open("status.json")); print(d["name"], d["state"], d["job"], d["requeues"], d["url"], [r["state"] for r in d["replicas"]])')" \
  "mlp ready $job 1 $new_url ['ready']" "status after the requeue"
expect_eq "$(job_field "$job" Restarts)" 1 "restarts Slurm counts"
expect_eq "$(cat "$services/mlp/token")" "$token" "the token after the requeue"
expect_eq "$("$cohort" serve list --dir "$services" --json | /usr/bin/python3 -c 'import json,sys; print([s["name"] for s in json.load(sys.stdin)])')" \
  "['mlp']" "services listed after the requeue"
requests_ok "$new_url" || fail "requests failed at the address the registry gives after the requeue ($url before, $new_url now)"

# Slurm's warning before a time limit or preemption (submit asks for SIGUSR1; scancel
# --batch delivers it as Slurm would): the service drains and requeues itself.
scancel --batch --signal=USR1 "$job" || fail "scancel --batch --signal=USR1 $job failed"
wait_until 60 "the warned service to requeue itself" '[[ $(field requeues) == 1 && $(field state) == requeued ]]' 'cat $registry'
grep -q "warning signal: draining, then requeueing" "$services/mlp/job.log" || fail "the job's log has no warning line"
wait_until 180 "the service to serve again after the warning" '[[ $(field state) == ready && $(field requeues) == 2 ]]' 'cat $registry'
expect_eq "$(job_field "$job" Restarts)" 2 "restarts Slurm counts after the warning"
requests_ok "$(field url)" || fail "requests failed after the service requeued itself"

scancel "$job"
wait_until 120 "the registry to say the service stopped" '[[ $(field state) == stopped ]]' 'cat $registry'
wait_until 120 "job $job to end" 'job_done $job'
ok=1
