# `cohort pipeline run` on the mini-cluster: KFP v2 pipelines as sbatch jobs chained by
# afterok. A two-step pipeline passes its parameter through a Dataset; a fan-out/fan-in
# gathers every branch; a second run is served from the cache without a job, and a changed
# parameter reruns only what reads it; a failing
# task's dependant is never started and the run names the task and its log; retryPolicy
# requeues a failed task until it succeeds.
source "$(dirname "$0")/lib.sh"
require_cluster
cohort=$COHORT_BUILD_DIR/bin/cohort
# The tasks record into a lineage store of the test's own (the jobs inherit it).
export COHORT_LINEAGE=$work/lineage.db
unset COHORT_LINEAGE_EXECUTION COHORT_LINEAGE_SPOOL
fixtures=$COHORT_SOURCE_DIR/tests/pipeline/fixtures
root=$work/pipelines

# run ARGS...: `cohort pipeline run ARGS --wait`, its jobs remembered for cleanup; prints
# the run's name, and leaves what it drew in $work/drawn.
run() {
  local out rc=0
  out=$("$cohort" pipeline run "$@" --dir "$root" --wait 2>"$work/run.err") || rc=$?
  local name=${out%%$'\n'*}
  printf '%s\n' "${out#*$'\n'}" >"$work/drawn"
  submitted+=($(cohort_jobs "$name"))
  echo "$name"
  return $rc
}
cohort_jobs() { python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1])).values()))' "$root/runs/$1/jobs.json" 2>/dev/null || true; }
# task=state pairs of a run, in task order.
states() {
  "$cohort" pipeline status "$1" --dir "$root" --json |
    python3 -c 'import json,sys; print(" ".join(t["task"]+"="+t["state"] for t in json.load(sys.stdin)["tasks"]))'
}
jobs_of() { python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$root/runs/$1/jobs.json"; }

# 1. two steps: the parameter reaches the second task through the first's Dataset.
# sbatch's own options reach every task's job.
two=$(run "$fixtures/two_step_pipeline_containerized.yaml" --param text="hello from slurm" --comment=from-pipeline) ||
  fail "two-step run failed: $(cat "$work/run.err")"
expect_eq "$(states "$two")" "component1=succeeded component2=succeeded" "two-step states"
for job in $(cohort_jobs "$two"); do expect_eq "$(job_field "$job" Comment)" from-pipeline "job $job's comment"; done
# Both tasks, run on the nodes, are in the lineage store, in the run's context.
"$cohort" lineage list --type PipelineTask --json | python3 -c '
import json, sys
run = sys.argv[1]
names = sorted(e["name"] for e in json.load(sys.stdin)["executions"] if e["name"].startswith(run + "/"))
assert names == [run + "/component1", run + "/component2"], names' "$two" || fail "the two-step run's tasks are not in the lineage store"
grep -q "hello from slurm" "$root/runs/$two/tasks/component2/log" || fail "component2 did not print the text: $(cat "$root/runs/$two/tasks/component2/log")"

# 2. fan-out/fan-in: four jobs after make-data's, report waiting on all of them.
fan=$(run "$fixtures/fan_out_fan_in.yaml" --param n=5) || fail "fan-out run failed: $(cat "$work/run.err")"
expect_eq "$(states "$fan")" "make-data=succeeded sum=succeeded square-sum=succeeded stamp=succeeded report=succeeded" "fan-in states"
expect_eq "$(cat "$root/runs/$fan/tasks/report/artifacts/report")" "numbers: n=5 sum=15 squares=55" "the gathered report"

# 3. the same again: served from the cache; only the task with caching off, and the task
# after it, get jobs, and the latter finds its result cached when it starts.
again=$(run "$fixtures/two_step_pipeline_containerized.yaml" --param text="hello from slurm") || fail "second two-step run failed"
expect_eq "$(states "$again")" "component1=cached component2=cached" "second two-step run"
expect_eq "$(jobs_of "$again")" 0 "jobs submitted for a fully cached run"
fan2=$(run "$fixtures/fan_out_fan_in.yaml" --param n=5) || fail "second fan-out run failed"
expect_eq "$(states "$fan2")" "make-data=cached sum=cached square-sum=cached stamp=succeeded report=cached" "second fan-out run"
expect_eq "$(jobs_of "$fan2")" 2 "jobs submitted for the second fan-out run"
# Changing the parameter only report reads reruns report alone (and stamp, never cached).
fan3=$(run "$fixtures/fan_out_fan_in.yaml" --param n=5 --param label=changed) || fail "third fan-out run failed"
expect_eq "$(states "$fan3")" "make-data=cached sum=cached square-sum=cached stamp=succeeded report=succeeded" "a changed label"
expect_eq "$(cat "$root/runs/$fan3/tasks/report/artifacts/report")" "changed: n=5 sum=15 squares=55" "the report with its new label"

# 4. a failing task: its dependant is killed by Slurm unstarted; the run names the log.
cat >"$work/fail.yaml" <<YAML
name: failing
steps:
  bad: {run: 'echo about to fail; exit 4'}
  after-bad: {needs: [bad], run: 'touch $work/dependant-ran'}
  independent: {run: 'true'}
YAML
bad=$(run "$work/fail.yaml") && fail "a run with a failing task succeeded"
expect_eq "$(states "$bad")" "bad=failed after-bad=skipped independent=succeeded" "states after a failure"
[[ ! -e $work/dependant-ran ]] || fail "the failed task's dependant ran"
grep -q "task bad failed: exit status 4; its log: $root/runs/$bad/tasks/bad/log" "$work/drawn" ||
  fail "the run does not name the failed task and its log: $(cat "$work/drawn")"
grep -q "about to fail" "$root/runs/$bad/tasks/bad/log" || fail "the failed task's log lacks its output"

# 5. retryPolicy: the first attempt fails, Slurm requeues the job, the second succeeds.
cat >"$work/retry.yaml" <<YAML
name: flaky
steps:
  flaky:
    run: 'if [ -e $work/once ]; then echo ok > {{outputs.result}}; else touch $work/once; exit 3; fi'
    outputs: [result]
    retries: 2
  after: {needs: [flaky], run: 'cat {{steps.flaky.outputs.result}}'}
YAML
flaky=$(run "$work/retry.yaml") || fail "the retried run failed: $(cat "$work/drawn")"
expect_eq "$(states "$flaky")" "flaky=succeeded after=succeeded" "states after a retry"
grep -q "attempt 2 of 3" "$root/runs/$flaky/tasks/flaky/log" || fail "no second attempt in the log: $(cat "$root/runs/$flaky/tasks/flaky/log")"

# 6. cancel: a running task's job and its pending dependant are cancelled; the run says so.
cat >"$work/slow.yaml" <<YAML
name: slow
steps:
  slow: {run: 'touch $work/slow-started; exec sleep 300'}
  later: {needs: [slow], run: 'touch $work/later-ran'}
YAML
slow=$("$cohort" pipeline run "$work/slow.yaml" --dir "$root" 2>/dev/null | head -1)
submitted+=($(cohort_jobs "$slow"))
wait_until 60 "the slow task to start" '[[ -e $work/slow-started ]]'
"$cohort" pipeline cancel "$slow" --dir "$root" 2>/dev/null || fail "cancel failed"
for job in $(cohort_jobs "$slow"); do wait_until 60 "job $job to end" "job_done $job"; done
expect_eq "$(states "$slow")" "slow=cancelled later=cancelled" "states after cancel"
state=$("$cohort" pipeline status "$slow" --dir "$root" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
expect_eq "$state" Cancelled "the cancelled run's state"
[[ ! -e $work/later-ran ]] || fail "the cancelled run's second task ran"
