#!/bin/sh
# plain_ranks.sh N COMMAND [ARG...]: runs N copies of COMMAND side by side as torchrun or
# `cohort launch` without MPI start ranks, each knowing only the launch contract; fails when
# any copy fails.
set -u
n=$1
shift
pids=""
r=0
while [ "$r" -lt "$n" ]; do
  RANK=$r WORLD_SIZE=$n LOCAL_RANK=$r LOCAL_WORLD_SIZE=$n GROUP_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 "$@" &
  pids="$pids $!"
  r=$((r + 1))
done
rc=0
for pid in $pids; do
  wait "$pid" || rc=1
done
exit $rc
