#!/bin/bash
# make_state.sh COHORT DIR — what the dashboard's tests show: in DIR/lineage.db, a local
# sweep of 4 trials (one categorical value is "<script>alert(1)</script>", which every page
# must show as text), a local pipeline run of fan_out_fan_in.yaml, and a local launch of two
# ranks that keeps its run directory (DIR/run) and per-rank logs (DIR/logs).
# The best trial is x=1 (loss 1); trial 3 (x=4) fails with exit 3. Each trial reports its
# loss at steps 1 and 2, so that each has a curve. The launch's rank 1
# exits with 3 in its first attempt and the gang restarts once; each rank prints a line of
# markup, which its page must show as text. DIR/services holds one submitted service's
# registry, as its job writes it mid-canary: version 2 takes 10% of the traffic, replica 2
# has died and restarted once.
set -euo pipefail
cohort=$1 dir=$2
fixtures=$(cd "$(dirname "$0")/../pipeline/fixtures" && pwd)
mkdir -p "$dir"
export COHORT_LINEAGE=$dir/lineage.db
unset SLURM_JOB_ID SLURM_ARRAY_JOB_ID COHORT_LINEAGE_EXECUTION COHORT_SWEEP_DIR COHORT_TRIAL_ID
cat >"$dir/exp.yaml" <<YAML
metadata: {name: quadratic}
parameters:
  - {name: x, parameterType: int, feasibleSpace: {min: "1", max: "4"}}
  - {name: tag, parameterType: categorical, feasibleSpace: {list: ["<script>alert(1)</script>"]}}
trialTemplate:
  command: [sh, -c, 'if [ "\$0" = 4 ]; then exit 3; fi; echo "step=1 loss=\$((\$0 * \$0 + 10))"; echo "step=2 loss=\$((\$0 * \$0))"', '\${trialParameters.x}']
  trialParameters: [{name: x, reference: x}]
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: grid}
parallelTrialCount: 2
YAML
"$cohort" sweep run "$dir/exp.yaml" --dir "$dir/sweep" >"$dir/sweep.log" 2>&1 || true
"$cohort" pipeline run "$fixtures/fan_out_fan_in.yaml" --local --dir "$dir/pipelines" >"$dir/pipeline.log" 2>&1
"$cohort" launch --local --nproc 2 --max-restarts 1 --run-dir "$dir/run" --output-dir "$dir/logs" -- \
  sh -c 'echo "<img src=x onerror=alert(2)> rank $RANK attempt $COHORT_RESTART_COUNT"
         if [ "$COHORT_RESTART_COUNT" = 0 ] && [ "$RANK" = 1 ]; then exit 3; fi' >"$dir/launch.log" 2>&1
mkdir -p "$dir/services/mnist"
cat >"$dir/services/mnist/registry.json" <<JSON
{"name": "mnist", "state": "ready", "job": "4242", "url": "http://node1:8080", "message": "",
 "traffic": {"1": 90, "2": 10}, "storage": {"1": "$dir/models/v1", "2": "$dir/models/v2"},
 "replicas": [{"id": 0, "node": "node1", "host": "10.0.0.1", "port": 9001, "pid": 11, "version": "1", "state": "ready", "restarts": 0},
              {"id": 1, "node": "node2", "host": "10.0.0.2", "port": 9001, "pid": 12, "version": "1", "state": "ready", "restarts": 0},
              {"id": 2, "node": "node2", "host": "10.0.0.2", "port": 9002, "pid": 13, "version": "2", "state": "starting", "restarts": 1}]}
JSON
