# spank_cohort.so's options and configuration on a mini-cluster of its own: srun --help
# lists --cohort; bad settings are refused at submission, before any job exists;
# --cohort=off and default=off leave the environment exactly as Slurm makes it;
# COHORT_PLACEMENT=on asks like --cohort; `#SBATCH --cohort` places the srun steps but
# not the batch step; default=on places without asking; an unknown plugstack.conf
# argument stops srun and sbatch with a message naming it.
source "$(dirname "$0")/lib.sh"

plugin_cluster
plugstack=$COHORT_MINICLUSTER_DIR/etc/plugstack.conf
configured=$(cat "$plugstack")

srun --help 2>&1 | grep -q -- '--cohort\[=SETTINGS\] *\[cohort\]\|--cohort=SETTINGS *\[cohort\]' ||
  fail "srun --help does not list --cohort: $(srun --help 2>&1 | grep -A2 -- --cohort)"

jobs_known() { scontrol show jobs -o 2>/dev/null | grep -c '^JobId=' || true; }

refused() {  # expected-message command...
  local expected=$1 before err
  shift
  before=$(jobs_known)
  if err=$("$@" 2>&1); then fail "'$*' was accepted: $err"; fi
  grep -qF -- "$expected" <<<"$err" || fail "'$*' did not say '$expected': $err"
  expect_eq "$(jobs_known)" "$before" "jobs known after the refused '$*'"
}
refused "spank_cohort: --cohort=threads:0: threads must be 1..1024" srun --cohort=threads:0 true
refused "spank_cohort: --cohort=nic:far: nic must be nearest or all" sbatch --cohort=verbose,nic:far --wrap true
refused "spank_cohort: --cohort=gpus: unknown setting 'gpus' (accepted: on, off, verbose, gpus-per-rank:K" srun --cohort=gpus true
refused "spank_cohort: COHORT_THREADS=0: threads must be 1..1024" env COHORT_THREADS=0 srun --cohort true

# A bad setting only the step sees (given through --export, past srun's own check) fails
# every task with the reason, and srun with them: never a step that "succeeds" unrun.
if err=$(srun -N1 -w node1 -n2 --export=ALL,COHORT_THREADS=0 --cohort bash -c 'echo ran' 2>&1); then
  fail "a step whose settings the plugin refused succeeded: $err"
fi
! grep -q '^ran$' <<<"$err" || fail "a task ran although its settings were refused: $err"
expect_eq "$(grep -c 'spank_cohort: node1 task [01] (rank [01]): not started, placement failed: COHORT_THREADS=0: threads must be 1..1024' <<<"$err")" 2 \
  "tasks that failed naming the exported setting"

# GPUs come from what slurmstepd says about the step, never from the job's environment: a
# step without GPUs that exports SLURM_JOB_GPUS and SLURM_STEP_GPUS (here 2 KB of ranges
# that once cost slurmstepd a gigabyte) is planned without GPUs.
hostile=0-1048576
while ((${#hostile} < 2048)); do hostile+=,0-1048576; done
out=$(srun -N1 -w node1 -n1 --export=ALL,SLURM_JOB_GPUS=0-7,SLURM_STEP_GPUS=0-7 --cohort bash -c 'echo "gpus=$COHORT_GPUS cvd=${CUDA_VISIBLE_DEVICES-unset}"') ||
  fail "a step exporting GPU variables failed: $out"
expect_eq "$out" "gpus= cvd=unset" "GPUs of a step without GPUs that exported SLURM_JOB_GPUS=0-7"
out=$(srun -N1 -w node1 -n1 --export="ALL,SLURM_JOB_GPUS=$hostile" --cohort bash -c 'echo "gpus=$COHORT_GPUS"') ||
  fail "a step exporting 2 KB of GPU ranges failed: $out"
expect_eq "$out" "gpus=" "GPUs of a step that exported 2 KB of GPU ranges"
out=$(srun -N1 -w node1 -n1 --gpus-per-node=2 --export=ALL,SLURM_STEP_GPUS=0-7 --cohort bash -c 'echo "gpus=$COHORT_GPUS"') ||
  fail "a two-GPU step that exported SLURM_STEP_GPUS=0-7 failed: $out"
expect_eq "$out" "gpus=0,1" "GPUs of a two-GPU step that exported SLURM_STEP_GPUS=0-7"

# What Slurm alone gives, and what placement adds to it: exactly the contract's names.
ours="CUDA_DEVICE_ORDER COHORT_CPUS COHORT_GPUS COHORT_NICS COHORT_NUMA COHORT_RESTART_COUNT GROUP_RANK"
ours+=" LOCAL_RANK LOCAL_WORLD_SIZE MASTER_ADDR MASTER_PORT NCCL_IB_HCA OMP_NUM_THREADS RANK"
ours+=" TORCHELASTIC_RESTART_COUNT UCX_NET_DEVICES WORLD_SIZE"
# Values that differ from job to job, whoever places it.
per_job='^(SLURM_JOB_ID|SLURM_JOBID|SLURM_TASK_PID|SLURM_SRUN_COMM_PORT|SLURM_STEP_LAUNCHER_PORT|TMPDIR)='
task_env() { srun -N1 -w node1 -n1 --gpus-per-node=2 "$@" env | grep -Ev "$per_job" | sort; }
plain=$(task_env) || fail "plain srun failed"
[[ -n $plain ]] || fail "plain srun printed no environment"
expect_eq "$(task_env --cohort=off)" "$plain" "environment with --cohort=off"
expect_eq "$(task_env --cohort=off,verbose,threads:4)" "$plain" "environment with --cohort=off and other settings"
placed=$(task_env --cohort) || fail "srun --cohort failed"
added=$(comm -13 <(cut -d= -f1 <<<"$plain") <(cut -d= -f1 <<<"$placed") | tr '\n' ' ')
expect_eq "$added" "$(tr ' ' '\n' <<<"$ours" | sort | tr '\n' ' ')" "variables --cohort adds"
# One task, two GPUs: the task holds both.
grep -qx 'CUDA_VISIBLE_DEVICES=0,1' <<<"$placed" || fail "the task does not see its two GPUs: $(grep CUDA_VISIBLE <<<"$placed")"

# A variable asks as the option does; the option wins over it.
expect_eq "$(COHORT_PLACEMENT=on srun -N1 -w node1 -n1 bash -c 'echo ${RANK-unset}')" 0 "RANK with COHORT_PLACEMENT=on"
expect_eq "$(COHORT_PLACEMENT=on srun -N1 -w node1 -n1 --cohort=off bash -c 'echo ${RANK-unset}')" unset \
  "RANK with COHORT_PLACEMENT=on and --cohort=off"
expect_eq "$(COHORT_THREADS=3 srun -N1 -w node1 -n1 --cohort bash -c 'echo $OMP_NUM_THREADS')" 3 "OMP_NUM_THREADS from COHORT_THREADS"
expect_eq "$(COHORT_THREADS=3 srun -N1 -w node1 -n1 --cohort=threads:5 bash -c 'echo $OMP_NUM_THREADS')" 5 \
  "OMP_NUM_THREADS with COHORT_THREADS=3 and --cohort=threads:5"

# sbatch: the batch step is left alone, its srun steps are placed, and nothing leaks back.
cat >"$work/job.sh" <<'EOF'
#!/bin/bash
#SBATCH --cohort
#SBATCH -N2 --ntasks-per-node=2 --gpus-per-node=2
echo "batch ${RANK-unset} ${COHORT_CPUS-unset} ${MASTER_ADDR-unset} ${CUDA_VISIBLE_DEVICES-unset}"
srun bash -c 'echo "step $RANK $COHORT_GPUS $MASTER_ADDR"'
echo "after ${RANK-unset}"
EOF
job=$(submit -o "$work/job.out" "$work/job.sh")
wait_until 60 "batch job $job to finish" "job_done $job"
expect_eq "$(job_state "$job")" COMPLETED "batch job state ($(cat "$work/job.out"))"
expect_eq "$(grep '^batch ' "$work/job.out")" "batch unset unset unset 0,1" "the batch step's environment"
expect_eq "$(grep '^step ' "$work/job.out" | sort)" $'step 0 0 node1\nstep 1 1 node1\nstep 2 0 node1\nstep 3 1 node1' \
  "the srun step's ranks, GPUs and MASTER_ADDR"
expect_eq "$(grep '^after ' "$work/job.out")" "after unset" "the batch step after its srun step"

# The administrator's default. Each srun and slurmstepd reads plugstack.conf afresh.
echo "$configured" | sed 's/default=off/default=on/' >"$plugstack"
expect_eq "$(srun -N1 -w node1 -n2 bash -c 'echo ${RANK-unset}' | sort | tr '\n' ' ')" "0 1 " "RANK with default=on"
expect_eq "$(srun -N1 -w node1 -n1 --cohort=off bash -c 'echo ${RANK-unset}')" unset "RANK with default=on and --cohort=off"

echo "$configured bogus=1" >"$plugstack"
refused "spank_cohort: plugstack.conf: bogus=1: unknown argument 'bogus' (accepted: default=on|off, topology=FILE, port_base=N, port_range=N)" \
  srun -N1 -n1 true
refused "spank_cohort: plugstack.conf: bogus=1: unknown argument 'bogus'" sbatch --wrap true
echo "$configured" >"$plugstack"
