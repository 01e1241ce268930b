# `cohort launch --local` starts ranks without MPI: a C++ program's Communicator joins them
# through the launch contract alone and allreduces host memory.
set -euo pipefail
out=$(SLURM_JOB_ID= "$COHORT_BIN" launch --local --nproc 3 -- "$PROBE" 2>&1) || { echo "launch failed: $out" >&2; exit 1; }
for rank in 0 1 2; do
  grep -q "^$rank: joined $rank 3 sum 6\$" <<<"$out" || { echo "rank $rank did not allreduce to 6: $out" >&2; exit 1; }
done
