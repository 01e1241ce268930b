#!/usr/bin/env bash
# examples/fashion-mnist's pipeline, run here (--local) on a small part of the data: every
# stage ends ok, the model served through V2 scores the test split exactly as its checkpoint
# does offline (the serve step compares them), so does batch prediction, and the model's
# lineage reaches the data step's dataset through the training run and the sweep.
#
#   fashion_mnist.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 source=$2
work=$(mktemp -d /tmp/cohort-example-fm.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL fashion-mnist: $*" >&2; exit 1; }
[[ -d /usr/share/datasets/fashion-mnist ]] || fail "Fashion-MNIST is missing: scripts/install-deps installs dataset-fashion-mnist"
[[ -d $build/python/cohort ]] || { echo "SKIP: the build has no Python package"; exit 77; }

export PATH="$build/bin:$PATH" PYTHONPATH="$build/python" OMP_NUM_THREADS=1 COHORT_LINEAGE="$work/lineage.db"
# Two trials of one epoch each: the stages are what is checked, not the search.
sed 's/maxTrialCount: 6/maxTrialCount: 2/' "$source/examples/fashion-mnist/experiment.yaml" >"$work/experiment.yaml"
cd "$source"
run=$(cohort pipeline run examples/fashion-mnist/pipeline.yaml --local --dir "$work/pipelines" \
  --param limit=1200 --param sweep_epochs=1 --param epochs=1 --param experiment="$work/experiment.yaml" \
  --param launch="cohort launch --local --nproc 2 --" 2>"$work/run.err" | head -1) ||
  { cat "$work/run.err"; fail "the pipeline failed"; }
status=$(cohort pipeline status "$run" --dir "$work/pipelines" --json)
/usr/bin/python3 - "$status" <<'PY' || fail "$(cohort pipeline status "$run" --dir "$work/pipelines")"
import json, sys
s = json.loads(sys.argv[1])
states = {t["task"]: t["state"] for t in s["tasks"]}
assert s["state"] == "Succeeded", s["state"]
assert states == {k: "succeeded" for k in ("prepare", "sweep", "train", "export", "serve", "predict")}, states
results = {t["task"]: t["outputs"]["parameters"] for t in s["tasks"]}
assert results["predict"]["accuracy"] == results["export"]["accuracy"], results
PY
log=$(cohort pipeline logs "$run" serve --dir "$work/pipelines")
[[ $log == *served_test_accuracy=* ]] || fail "the serve step did not score the test split: $log"
models=$(ls -d "$work"/pipelines/runs/"$run"/tasks/export/artifacts/models)
lineage=$(cohort lineage show "$models" --json)
/usr/bin/python3 - "$lineage" <<'PY' || fail "the model's lineage does not reach the data: $(cohort lineage show "$models")"
import json, sys
text = sys.argv[1]
for step in ("train", "sweep", "prepare"):
    assert f"/tasks/{step}/artifacts/" in text, step
PY
echo "fashion-mnist: ok ($run)"
