#!/usr/bin/env bash
# Launch overhead of `cohort launch` against plain srun, in the same allocation:
#   start-up   time from the launch command to every rank running user code
#   teardown   time from one rank's failure to the last rank of the gang gone
# Needs a Slurm cluster (the mini-cluster will do):
#   scripts/minicluster up && eval "$(scripts/minicluster env)"
#   bench/launch_bench.sh [--nodes 2] [--ranks-per-node 2] [--repeat 7] [--cohort build/bin/cohort]
set -euo pipefail

nodes=2 per_node=2 repeat=7
cohort=$(cd "$(dirname "$0")/.." && pwd)/build/bin/cohort
while (($#)); do
  case $1 in
    --nodes) nodes=$2; shift 2 ;;
    --ranks-per-node) per_node=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --cohort) cohort=$2; shift 2 ;;
    -h | --help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "launch_bench: unknown option '$1'" >&2; exit 2 ;;
  esac
done
[[ -x $cohort ]] || { echo "launch_bench: $cohort is not built" >&2; exit 2; }
[[ -n ${SLURM_CONF:-} ]] || sinfo -h >/dev/null 2>&1 || { echo "launch_bench: no Slurm cluster (see --help)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/cohort-launch-bench.XXXXXX")
chmod 755 "$work"
job=""
trap '[[ -n $job ]] && scancel "$job" 2>/dev/null; [[ -n ${KEEP:-} ]] || rm -rf "$work"' EXIT

# One batch job does all the measuring, so both launchers see the same allocation.
cat >"$work/job.sh" <<SCRIPT
#!/bin/bash
set -e
cd "$work"
now() { date +%s%N; }
for i in \$(seq $repeat); do
  rm -f t.*; t0=\$(now); srun bash -c 'date +%s%N >"$work/t.\$SLURM_PROCID"'
  echo "srun \$(( \$(cat t.* | sort -n | tail -1) - t0 ))" >>results
  rm -f t.*; t0=\$(now); "$cohort" launch -- bash -c 'date +%s%N >"$work/t.\$RANK"' 2>/dev/null
  echo "cohort \$(( \$(cat t.* | sort -n | tail -1) - t0 ))" >>results
  "$cohort" launch -- bash -c '[ "\$RANK" = 1 ] && exit 3; exec sleep 600' 2>>teardown.log || true
done
SCRIPT
job=$(sbatch --parsable -N "$nodes" --ntasks-per-node="$per_node" -o "$work/job.out" "$work/job.sh")
while squeue -h -j "$job" 2>/dev/null | grep -q .; do sleep 0.5; done
[[ -s $work/results ]] || { echo "launch_bench: the job produced no results:" >&2; cat "$work/job.out" >&2; exit 1; }

median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
srun_ms=$(awk '$1=="srun" {print $2/1e6}' "$work/results" | median)
cohort_ms=$(awk '$1=="cohort" {print $2/1e6}' "$work/results" | median)
teardown_ms=$(grep -o 'gang torn down in [0-9.]* s' "$work/teardown.log" | awk '{print $5*1000}' | median)
ranks=$((nodes * per_node))
printf '%-34s %10s\n' "launch of $ranks ranks on $nodes nodes" "median ms"
printf '%-34s %10.1f\n' "plain srun: start to all running" "$srun_ms"
printf '%-34s %10.1f\n' "cohort launch: start to all running" "$cohort_ms"
printf '%-34s %10.2f\n' "ratio cohort/srun" "$(awk -v a="$cohort_ms" -v b="$srun_ms" 'BEGIN {print a/b}')"
printf '%-34s %10.1f\n' "cohort launch: failure to teardown" "$teardown_ms"
echo "($repeat runs each)"
