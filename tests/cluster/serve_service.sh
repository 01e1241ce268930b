# `cohort serve submit`: a KServe InferenceService as one job of two replica steps behind a
# router. Requests through the router's URL need the token; a replica killed under a bounded
# load loses no request and is restarted; a canary at 20 % takes 20 % +- 5 % of the requests
# and is promoted, another is rolled back, and a rolling update replaces every replica, all
# without a failed request; scancel drains the
# service and the registry says so. Bad specs are refused before anything is submitted.
source "$(dirname "$0")/lib.sh"
require_cluster

cohort=$COHORT_BUILD_DIR/bin/cohort
services=$work/services
cd "$work"

# Three repositories of the same model with different weights: an answer tells which served it.
/usr/bin/python3 - <<'PY'
import os, torch
for seed, repo in enumerate(["repo", "repo2", "repo3"], start=1):
    os.makedirs(f"{repo}/mlp/1", exist_ok=True)
    torch.manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    torch.jit.script(m).save(f"{repo}/mlp/1/model.pt")
    with open(f"{repo}/mlp/config.yaml", "w") as f:
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

isvc $'    minReplicas: 2\n    maxReplicas: 3\n' "      storageUri: file://$work/repo"$'\n      resources: {limits: {cpu: 1}}\n' >isvc.yaml
out=$(timeout 240 "$cohort" serve submit isvc.yaml --dir "$services" --wait-timeout 180) || fail "submit failed: $out"
note "$out"
registry=$services/mlp/registry.json
at_exit '[[ ${ok:-} == 1 ]] || { echo "the job log:"; tail -40 "$services/mlp/job.log"; } >&2'
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

# Which repository answers each of N requests: "repo repo2 ..." counts, no failure allowed.
split() {  # split N
  /usr/bin/python3 - "$url" "$services/mlp/token" "$work" "$1" <<'PY'
import collections, json, sys, requests, torch
url, token_file, work, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = requests.Session()
s.headers["Authorization"] = "Bearer " + open(token_file).read().strip()
x = [1.0, 2.0, 3.0, 4.0]
expected = {repo: torch.jit.load(f"{work}/{repo}/mlp/1/model.pt")(torch.tensor([x])).flatten().tolist()
            for repo in ("repo", "repo2", "repo3")}
seen = collections.Counter()
body = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": x}]})
for _ in range(n):
    r = s.post(url + "/models/mlp/infer", data=body, timeout=60)
    assert r.status_code == 200, (r.status_code, r.text)
    out = r.json()["outputs"][0]["data"]
    seen[next(repo for repo, e in expected.items() if e == out)] += 1
print(" ".join(f"{repo}={seen[repo]}" for repo in ("repo", "repo2", "repo3")))
PY
}
"$cohort" serve update mlp --dir "$services" --storage-uri "$work/repo2" --canary 20 || fail "update --canary 20 failed"
counts=$(split 200) || fail "requests failed with a canary"
note "canary at 20 %: $counts"
canary=$(sed 's/.*repo2=\([0-9]*\).*/\1/' <<<"$counts")
((canary >= 30 && canary <= 50)) || fail "the canary took $canary of 200 requests, not 20 % +- 5 %"
"$cohort" serve promote mlp --dir "$services" || fail "promote failed"
expect_eq "$(split 50)" "repo=0 repo2=50 repo3=0" "answers after promote"
"$cohort" serve update mlp --dir "$services" --storage-uri "$work/repo3" --canary 50 || fail "the second canary failed"
"$cohort" serve rollback mlp --dir "$services" || fail "rollback failed"
expect_eq "$(split 50)" "repo=0 repo2=50 repo3=0" "answers after rollback"
"$cohort" serve update mlp --dir "$services" --storage-uri "$work/repo3" || fail "the rolling update failed"
expect_eq "$(split 50)" "repo=0 repo2=0 repo3=50" "answers after the rolling update"
expect_eq "$(/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["replicas"]), {r["version"] for r in d["replicas"]} == set(d["traffic"]), list(d["traffic"].values()))' "$registry")" \
  "2 True [100]" "replicas and traffic after the rolling update"

scancel "$job"
stopped() { /usr/bin/python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["state"] == "stopped" else 1)' "$registry"; }
wait_until 120 "the registry to say the service stopped" stopped
wait_until 120 "job $job to end" 'job_done $job'
ok=1
