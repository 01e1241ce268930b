# Shared by the cluster tests: sourced, not run.
#   fail MSG            end the test with MSG
#   expect_eq A B MSG   fail unless A == B
#   submit ARGS...      sbatch --parsable ARGS, remembering the job for cleanup
#   wait_until SECS DESCRIPTION CONDITION   poll CONDITION (a shell expression, evaluated
#                                           anew each time) until it holds
#   job_state JOBID     the job's state as scontrol reports it
# Every test gets $work, a fresh directory on the shared filesystem, removed on exit
# together with any job it submitted. require_cluster also waits for a whole, idle
# cluster, and a test whose jobs leave processes running in the nodes fails, naming them.
set -euo pipefail

test_name=$(basename "$0" .sh)
fail() { echo "FAIL $test_name: $*" >&2; exit 1; }
expect_eq() { [[ "$1" == "$2" ]] || fail "$3: expected '$2', got '$1'"; }
note() { echo "$test_name: $*"; }

require_cluster() {
  [[ -n ${SLURM_CONF:-} && -f $SLURM_CONF ]] ||
    fail "no mini-cluster: run these through scripts/test (or: scripts/minicluster up && eval \"\$(scripts/minicluster env)\")"
  sinfo -h >/dev/null || fail "the mini-cluster does not answer (sinfo failed)"
  suite_dir=${COHORT_MINICLUSTER_DIR:-}
  # Tests run one at a time, so a job still queued belongs to an earlier test that its
  # time limit ended before its own cleanup could run; so does a node left out of
  # service then. Both are cleared, after saying so: that test has failed already.
  local leftover
  leftover=$(squeue -h -o %i | tr '\n' ' ')
  if [[ -n $leftover ]]; then
    note "cancelling jobs an earlier test left: $leftover"
    # shellcheck disable=SC2086
    scancel $leftover 2>/dev/null || true
  fi
  local deadline=$((SECONDS + 60))
  until [[ -z $(squeue -h -o %i) && -z $(sinfo -h -N -t completing -o %N) ]]; do
    ((SECONDS < deadline)) || { cluster_status >&2; fail "jobs of an earlier test did not end within 60 s"; }
    sleep 0.5
  done
  if [[ -n $(unusable_nodes) ]]; then
    cluster_note "nodes out of service before the test, put back into service:" "$(cluster_status 2>&1)"
    resume_nodes
    deadline=$((SECONDS + 30))
    while [[ -n $(unusable_nodes) ]]; do
      ((SECONDS < deadline)) || fail "nodes still out of service: $(unusable_nodes | tr '\n' ';')"
      sleep 0.5
    done
  fi
  suite_conf=$SLURM_CONF
}

# Nodes drained, down or not responding, a line each: "NAME STATE REASON".
unusable_nodes() {
  sinfo -h -N -o '%N %T %E' 2>/dev/null | awk '$2 !~ /^(idle|allocated|mixed|completing|reserved)$/'
}
cluster_status() { COHORT_MINICLUSTER_DIR=${suite_dir:-} "$COHORT_SOURCE_DIR/scripts/minicluster" status; }
cluster_procs() { [[ -z ${suite_dir:-} ]] || COHORT_MINICLUSTER_DIR=$suite_dir "$COHORT_SOURCE_DIR/scripts/minicluster" procs; }

# After a test: its jobs gone and nothing of theirs still running in the nodes, or the
# test fails, naming what is left. A node its jobs left drained or down (a slow machine
# can make Slurm give up on a step being killed) is put back into service so that the
# tests after this one start from a whole cluster; scripts/test prints that note at the
# end of the cluster tests, passed or not.
check_cluster_after() {
  # Longer than the mini-cluster's UnkillableStepTimeout, so that Slurm's own verdict on a
  # step being killed comes first.
  local ids deadline=$((SECONDS + 150))
  ids=$(IFS=,; echo "${submitted[*]}")
  while [[ -n $ids && -n $(squeue -h -j "$ids" -o %i 2>/dev/null) ]] && ((SECONDS < deadline)); do sleep 0.5; done
  local left
  deadline=$((SECONDS + 30))
  while left=$(cluster_procs) && [[ -n $left ]] && ((SECONDS < deadline)); do sleep 0.5; done
  local broken
  broken=$(unusable_nodes)
  if [[ -n $broken ]]; then
    cluster_note "nodes out of service after the test, put back into service: $(tr '\n' ';' <<<"$broken")" \
      "$(cluster_status 2>&1)"
    resume_nodes
  fi
  [[ -z $left ]] && return 0
  echo "FAIL $test_name: left processes running in the mini-cluster's nodes:" >&2
  echo "$left" >&2
  cluster_status >&2
  return 1
}

# A note for scripts/test to print after the cluster tests, whatever their outcome.
cluster_note() {
  [[ -n ${suite_dir:-} && -d $suite_dir ]] || return 0
  printf '%s: %s\n' "$test_name" "$*" >>"$suite_dir/notes"
}

resume_nodes() {
  local node
  for node in $(unusable_nodes | awk '{print $1}'); do
    scontrol update NodeName="$node" State=RESUME 2>/dev/null || true
  done
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

# own_cluster ARGS...: a mini-cluster of the test's own beside the suite's
# (`scripts/minicluster up ARGS`), in $work/cluster; Slurm's commands point at it from
# here on, and it is taken down when the test ends.
own_cluster() {
  mc=$COHORT_SOURCE_DIR/scripts/minicluster
  export COHORT_MINICLUSTER_DIR=$work/cluster
  unset SLURM_CONF
  at_exit '"$mc" down >/dev/null 2>&1'
  "$mc" up "$@" >/dev/null 2>&1 || fail "could not bring up a cluster of the test's own (minicluster up $*)"
  eval "$("$mc" env)"
}

# plugin_cluster: own_cluster for the SPANK plugin's tests: two nodes that the DGX fixture
# describes (16 Slurm cores a node, so that Slurm's core i is the fixture's), loading this
# build's plugin with default=off, and none of the user's COHORT_* settings.
plugin_cluster() {
  plugin=$COHORT_BUILD_DIR/lib/spank_cohort.so
  fixture=$COHORT_SOURCE_DIR/tests/topology/fixtures/dgx_a100_2s_8gpu_8ib.xml
  [[ -f $plugin ]] || fail "no plugin at $plugin; build the spank_cohort target"
  unset COHORT_PLACEMENT COHORT_VERBOSE COHORT_GPUS_PER_RANK COHORT_THREADS COHORT_SMT COHORT_NIC
  own_cluster --nodes 2 --cpus 16 --gpus-per-node 8 --topology "$fixture" --plugin "$plugin" \
    --plugin-args "default=off"
}

cleanup() {
  local rc=$?
  local hook
  for hook in "${exit_hooks[@]+"${exit_hooks[@]}"}"; do eval "$hook" || true; done
  ((${#submitted[@]})) && scancel "${submitted[@]}" 2>/dev/null || true
  if [[ -n ${suite_conf:-} && -f $suite_conf ]]; then
    SLURM_CONF=$suite_conf check_cluster_after || rc=1
  fi
  [[ -n ${work:-} && -d $work ]] && rm -rf -- "$work"
  exit "$rc"
}
trap cleanup EXIT

# The work directory lives under /tmp, which every emulated node shares with us.
work=$(mktemp -d /tmp/cohort-cluster-test.XXXXXX)
chmod 755 "$work"

wait_until() {  # seconds description condition [command whose output a timeout shows]
  local limit=$1 what=$2 condition=$3 evidence=${4:-}
  local deadline=$((SECONDS + limit))
  until eval "$condition"; do
    ((SECONDS < deadline)) || fail "timed out after ${limit}s waiting for $what${evidence:+: $(eval "$evidence" 2>&1)}"
    sleep 0.2
  done
}

job_state() { scontrol show job "$1" -o 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -1 | cut -d= -f2; }
job_field() { scontrol show job "$1" -o 2>/dev/null | tr ' ' '\n' | grep "^$2=" | head -1 | cut -d= -f2-; }
job_done() { case $(job_state "$1") in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) return 0 ;; *) return 1 ;; esac; }
count_files() { compgen -G "$1" | wc -l; }
