#!/usr/bin/env bash
# Every executable and the SPANK plugin are built hardened: a stack protector, fortified
# libc calls (optimised builds without sanitizers), and relocations resolved at load and
# then made read-only. The commands run as root and the plugin inside slurmstepd.
#
#   hardening.sh BUILD_DIR FORTIFY(0|1)
set -euo pipefail
build=$1 fortify=$2
status=0
fail() { echo "hardening: $1" >&2; status=1; }

shopt -s nullglob
files=("$build"/bin/cohort "$build"/bin/cohort-* "$build"/lib/spank_cohort.so)
((${#files[@]} >= 2)) || { echo "hardening: nothing built under $build" >&2; exit 1; }
for f in "${files[@]}"; do
  [[ -f $f ]] || continue
  dynamic=$(readelf -d "$f")
  grep -Eq '\(FLAGS\).*BIND_NOW|\(FLAGS_1\).*NOW' <<<"$dynamic" || fail "$f: not linked with -z now (BIND_NOW)"
  readelf -lW "$f" | grep -q 'GNU_RELRO' || fail "$f: no RELRO segment (-z relro)"
  symbols=$(readelf --dyn-syms -W "$f")
  grep -q '__stack_chk_fail' <<<"$symbols" || fail "$f: no stack protector (__stack_chk_fail)"
  if ((fortify)); then
    grep -Eq '__[a-z_]+_chk(@|$| )' <<<"$symbols" || fail "$f: no fortified libc calls (__*_chk)"
  fi
done
exit $status
