# Local mode runs a PyTorchJob whose replicas run torchrun: two Workers with nprocPerNode 2
# are a world of 4, first with torchrun's static rendezvous at the first replica, then
# with elasticPolicy's c10d rendezvous; every process's all_reduce gives the world's sum.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# torchrun leaves a log folder (torchelastic_*) in TMPDIR at every start: here, in $work.
export TMPDIR=$work
program=$COHORT_SOURCE_DIR/tests/launcher/fixtures/torchrun_allreduce.py
# Debian's torchrun needs a mend to start under Python 3.11 (see its file).
export PYTHONPATH=$COHORT_SOURCE_DIR/tests/support/torchrun_fix
for policy in "" "elasticPolicy: {minReplicas: 1, maxReplicas: 2, rdzvBackend: c10d}"; do
  cat >"$work/job.yaml" <<YAML
kind: PyTorchJob
metadata: {name: torchrun}
spec:
  nprocPerNode: 2
  $policy
  pytorchReplicaSpecs:
    Worker: {replicas: 2, command: [/usr/bin/python3, -m, torch.distributed.run, $program]}
YAML
  out=$(SLURM_JOB_ID= "$COHORT_BIN" launch --local --no-bind --spec "$work/job.yaml" 2>&1) ||
    { echo "launch failed (${policy:-static}): $out" >&2; exit 1; }
  for rank in 0 1 2 3; do
    grep -q "rank $rank of 4: sum 10 (expected 10)" <<<"$out" ||
      { echo "rank $rank did not all_reduce in a world of 4 (${policy:-static}): $out" >&2; exit 1; }
  done
done

# Kubeflow's elastic echo example as published, its program made a path here: two
# Workers, a process each, meet in one world of 2.
kubeflow=$COHORT_SOURCE_DIR/tests/launcher/fixtures/kubeflow
mkdir -p "$work/bin" && ln -s /usr/bin/python3 "$work/bin/python"
sed "s#\./echo\.py#$kubeflow/echo.py#" "$kubeflow/elastic-echo.yaml" >"$work/echo.yaml"
out=$(PATH="$work/bin:$PATH" SLURM_JOB_ID= "$COHORT_BIN" launch --local --no-bind --spec "$work/echo.yaml" 2>&1) ||
  { echo "elastic-echo.yaml failed: $out" >&2; exit 1; }
for rank in 0 1; do
  grep -q "rank=$rank, world_size = 2\$" <<<"$out" || { echo "echo.py rank $rank not in a world of 2: $out" >&2; exit 1; }
done
