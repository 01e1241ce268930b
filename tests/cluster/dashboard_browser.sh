# `cohort dashboard` in a real browser over work done on the mini-cluster: a two-node launch
# whose rank 1 fails once, a launch without --output-dir, a sweep of three trials as an
# array job, and a two-step pipeline run, all submitted at once. Headless Chromium
# (tests/dashboard/browser_test.py) loads every view with the token and checks what it shows
# against what Slurm and cohort's own commands say: the first launch's two attempts and each
# rank's node, the second's rank lines in its batch output where Slurm says it is, the
# sweep's trial count and best value as `cohort sweep status` gives them, each pipeline
# task's state as `cohort pipeline status` gives it. Without the token every view is 401 and
# holds no data. The screenshots, and what each page had to hold, are kept in the build's
# tests/cluster/dashboard_browser folder.
source "$(dirname "$0")/lib.sh"
require_cluster
cohort=$COHORT_BUILD_DIR/bin/cohort
shots=$COHORT_BUILD_DIR/tests/cluster/dashboard_browser
command -v chromium >/dev/null || fail "chromium is not installed (scripts/install-deps installs it)"
cd "$work"
export COHORT_LINEAGE=$work/lineage.db
unset COHORT_LINEAGE_EXECUTION COHORT_LINEAGE_SPOOL

# 1. The launch: each rank says where it runs; rank 1's first attempt fails.
printf '#!/bin/bash\nexec %q launch --max-restarts 1 --run-dir %q --output-dir %q -- bash -c %q\n' \
  "$cohort" "$work/run" "$work/logs" \
  'echo "rank $RANK attempt $COHORT_RESTART_COUNT on $(hostname)"; [[ $COHORT_RESTART_COUNT != 0 || $RANK != 1 ]] || exit 3' \
  >"$work/job.sh"
job=$(submit -N2 -n2 --ntasks-per-node=1 -o "$work/job.out" "$work/job.sh")
# A launch without --output-dir: its ranks' lines go to the job's batch output, which only
# Slurm knows the place of.
printf '#!/bin/bash\nexec %q launch -- bash -c %q\n' "$cohort" 'echo "batch rank $RANK on $(hostname)"' >"$work/batch.sh"
batch=$(submit -N1 -n2 -o "$work/batch.out" "$work/batch.sh")

# 2. The sweep: three trials at once; the best is x=2, whose loss is 0.25.
cat >"$work/exp.yaml" <<YAML
metadata: {name: dashboard-browser-sweep}
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: grid}
maxTrialCount: 3
parallelTrialCount: 3
parameters: [{name: x, parameterType: int, feasibleSpace: {min: "1", max: "3"}}]
trialTemplate:
  trialParameters: [{name: x, reference: x}]
  command: [sh, -c, 'x=\${trialParameters.x}; echo "loss=\$(( (x - 2) * (x - 2) )).25"']
YAML
array=$("$cohort" sweep submit "$work/exp.yaml" --dir "$work/sweep" -n1 --parsable) || fail "sweep submit failed"
submitted+=("$array")

# 3. The pipeline run: two steps, the second reading the first's Dataset.
root=$work/pipelines
out=$("$cohort" pipeline run "$COHORT_SOURCE_DIR/tests/pipeline/fixtures/two_step_pipeline_containerized.yaml" \
  --param text="hello from the dashboard" --dir "$root" 2>"$work/run.err") || fail "pipeline run failed: $(cat "$work/run.err")"
run=${out%%$'\n'*}
submitted+=($(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1])).values()))' "$root/runs/$run/jobs.json"))

field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
sweep_state() { "$cohort" sweep status "$work/sweep" --json | field state; }
run_state() { "$cohort" pipeline status "$run" --dir "$root" --json | field state; }
wait_until 120 "the launch job $job to end" "job_done $job"
expect_eq "$(job_state "$job")" COMPLETED "state of the launch job ($(cat "$work/job.out"))"
wait_until 120 "the launch job $batch to end" "job_done $batch"
expect_eq "$(job_state "$batch")" COMPLETED "state of the launch job without --output-dir ($(cat "$work/batch.out"))"
wait_until 120 "the sweep to end" '[[ $(sweep_state) != Running ]]' "$cohort sweep status $work/sweep"
expect_eq "$(sweep_state)" Succeeded "the sweep's state"
wait_until 120 "the pipeline run to end" '[[ $(run_state) != Running ]]' "$cohort pipeline status $run --dir $root"
expect_eq "$(run_state)" Succeeded "the pipeline run's state"

# What the pages must agree with, as a user would ask it.
"$cohort" sweep status "$work/sweep" --json >"$work/sweep.json"
"$cohort" pipeline status "$run" --dir "$root" --json >"$work/run.json"
nodes=$(scontrol show hostnames "$(job_field "$job" NodeList)" | sort | tr '\n' ' ')

"$cohort" dashboard --port 0 --store "$work/lineage.db" --token-file "$work/cfg/token" --services "$work/services" \
  >"$work/dashboard.out" 2>&1 &
dashboard=$!
at_exit 'kill $dashboard; wait $dashboard'
wait_until 30 "the dashboard to listen" "grep -q 'listening on' '$work/dashboard.out'" "cat '$work/dashboard.out'"
base=$(sed -n 's|.*\(http://[^ ]*/\)?token=.*|\1|p' "$work/dashboard.out")
token=$(sed -n 's|.*?token=\([^ ]*\).*|\1|p' "$work/dashboard.out")
[[ -n $base && -n $token ]] || fail "the dashboard printed no URL with its token: $(cat "$work/dashboard.out")"

rm -rf "$shots" && mkdir -p "$shots"
python3 - "$base" "$token" "$job" "$nodes" "$work" "$run" "$batch" >"$shots/checks.json" <<'PY' || fail "could not say what the pages must show"
import json, re, sys, urllib.request
base, token, job, nodes, work, run, batch = sys.argv[1:8]
def api(path):
    request = urllib.request.Request(base + "api/" + path, headers={"Authorization": "Bearer " + token})
    return json.loads(urllib.request.urlopen(request, timeout=60).read())
def number(v):  # as the dashboard writes a double: the shortest text that reads back the same
    text = repr(float(v))
    return text[:-2] if text.endswith(".0") else text
launches = {l["properties"]["job_id"]: l["id"] for l in api("jobs")["launches"]}
assert sorted(launches) == sorted([job, batch]), launches
launch = launches[job]
(sweep,) = [s["id"] for s in api("sweeps")["sweeps"]]
(pipeline,) = [p["id"] for p in api("pipelines")["pipelines"]]
(dataset,) = [a["id"] for a in api("models")["artifacts"] if a["type"] == "Dataset"]
# Each rank's node, as the rank itself said in its log in the attempt that succeeded.
host = {}
for r in (0, 1):
    said = re.findall(r"rank %d attempt (\d) on (\S+)" % r, open(f"{work}/logs/rank-{r}.log").read())
    assert said and said[-1][0] == "1", (r, said)
    host[r] = said[-1][1]
assert sorted(host.values()) == nodes.split(), f"the ranks ran on {host}, Slurm placed the job on {nodes}"
status = json.load(open(f"{work}/sweep.json"))
best = status["best"]
tasks = json.load(open(f"{work}/run.json"))["tasks"]
e = re.escape
pages = {
    "overview": ["", [r">2 launches<", r">1 sweeps<", r">1 pipeline runs<"]],
    # Each launch's row names its Slurm job.
    "jobs": ["jobs", [r'id="launches"'] + [r'href="/jobs/%d">[^<]*</a></td><td class="state state-COMPLETE">COMPLETE</td><td>%s</td>'
                                           % (launches[j], j) for j in (job, batch)]],
    "job": [f"jobs/{launch}", [r'id="state">COMPLETE<', r"Slurm job %s," % job,
                               # Attempt 0 may have ended before rank 0 said where it runs.
                               r'(?s)id="attempts".*<td class="num">0</td><td class="num">[12]</td><td>rank 1 \(%s\) exited with 3'
                               % e(host[1]) + r'.*<td class="num">1</td><td class="num">2</td>']
            + [r'<td class="num">%d</td><td>%s</td>.*?exited with 0' % (r, e(host[r])) for r in (0, 1)]
            + [r'id="log-%d">[^<]*rank %d attempt 1 on %s' % (r, r, e(host[r])) for r in (0, 1)]],
    "batch-job": [f"jobs/{launches[batch]}", [r"Slurm job %s," % batch, r"<code>%s</code>" % e(f"{work}/batch.out")]
                  + [r'id="batch-log">[^<]*%d: batch rank %d on ' % (r, r) for r in (0, 1)]],
    "sweeps": ["sweeps", [r'href="/sweeps/%d"' % sweep, r"dashboard-browser-sweep", r"state-Succeeded"]],
    "sweep": [f"sweeps/{sweep}", [r'id="state">Succeeded<', r'id="trial-count">%d<' % len(status["trials"]),
                                  r'id="best-trial">%d<' % best["trial"], r'id="best-value">%s<' % e(number(best["objective"])),
                                  r"(?s)id=\"trials\"" + r".*state-Succeeded" * len(status["trials"])]],
    "pipelines": ["pipelines", [r'href="/pipelines/%d"' % pipeline, r"%d succeeded" % len(tasks)]],
    "pipeline": [f"pipelines/{pipeline}", [r'id="state">Succeeded<', r"<svg"]
                 + [r'<td>%s</td><td class="state state-%s">' % (e(t["task"]), e(t["state"])) for t in tasks]],
    "models": ["models", [r'href="/models/%d"' % dataset, r"Dataset"]],
    "model": [f"models/{dataset}", [r"<svg", r"Used by", e(run + "/component2")]],
    "endpoints": ["endpoints", [r"No service submitted", r"No model server"]],
}
hidden = ["dashboard-browser-sweep", run, "trial-count", "attempt 1 on", "batch rank"]
json.dump({"pages": pages, "hidden": hidden}, sys.stdout, indent=1)
PY
/usr/bin/python3 "$COHORT_SOURCE_DIR/tests/dashboard/browser_test.py" --base "$base" --token "$token" \
  --checks "$shots/checks.json" "$shots" || fail "the dashboard's pages in the browser (what each must hold: $shots/checks.json)"
note "ok"
