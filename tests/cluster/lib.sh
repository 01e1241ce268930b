# Shared by the cluster tests: sourced, not run.
#   fail MSG            end the test with MSG
#   expect_eq A B MSG   fail unless A == B
#   submit ARGS...      sbatch --parsable ARGS, remembering the job for cleanup
#   wait_until SECS DESCRIPTION CONDITION   poll CONDITION (a shell expression, evaluated
#                                           anew each time) until it holds
#   job_state JOBID     the job's state as scontrol reports it
# Every test gets $work, a fresh directory on the shared filesystem, removed on exit
# together with any job it submitted.
set -euo pipefail

test_name=$(basename "$0" .sh)
fail() { echo "FAIL $test_name: $*" >&2; exit 1; }
expect_eq() { [[ "$1" == "$2" ]] || fail "$3: expected '$2', got '$1'"; }
note() { echo "$test_name: $*"; }

require_cluster() {
  [[ -n ${SLURM_CONF:-} && -f $SLURM_CONF ]] ||
    fail "no mini-cluster: run these through scripts/test (or: scripts/minicluster up && eval \"\$(scripts/minicluster env)\")"
  sinfo -h >/dev/null || fail "the mini-cluster does not answer (sinfo failed)"
}

submitted=()
submit() {
  local id
  id=$(sbatch --parsable "$@") || fail "sbatch $* failed"
  id=${id%%;*}
  submitted+=("$id")
  echo "$id"
}

# at_exit COMMAND: run COMMAND when the test ends, before the shared cleanup, without
# changing the test's exit status.
exit_hooks=()
at_exit() { exit_hooks+=("$1"); }

cleanup() {
  local rc=$?
  local hook
  for hook in "${exit_hooks[@]+"${exit_hooks[@]}"}"; do eval "$hook" || true; done
  ((${#submitted[@]})) && scancel "${submitted[@]}" 2>/dev/null || true
  [[ -n ${work:-} && -d $work ]] && rm -rf -- "$work"
  exit "$rc"
}
trap cleanup EXIT

# The work directory lives under /tmp, which every emulated node shares with us.
work=$(mktemp -d /tmp/cohort-cluster-test.XXXXXX)
chmod 755 "$work"

wait_until() {  # seconds description condition
  local limit=$1 what=$2 condition=$3
  local deadline=$((SECONDS + limit))
  until eval "$condition"; do
    ((SECONDS < deadline)) || fail "timed out after ${limit}s waiting for $what"
    sleep 0.2
  done
}

job_state() { scontrol show job "$1" -o 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -1 | cut -d= -f2; }
job_field() { scontrol show job "$1" -o 2>/dev/null | tr ' ' '\n' | grep "^$2=" | head -1 | cut -d= -f2-; }
job_done() { case $(job_state "$1") in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) return 0 ;; *) return 1 ;; esac; }
count_files() { compgen -G "$1" | wc -l; }
