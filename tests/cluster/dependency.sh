# --dependency=afterok orders jobs: the dependent waits for its predecessor's success,
# and never runs after a failure.
source "$(dirname "$0")/lib.sh"
require_cluster

cat >"$work/first.sh" <<SCRIPT
#!/bin/bash
until [ -e "$work/release" ]; do sleep 0.1; done
echo done >"$work/first.done"
exit "\$(cat "$work/release")"
SCRIPT
cat >"$work/second.sh" <<SCRIPT
#!/bin/bash
# Records whether its predecessor had finished when it began.
if [ -e "$work/first.done" ]; then echo after >"$work/second.out"; else echo before >"$work/second.out"; fi
SCRIPT

first=$(submit -n1 -o /dev/null "$work/first.sh")
second=$(submit -n1 -o /dev/null --dependency=afterok:"$first" "$work/second.sh")
wait_until 30 "job $first to start" '[[ $(job_state $first) == RUNNING ]]'
expect_eq "$(job_field "$second" Reason)" Dependency "reason job $second waits"
echo 0 >"$work/release"
wait_until 30 "job $second to finish" 'job_done $second'
expect_eq "$(job_state "$second")" COMPLETED "state of the dependent job"
expect_eq "$(cat "$work/second.out")" after "when the dependent job ran"

# A failed predecessor: the dependent never starts.
rm -f "$work/release" "$work/first.done" "$work/second.out"
first=$(submit -n1 -o /dev/null "$work/first.sh")
second=$(submit -n1 -o /dev/null --dependency=afterok:"$first" "$work/second.sh")
echo 3 >"$work/release"
wait_until 30 "job $first to fail" 'job_done $first'
expect_eq "$(job_state "$first")" FAILED "state of the failing predecessor"
wait_until 30 "job $second to be marked never satisfiable" \
  '[[ $(job_field $second Reason) == DependencyNeverSatisfied ]]'
expect_eq "$(job_state "$second")" PENDING "state of the dependent job"
[[ ! -e $work/second.out ]] || fail "the dependent job ran after its predecessor failed"
