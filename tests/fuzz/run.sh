#!/usr/bin/env bash
# One fuzzing run as a test: HARNESS over a fresh copy of SEEDS in WORKDIR (the source tree
# is never written), for COHORT_FUZZ_SECONDS (default 20). Fails on any crash, sanitizer
# report, leak, input slower than 10 s or using more than 2 GB; the input that did it is
# left in WORKDIR/artifacts/ (reproduce with: HARNESS WORKDIR/artifacts/crash-…).
#
#   run.sh HARNESS SEEDS WORKDIR
set -euo pipefail
harness=$1 seeds=$2 work=$3
seconds=${COHORT_FUZZ_SECONDS:-20}
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 1)); then
  echo "fuzz: COHORT_FUZZ_SECONDS='$seconds' is not a whole number of seconds" >&2
  exit 2
fi
rm -rf "$work/corpus" "$work/artifacts"
mkdir -p "$work/corpus" "$work/artifacts"
if [[ -d $seeds ]]; then cp -R "$seeds/." "$work/corpus/"; fi
# Leaks that HDF5 makes inside its own failing calls are not the harnesses' to find.
export LSAN_OPTIONS="suppressions=$(dirname "$0")/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
# libFuzzer's own clock ends the run; timeout(1) only ends a run stuck outside any input.
exec timeout --kill-after=30 $((seconds + 300)) "$harness" -max_total_time="$seconds" -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus"
