# `cohort serve submit`: a KServe InferenceService as one job of two replica steps behind a
# router. Requests through the router's URL need the token; a replica killed under a bounded
# load loses no request and is restarted; scancel drains the service and the registry says so.
# Bad specs are refused before anything is submitted.
source "$(dirname "$0")/lib.sh"
require_cluster

cohort=$COHORT_BUILD_DIR/bin/cohort
services=$work/services
cd "$work"

/usr/bin/python3 - <<'PY'
import os, torch
os.makedirs("repo/mlp/1", exist_ok=True)
torch.manual_seed(1)
m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
torch.jit.script(m).save("repo/mlp/1/model.pt")
with open("repo/mlp/config.yaml", "w") as f:
    f.write("max_batch_size: 8\ninputs: [{name: x, datatype: FP32, dims: [4]}]\n"
            "outputs: [{name: y, datatype: FP32, dims: [2]}]\n")
PY

isvc() {  # isvc PREDICTOR_LINES MODEL_LINES: a spec with these lines
  printf 'apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: mlp\nspec:\n  predictor:\n%s    model:\n      modelFormat: {name: pytorch}\n%s' "$1" "$2"
}

# Bad specs: exit 2, a message naming the field, and no job.
refused() {  # refused FILE WORDS
  local out rc=0
  out=$("$cohort" serve submit "$1" --dir "$services" 2>&1) || rc=$?
  expect_eq "$rc" 2 "exit status for $1 ($out)"
  [[ $out == *"$2"* ]] || fail "$1: expected '$2' in: $out"
  [[ -z $(squeue -h -o %i) ]] || fail "$1: a job was submitted for a bad spec"
}
isvc "" "" >no_storage.yaml
refused no_storage.yaml "spec.predictor.model.storageUri: missing"
isvc $'    minReplicas: 3\n    maxReplicas: 2\n' "      storageUri: $work/repo"$'\n' >min_max.yaml
refused min_max.yaml "maxReplicas: 2 is below minReplicas (3)"
mkdir -p empty
isvc "" "      storageUri: file://$work/empty"$'\n' >no_model.yaml
refused no_model.yaml "holds no model"
{ isvc "" "      storageUri: $work/repo"$'\n      resources: {limits: {nvidia.com/gpu: 1}}\n'; printf 'slurm: {partition: nowhere}\n'; } >gpu.yaml
refused gpu.yaml "slurm.partition nowhere: Slurm knows no such partition"

isvc $'    minReplicas: 2\n    maxReplicas: 2\n' "      storageUri: file://$work/repo"$'\n      resources: {limits: {cpu: 1}}\n' >isvc.yaml
out=$(timeout 240 "$cohort" serve submit isvc.yaml --dir "$services" --wait-timeout 180) || fail "submit failed: $out"
note "$out"
registry=$services/mlp/registry.json
job=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["job"])' "$registry")
submitted+=("$job")
[[ $out == *"ready at http://"* ]] || fail "submit printed no URL: $out"
url=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$registry")

"$cohort" serve status mlp --dir "$services" --json >status.json
expect_eq "$(/usr/bin/python3 -c 'import json; d=json.load(open("status.json")); print(d["state"], [r["state"] for r in d["replicas"]])')" \
  "ready ['ready', 'ready']" "status after submit"
[[ $("$cohort" serve list --dir "$services") == *"mlp   ready"* ]] || fail "serve list does not show mlp ready"

# Bounded load through the router; replica 0 is SIGKILLed once 100 requests are answered.
/usr/bin/python3 - "$url" "$services/mlp/token" "$registry" <<'PY' || fail "requests failed through the router"
import json, os, signal, sys, threading
import requests
url, token_file, registry = sys.argv[1:]
token = open(token_file).read().strip()
bare = requests.get(url + "/models/mlp", timeout=60)
assert bare.status_code == 401, bare.status_code
victim = json.load(open(registry))["replicas"][0]["pid"]
lock, answered, failures, killed = threading.Lock(), [0], [], threading.Event()
body = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})
def client():
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + token
    for _ in range(100):
        r = s.post(url + "/models/mlp/infer", data=body, timeout=60)
        with lock:
            if r.status_code != 200:
                failures.append((r.status_code, r.text))
            answered[0] += 1
            if answered[0] == 100 and not killed.is_set():
                os.kill(victim, signal.SIGKILL)
                killed.set()
threads = [threading.Thread(target=client) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
assert killed.is_set()
assert not failures, failures[:3]
print("400 requests, none failed; replica 0 killed after 100")
PY
restarted() { /usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["replicas"][0]; sys.exit(0 if (r["restarts"], r["state"]) == (1, "ready") else 1)' "$registry"; }
wait_until 120 "the killed replica to be restarted" restarted
"$cohort" serve status mlp --dir "$services" --json >status.json
/usr/bin/python3 - <<'PY' || fail "serve status after the load: $(cat status.json)"
import json
d = json.load(open("status.json"))
assert d["replicas"][0]["restarts"] == 1, d
assert isinstance(d["requests_per_s"], (int, float)), d
assert d["p99_s"] is not None and d["p50_s"] <= d["p99_s"], d
assert sum(r["requests"] or 0 for r in d["replicas"]) > 0, d
PY

scancel "$job"
stopped() { /usr/bin/python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["state"] == "stopped" else 1)' "$registry"; }
wait_until 120 "the registry to say the service stopped" stopped
wait_until 120 "job $job to end" 'job_done $job'
