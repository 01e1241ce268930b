# Batch prediction over a 2-task srun step on two nodes, and in the batch script itself,
# equals one process's bit for bit;
# a task killed mid-run (cohort's testing hook COHORT_PREDICT_KILL_AFTER_SHARDS) fails its
# step, and a second step redoes that task's unfinished shards and only those.
source "$(dirname "$0")/lib.sh"
require_cluster
cohort=$COHORT_BUILD_DIR/bin/cohort
cd "$work"

/usr/bin/python3 - <<'PY'
import h5py, numpy as np, torch
torch.manual_seed(0)
torch.jit.script(torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))).save("mlp.pt")
with h5py.File("x.h5", "w") as f:
    f["x"] = np.random.default_rng(0).standard_normal((2000, 8)).astype(np.float32)
PY
env -u SLURM_PROCID -u SLURM_NTASKS "$cohort" serve predict --model mlp.pt --input x.h5 --output one.h5 \
  --batch-size 50 --shard-rows 200 >/dev/null 2>&1 || fail "single-process prediction failed"

cat >"$work/job.sh" <<SCRIPT
#!/bin/bash
$cohort serve predict --model $work/mlp.pt --input $work/x.h5 --output $work/batch.h5 --batch-size 50 --shard-rows 200
srun -n2 --ntasks-per-node=1 $cohort serve predict --model $work/mlp.pt --input $work/x.h5 --output $work/two.h5 --batch-size 50 --shard-rows 200
SCRIPT
job=$(submit -N2 -n2 -o "$work/two.out" "$work/job.sh")
wait_until 120 "job $job to finish" "job_done $job"
expect_eq "$(job_state "$job")" COMPLETED "state of the 2-task prediction ($(cat two.out))"
expect_eq "$(grep -c 'predicted 5 shard(s)' two.out)" 2 "tasks that predicted their 5 of the 10 shards"
# The batch script has SLURM_PROCID=0 and SLURM_NTASKS=2 but is no step: one worker.
grep -q 'worker 0 of 1: predicted 10 shard(s)' two.out || fail "the batch script was not one worker: $(cat two.out)"

# Task 1 dies after 2 of its shards; the job's second step reruns both tasks.
cat >"$work/kill.sh" <<SCRIPT
#!/bin/bash
srun -n2 --ntasks-per-node=1 bash -c '[ "\$SLURM_PROCID" = 1 ] && export COHORT_PREDICT_KILL_AFTER_SHARDS=2; exec $cohort serve predict --model $work/mlp.pt --input $work/x.h5 --output $work/rerun.h5 --batch-size 50 --shard-rows 200'
echo "first step exit \$?"
ls $work/rerun.h5.parts | grep -c '^shard-' | sed 's/^/shards after the first step: /'
srun -n2 --ntasks-per-node=1 $cohort serve predict --model $work/mlp.pt --input $work/x.h5 --output $work/rerun.h5 --batch-size 50 --shard-rows 200
SCRIPT
job=$(submit -N2 -n2 -o "$work/rerun.out" "$work/kill.sh")
wait_until 120 "job $job to finish" "job_done $job"
expect_eq "$(job_state "$job")" COMPLETED "state of the killed-and-rerun prediction ($(cat rerun.out))"
grep -q 'first step exit [1-9]' rerun.out || fail "the step with a killed task did not fail: $(cat rerun.out)"
grep -q 'worker 1 of 2 (SLURM_PROCID/SLURM_NTASKS): predicted 3 shard(s).*2 of its shards were done before' rerun.out ||
  fail "the rerun did not redo only task 1's 3 unfinished shards: $(cat rerun.out)"
# Task 0 may or may not have finished its shards before Slurm ended the step; either way
# the second step predicts only what the first left.
after=$(grep -o 'shards after the first step: [0-9]*' rerun.out | grep -o '[0-9]*$')
# (a task that starts after the other wrote the output predicts nothing and says so).
redone=$(sed -n '/^first step exit/,$p' rerun.out | grep -o 'predicted [0-9]* shard(s)' | grep -o '[0-9]*' | paste -sd+)
redone=$((redone))
expect_eq "$redone" "$((10 - after))" "shards the second step predicted, with $after of 10 done by the first"

/usr/bin/python3 - <<'PY' || fail "predictions differ between one process, two tasks and a rerun"
import h5py
one, two, batch, rerun = (h5py.File(f"{n}.h5")["predictions"][()] for n in ("one", "two", "batch", "rerun"))
assert one.shape == (2000, 4) and one.tobytes() == two.tobytes() == batch.tobytes() == rerun.tobytes()
PY
