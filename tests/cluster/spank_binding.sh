# spank_cohort.so binding tasks for real: a mini-cluster of its own whose node topology is
# this machine's own (lstopo --of xml), so the plan's CPUs and NUMA nodes exist and the
# plugin applies them. Each task must run on exactly the CPUs of its plan, as the kernel
# reports them (taskset, /proc/self/status), with its memory placed on its NUMA nodes
# (numactl --show), no CPU shared between tasks, and the verbose line saying both applied.
source "$(dirname "$0")/lib.sh"

plugin=$COHORT_BUILD_DIR/lib/spank_cohort.so
[[ -f $plugin ]] || fail "no plugin at $plugin; build the spank_cohort target"
command -v numactl >/dev/null || fail "numactl is missing (scripts/install-deps installs it)"
cpus=$(nproc)
((cpus >= 2)) || fail "this test needs two CPUs to give two tasks one each; this machine has $cpus"
lstopo-no-graphics --of xml "$work/host.xml" 2>/dev/null || lstopo --of xml "$work/host.xml" ||
  fail "lstopo could not describe this machine"
unset COHORT_PLACEMENT COHORT_VERBOSE COHORT_GPUS_PER_RANK COHORT_THREADS COHORT_SMT COHORT_NIC
own_cluster --nodes 1 --cpus "$cpus" --gpus-per-node 0 --topology "$work/host.xml" --plugin "$plugin" \
  --plugin-args "default=off"

report='echo "$SLURM_PROCID cohort=$COHORT_CPUS numa=$COHORT_NUMA'
report+=' taskset=$(taskset -cp $$ | sed "s/.*: //")'
report+=' status=$(grep Cpus_allowed_list /proc/self/status | cut -f2)'
report+=' policy=$(numactl --show | sed -n "s/^policy: //p") membind=$(numactl --show | sed -n "s/^membind: //p" | tr -d " ")"'
err=$work/verbose.err
out=$(srun -N1 -n2 --cohort=verbose bash -c "$report" 2>"$err") || fail "srun --cohort failed: $(cat "$err")"
note "tasks:"$'\n'"$out"$'\n'"verbose:"$'\n'"$(cat "$err")"
expect_eq "$(wc -l <<<"$out")" 2 "tasks that reported"

expand() {  # a CPU list, one CPU a line
  local IFS=, part
  for part in $1; do
    if [[ $part == *-* ]]; then seq "${part%-*}" "${part#*-}"; else echo "$part"; fi
  done
}
all=""
while read -r rank cohort numa taskset status policy membind; do
  cohort=${cohort#cohort=} numa=${numa#numa=} taskset=${taskset#taskset=} status=${status#status=}
  [[ -n $cohort ]] || fail "task $rank: no COHORT_CPUS"
  expect_eq "$(expand "$taskset" | sort -n | tr '\n' ,)" "$(expand "$cohort" | sort -n | tr '\n' ,)" \
    "task $rank: CPUs the kernel runs it on (taskset) against its plan"
  expect_eq "$status" "$taskset" "task $rank: Cpus_allowed_list against taskset"
  # hwloc's non-strict binding: MPOL_PREFERRED_MANY where the kernel has it (memory comes
  # from the rank's nodes first and spills rather than failing), MPOL_BIND before that.
  [[ $policy == policy=bind || $policy == policy=preferred-many ]] ||
    fail "task $rank: memory policy '$policy', expected bind or preferred-many"
  expect_eq "$(expand "${membind#membind=}" | tr '\n' ,)" "$(expand "$numa" | tr '\n' ,)" \
    "task $rank: NUMA nodes its memory is bound to"
  all+=$(expand "$cohort")$'\n'
done <<<"$out"
given=$(grep -c . <<<"$all")
((given >= 2 && given <= cpus)) || fail "the two tasks were given $given CPUs on a machine of $cpus"
expect_eq "$(sort -n <<<"$all" | uniq -d | grep -c . || true)" 0 "CPUs given to both tasks"
expect_eq "$(grep -cE 'spank_cohort: node1 task [01] \(rank [01]\): .*CPU binding: applied; memory binding: applied$' "$err")" 2 \
  "verbose lines saying both bindings applied"
note "ok"
