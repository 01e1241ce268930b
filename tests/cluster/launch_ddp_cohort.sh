# A PyTorch DDP run on cohort's torch.distributed backend (2 nodes x 2 ranks) under sbatch +
# cohort launch, its ranks MPI's through Slurm's pmix plugin, or with COHORT_TEST_BOOTSTRAP=tcp
# started without MPI, as torchrun starts them, meeting through torch's store and reducing
# over TCP between the nodes: kill -9 of one rank tears the gang down, and the relaunch
# resumes from the last checkpoint.
source "$(dirname "$0")/lib.sh"
require_cluster
cohort=$COHORT_BUILD_DIR/bin/cohort
example=$COHORT_SOURCE_DIR/examples/ddp_train.py
bootstrap=${COHORT_TEST_BOOTSTRAP:-mpi}
mpi_type=$([[ $bootstrap == mpi ]] && echo pmix || echo none)
cd "$work"

printf '#!/bin/bash\nexport SLURM_MPI_TYPE=%q PYTHONPATH=%q\nexec %q launch --max-restarts 1 -- /usr/bin/python3 %q --backend cohort --steps 30 --checkpoint-every 4 --step-time 0.2 --ckpt-dir %q --pid-dir %q\n' \
  "$mpi_type" "$COHORT_BUILD_DIR/python" "$cohort" "$example" "$work/ddp.ckpt" "$work/ddp.pids" >"$work/ddp.sh"
job=$(submit -N2 --ntasks-per-node=2 -o "$work/ddp.out" "$work/ddp.sh")

# Generous: on a machine just started, the ranks' first import of PyTorch reads its
# libraries from a cold disk.
wait_until 300 "a first checkpoint" "[[ -e $work/ddp.ckpt/latest && -s $work/ddp.pids/rank-3.restart-0 ]]"
kill -KILL "$(cat "$work/ddp.pids/rank-3.restart-0")" || fail "could not kill rank 3"
wait_until 300 "job $job to finish" "job_done $job"
expect_eq "$(job_state "$job")" COMPLETED "state after a kill and a restart ($(tail -20 ddp.out))"
grep -q 'rank 3 (node2) killed by SIGKILL first; gang torn down in' ddp.out || fail "no teardown line: $(cat ddp.out)"
expect_eq "$(grep -o 'rank [0-9]: resumed from step [0-9]* (restart 1)' ddp.out | wc -l)" 4 \
  "ranks that resumed from the checkpoint with restart count 1"
expect_eq "$(grep -c 'finished 30 steps' ddp.out)" 4 "ranks that finished training"
expect_eq "$(grep -c "cohort backend, ranks met over $bootstrap" ddp.out)" 8 "ranks that met over $bootstrap, in both attempts"
