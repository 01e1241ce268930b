# cohort launch in a batch job keeps its ranks' status files under $COHORT_RUN_DIR, or under
# the user's home without it, and never in the submit directory (often a source tree); the
# directory is gone once the job has ended.
source "$(dirname "$0")/lib.sh"
require_cluster
cohort=$COHORT_BUILD_DIR/bin/cohort
cd "$work"

printf '#!/bin/bash\nexec %q launch -- bash -c %q\n' "$cohort" 'echo "request $COHORT_CHECKPOINT_REQUEST"' >"$work/job.sh"

# run NAME: submits the job with the environment given before it, waits, and prints the
# directory the rank's checkpoint request file is in (the heartbeat file is node-local).
run() {
  local job
  job=$(submit -N1 -n1 -o "$work/$1.out" "$work/job.sh")
  wait_until 60 "job $1 ($job) to end" "job_done $job"
  expect_eq "$(job_state "$job")" COMPLETED "state of job $1 ($(cat "$work/$1.out"))"
  local file
  file=$(sed -n 's/.*request //p' "$work/$1.out")
  [[ $file == */job-"$job"/* ]] || fail "job $1: the checkpoint request file $file is not in a job-$job directory"
  echo "${file%%/job-"$job"/*}"
}

expect_eq "$(COHORT_RUN_DIR=$work/runs run given)" "$work/runs" "run directories' home with COHORT_RUN_DIR"
mkdir -p "$work/home"
expect_eq "$(unset COHORT_RUN_DIR SCRATCH; HOME=$work/home run home)" "$work/home/.cohort/runs" \
  "run directories' home without COHORT_RUN_DIR"
[[ ! -e $work/.cohort ]] || fail "cohort launch left $(ls -d "$work"/.cohort/*) in the submit directory"
expect_eq "$(find "$work/runs" "$work/home/.cohort/runs" -mindepth 1 | wc -l)" 0 "run directories left after the jobs ended"
