# The mini-cluster's GPUs with the cohort plugin. Without --topology the nodes' hwloc shows
# no GPU, as on a node whose hwloc lacks the GPUs' PCI information: README's
# `srun --gpus-per-node=2 --cohort` still places them, each task its own in Slurm's order,
# with a note. With --topology, slurm.conf's node line is the file's machine (sockets,
# cores, threads; or one CPU a core with --cpus of its core count, as the plugin's tests
# use it) and gres.conf gives each GPU the cores the file puts it next to; a --cpus that
# contradicts the file is refused.
source "$(dirname "$0")/lib.sh"
require_cluster

err=$work/srun.err
out=$(srun -N2 --ntasks-per-node=2 --gpus-per-node=2 --cohort -l bash -c 'echo "$SLURMD_NODENAME $CUDA_VISIBLE_DEVICES $COHORT_GPUS"' 2>"$err") ||
  fail "srun --cohort with the mini-cluster's GPUs failed: $(cat "$err")"
note "$out"
expect_eq "$(wc -l <<<"$out")" 4 "tasks that ran"
for node in $(awk '{print $2}' <<<"$out" | sort -u); do
  expect_eq "$(awk -v n="$node" '$2 == n {print $3}' <<<"$out" | sort -u | wc -l)" 2 "distinct GPUs of the tasks on $node"
done
awk '{ if ($3 !~ /^[0-9]+$/ || $3 != $4) exit 1 }' <<<"$out" || fail "a task's CUDA_VISIBLE_DEVICES is not its one GPU: $out"
grep -q "shows no GPUs, so they are given to the tasks in Slurm's order, without locality" "$err" ||
  fail "no note about GPUs without locality: $(cat "$err")"

# --topology: the DGX fixture, 2 sockets x 8 cores x 2 threads, GPUs 0-3 by package 0's
# cores and 4-7 by package 1's.
fixture=$COHORT_SOURCE_DIR/tests/topology/fixtures/dgx_a100_2s_8gpu_8ib.xml
mc=$COHORT_SOURCE_DIR/scripts/minicluster
refused=$(COHORT_MINICLUSTER_DIR=$work/refused "$mc" up --nodes 1 --cpus 96 --topology "$fixture" 2>&1) &&
  fail "--cpus 96 with a 32-CPU topology was accepted"
[[ $refused == *"--cpus 96: $fixture has 32 CPUs (2 sockets x 8 cores x 2 threads); leave --cpus out, or give 32 (every hardware thread) or 16 (one CPU a core)"* ]] ||
  fail "refusal said: $refused"
[[ ! -e $work/refused ]] || fail "a refused up left $work/refused behind"

own_cluster --nodes 1 --gpus-per-node 8 --topology "$fixture"
node=$(scontrol show node node1 -o)
for field in CPUTot=32 Sockets=2 CoresPerSocket=8 ThreadsPerCore=2; do
  [[ $node == *" $field "* ]] || fail "node1 lacks $field: $node"
done
gres=$COHORT_MINICLUSTER_DIR/etc/gres.conf
for g in 0 3; do grep -q "/nvidia$g Cores=0-7$" "$gres" || fail "GPU $g is not by cores 0-7: $(cat "$gres")"; done
for g in 4 7; do grep -q "/nvidia$g Cores=8-15$" "$gres" || fail "GPU $g is not by cores 8-15: $(cat "$gres")"; done
# Slurm takes the GPUs' cores as they are: a task bound to its GPU's cores runs.
out=$(srun -N1 -n1 --gpus=1 --gres-flags=enforce-binding bash -c 'echo $CUDA_VISIBLE_DEVICES') || fail "srun with a GPU failed"
[[ $out =~ ^[0-7]$ ]] || fail "a one-GPU task got CUDA_VISIBLE_DEVICES='$out'"
