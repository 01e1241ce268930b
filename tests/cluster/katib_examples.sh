# Katib's own examples (tests/tuner/fixtures/katib, byte for byte as published) run as array
# jobs with Katib's own trial code, mnist.py, changing only the program path (a PyTorchJob
# trialSpec's included, each trial a two-process job of its own); mnist.py reads
# a small synthetic data set through the test-side torchvision shim. Every hp-tuning example
# whose algorithm cohort has ends Succeeded with all its trials and a best loss below the
# untrained network's; median-stop.yaml stops at least one poor trial early.
source "$(dirname "$0")/lib.sh"
require_cluster
cohort=$COHORT_BUILD_DIR/bin/cohort
katib=$COHORT_SOURCE_DIR/tests/tuner/fixtures/katib
cd "$work"

# Debian's Python has torch; a python3 earlier on PATH may not.
mkdir -p "$work/bin" && ln -s /usr/bin/python3 "$work/bin/python3"
export PATH="$work/bin:$PATH" PYTHONPATH="$katib/shims"
# The examples train for one epoch at a batch size of 16. On 320 images the second (and last)
# loss line comes after ten steps, where every trial of a sweep can still be at the untrained
# loss (tpe's twelve and hyperband's two both were, in runs): 640 images give four lines, by
# the last of which every setting in the examples' ranges has learned. median-stop gets
# 960, six, so that a slow learner shows by its start_step.
export COHORT_SHIM_TEST_SIZE=100
train_size() { case $1 in median-stop) echo 960 ;; *) echo 640 ;; esac; }

# The one change: the image's program becomes this checkout's copy of it. median-stop's
# random sample is also pinned (random_state, three lines added): whether the rule stops a
# trial depends on the sample, and an unlucky one (the slowest settings drawn first, before
# any trial has completed, and the later ones near the median) stops none. Seed 28 draws five
# settings that learn, then slow ones.
program_path() {
  local pin=
  [[ $1 == median-stop ]] && pin='s#^    algorithmName: random$#&\n    algorithmSettings:\n      - name: random_state\n        value: "28"#'
  sed -e "s#/opt/pytorch-mnist/mnist.py#$katib/mnist.py#" -e "$pin" "$katib/$1.yaml" >"$work/$1.yaml"
  # One line each way; two in the PyTorchJob, whose master and worker both run it.
  local lines=2
  [[ $1 == pytorchjob-mnist ]] && lines=4
  [[ $1 == median-stop ]] && lines=5
  expect_eq "$(diff "$katib/$1.yaml" "$work/$1.yaml" | grep -c '^[<>]')" "$lines" "lines changed in $1.yaml"
}
# Ended, and so are its trials: a trial that reaches the goal ends the experiment while the
# array's other tasks may still be running theirs, which then end as they would have.
settled() {
  "$cohort" sweep status "$1" --json | /usr/bin/python3 -c '
import json, sys
s = json.load(sys.stdin)
sys.exit(s["state"] == "Running" or any(t["state"] == "Running" for t in s["trials"]))'
}

# pytorchjob-mnist's trials are PyTorchJobs: a master and a worker, over gloo, in each trial's
# array task, run by cohort launch; the loss is the master's.
examples=(random grid bayesian-optimization multivariate-tpe optuna-distribution hyperopt-distribution sobol tpe hyperband
  pytorchjob-mnist)
for name in "${examples[@]}" median-stop; do
  program_path "$name"
  export COHORT_SHIM_TRAIN_SIZE=$(train_size "$name")
  job=$("$cohort" sweep submit "$work/$name.yaml" --dir "$work/$name" --parsable) || fail "sweep submit $name.yaml failed"
  submitted+=("$job")
done
for name in "${examples[@]}" median-stop; do
  wait_until 600 "the $name sweep and its trials to end" 'settled "$work/$name"' '"$cohort" sweep status "$work/$name"'
done

for name in "${examples[@]}"; do
  "$cohort" sweep status "$work/$name" --json | /usr/bin/python3 -c '
import json, sys
name, s = sys.argv[1], json.load(sys.stdin)
trials = s["trials"]
assert s["state"] == "Succeeded", (name, s["state"], s.get("reason"), [(t["trial"], t.get("reason")) for t in trials])
assert trials and all(t["state"] == "Succeeded" for t in trials), (name, [(t["trial"], t["state"], t.get("reason")) for t in trials])
# Every trial starts from the same untrained network (mnist.py seeds it), which scores
# about ln 10 = 2.30 on its first batch; the sweep finds settings that learn from there. The
# synthetic set can be learned whole (a loss printed as 5e-04, or 0.0000), so only a value
# that is no loss at all fails.
losses = [t["objective"] for t in trials]
assert all(0 <= x < 2.5 for x in losses), (name, losses)
# Unless every trial learned the set whole: the two of hyperband can.
assert min(losses) < max(losses) or max(losses) < 0.001, (name, losses)
' "$name" || fail "$name.yaml: $("$cohort" sweep status "$work/$name" 2>&1 | tail -5)"
  best=$("$cohort" sweep best "$work/$name" --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["objective"])')
  least=$("$cohort" sweep status "$work/$name" --json | /usr/bin/python3 -c 'import json,sys; print(min(t["objective"] for t in json.load(sys.stdin)["trials"]))')
  expect_eq "$best" "$least" "$name.yaml: the best trial's loss"
done

"$cohort" sweep status "$work/median-stop" --json | /usr/bin/python3 -c '
import json, sys
s = json.load(sys.stdin)
states = [t["state"] for t in s["trials"]]
# All 15 trials run, unless one reaches the goal of the example (loss 0.001) first: a sampler
# that finds such a setting ends the experiment there, as Katib does.
goal = (s.get("reason") or "").startswith("GoalReached")
assert s["state"] == "Succeeded" and (len(states) == 15 or goal and len(states) <= 15), (s["state"], s.get("reason"), states)
stopped = [t for t in s["trials"] if t["state"] == "EarlyStopped"]
assert stopped, "no trial was stopped early: %s" % [(t["parameters"], t.get("objective")) for t in s["trials"]]
assert all("medianstop: best loss" in t["reason"] for t in stopped), stopped
' || fail "median-stop.yaml: $("$cohort" sweep status "$work/median-stop" 2>&1 | tail -20)"
note "$(grep -c EarlyStopped <("$cohort" sweep status "$work/median-stop")) of median-stop's 15 trials stopped early"
