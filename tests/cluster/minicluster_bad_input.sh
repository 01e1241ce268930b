# Bad input to scripts/minicluster: a clear error, exit 2, and nothing started.
source "$(dirname "$0")/lib.sh"

mc=$COHORT_SOURCE_DIR/scripts/minicluster
export COHORT_MINICLUSTER_DIR=$work/cluster
bridges_before=$(ip -br link show type bridge | cut -d' ' -f1 | sort | tr '\n' ' ')

expect_refused() {  # expected-message args...
  local want=$1 out rc=0
  shift
  out=$("$mc" "$@" 2>&1) || rc=$?
  expect_eq "$rc" 2 "exit status of 'minicluster $*'"
  grep -qF -- "$want" <<<"$out" || fail "'minicluster $*' said '$out', expected it to mention '$want'"
  [[ ! -e $COHORT_MINICLUSTER_DIR ]] || fail "'minicluster $*' left $COHORT_MINICLUSTER_DIR behind"
  expect_eq "$(ip -br link show type bridge | cut -d' ' -f1 | sort | tr '\n' ' ')" "$bridges_before" \
    "bridges after 'minicluster $*'"
}

expect_refused "unknown verb 'launch'" launch
expect_refused "usage:"
expect_refused "unknown option '--node'" up --node 2
expect_refused "--nodes 0: must be a whole number 1..64" up --nodes 0
expect_refused "--nodes two" up --nodes two
expect_refused "--cpus needs a value" up --cpus
expect_refused "--gpus-per-node 99" up --gpus-per-node 99
expect_refused "--topology $work/missing.xml: no such readable file" up --topology "$work/missing.xml"
expect_refused "unexpected argument 'now'" down now

# Verbs that only look: harmless when nothing is up.
"$mc" down || fail "down with nothing up failed"
"$mc" status | grep -q "down" || fail "status with nothing up does not say down"
if "$mc" env >/dev/null 2>&1; then fail "env with nothing up succeeded"; fi
