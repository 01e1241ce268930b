# Sourced by scripts/test and its own test: what a ctest run's output says.
#   ctest_counts LOG   prints "PASSED FAILED SKIPPED" for the ctest output in LOG
# ctest's "N% tests passed" counts a skipped test as passed; here a skip is a test that
# did not run, never a pass and never a way to hide a failure.
ctest_counts() {
  local log=$1 line total=0 failed=0 skipped
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1 || true)
  if [[ -n $line ]]; then
    failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
    total=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
  fi
  # Listed under "The following tests did not run:", one a line: "  12 - name (Skipped)".
  skipped=$(grep -cE '^[[:space:]]+[0-9]+ - .* \((Skipped|Disabled)\)$' "$log" || true)
  echo "$((total - failed - skipped)) $failed $skipped"
}
