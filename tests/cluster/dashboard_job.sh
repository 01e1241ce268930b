# A launch on two nodes whose rank 1 fails once, shown by `cohort dashboard` as a user
# sees it: its job id, both attempts with why the first ended, each rank's node and state,
# and each rank's log tail, asked over HTTP from the dashboard's API.
source "$(dirname "$0")/lib.sh"
require_cluster
cohort=$COHORT_BUILD_DIR/bin/cohort
cd "$work"
export COHORT_LINEAGE=$work/lineage.db
unset COHORT_LINEAGE_EXECUTION COHORT_LINEAGE_SPOOL

# Rank 1 fails its first attempt only once rank 0's line is in rank 0's log: the gang's
# stop would otherwise end rank 0 before it printed.
program='echo "<b>rank $RANK</b> attempt $COHORT_RESTART_COUNT"
[[ $COHORT_RESTART_COUNT != 0 || $RANK != 1 ]] && exit 0
timeout 60 bash -c "until grep -q attempt \"\$1\"; do sleep 0.1; done" - "$RANK0_LOG"
exit 3'
printf '#!/bin/bash\nexport RANK0_LOG=%q\nexec %q launch --max-restarts 1 --run-dir %q --output-dir %q -- bash -c %q\n' \
  "$work/logs/rank-0.log" "$cohort" "$work/run" "$work/logs" "$program" >"$work/job.sh"
job=$(submit -N2 -n2 --ntasks-per-node=1 -o "$work/job.out" "$work/job.sh")
wait_until 120 "the launch job $job to end" "job_done $job"
expect_eq "$(job_state "$job")" COMPLETED "state of the launch job ($(cat "$work/job.out"))"
# Each rank's log keeps both attempts: the restart appends.
for r in 0 1; do
  expect_eq "$(grep -c "^<b>rank $r</b> attempt [01]\$" "$work/logs/rank-$r.log")" 2 "attempts in rank $r's log"
done

"$cohort" dashboard --no-auth --port 0 --store "$work/lineage.db" >"$work/dashboard.out" 2>&1 &
dashboard=$!
at_exit 'kill $dashboard; wait $dashboard'
wait_until 30 "the dashboard to listen" "grep -q 'listening on' '$work/dashboard.out'"
port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$work/dashboard.out")
python3 - "$port" "$job" <<'PY' || fail "the dashboard's launch is not the job's"
import json, sys, urllib.request
base, job = f"http://127.0.0.1:{sys.argv[1]}", sys.argv[2]
get = lambda path: urllib.request.urlopen(base + path, timeout=60).read().decode()
(launch,) = json.loads(get("/api/jobs"))["launches"]
j = json.loads(get(f"/api/jobs/{launch['id']}"))
assert j["properties"]["job_id"] == job, j["properties"]
first, second = j["attempts"]
assert "rank 1" in first["why_ended"] and "exited with 3" in first["why_ended"], first
assert [r["state"] for r in second["ranks"]] == ["exited with 0"] * 2, second
assert len({r["host"] for r in second["ranks"]}) == 2, second  # one rank a node
assert all("<b>rank %d</b> attempt 1" % t["rank"] in t["tail"] for t in j["logs"]), j["logs"]
page = get(f"/jobs/{launch['id']}")
assert "&lt;b&gt;rank 1&lt;/b&gt; attempt 1" in page and "<b>rank" not in page, page
PY
