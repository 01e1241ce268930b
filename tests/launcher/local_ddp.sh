# Local mode runs the PyTorch DDP example with 2 ranks, as torchrun --standalone would.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=$(SLURM_JOB_ID= PYTHONPATH=$COHORT_PYTHON_DIR "$COHORT_BIN" launch --local --nproc 2 -- /usr/bin/python3 \
  "$COHORT_SOURCE_DIR/examples/ddp_train.py" --steps 6 --ckpt-dir "$work/ckpt" 2>&1)
grep -q '^0: rank 0: finished 6 steps' <<<"$out" || { echo "rank 0 did not finish: $out" >&2; exit 1; }
grep -q '^1: rank 1: finished 6 steps' <<<"$out" || { echo "rank 1 did not finish: $out" >&2; exit 1; }
[[ $(cat "$work/ckpt/latest" 2>/dev/null) == step-00000006 ]] || { echo "no checkpoint of step 6 committed: $(ls -a "$work/ckpt")" >&2; exit 1; }
