# Fake GPUs through gres: --gpus-per-task=1 gives each task of a node a distinct GPU,
# and --gpus-per-node hands a task the node's GPUs.
source "$(dirname "$0")/lib.sh"
require_cluster

out=$(srun -N2 --ntasks-per-node=2 --gpus-per-task=1 -l bash -c 'echo "$SLURMD_NODENAME gpus=$CUDA_VISIBLE_DEVICES"')
note "$out"
for node in $(cut -d' ' -f2 <<<"$out" | sort -u); do
  gpus=$(grep " $node " <<<"$out" | grep -o 'gpus=.*' | cut -d= -f2 | sort)
  expect_eq "$(wc -l <<<"$gpus")" 2 "tasks on $node"
  expect_eq "$(sort -u <<<"$gpus" | wc -l)" 2 "distinct GPUs on $node"
  while read -r g; do [[ $g =~ ^[0-9]+$ ]] || fail "task on $node got CUDA_VISIBLE_DEVICES='$g', expected one index"; done <<<"$gpus"
done

per_node=$(sinfo -h -N -o '%G' | head -1 | grep -o 'gpu:[0-9]*' | cut -d: -f2)
all=$(srun -N1 -n1 --gpus-per-node="$per_node" bash -c 'echo $CUDA_VISIBLE_DEVICES')
expect_eq "$all" "$(seq -s, 0 $((per_node - 1)))" "CUDA_VISIBLE_DEVICES with --gpus-per-node=$per_node"
