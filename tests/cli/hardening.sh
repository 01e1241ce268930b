#!/usr/bin/env bash
# Every executable and the SPANK plugin are built hardened: a stack protector, fortified
# libc calls (optimised builds without sanitizers), and relocations resolved at load and
# then made read-only. The commands run as root and the plugin inside slurmstepd.
#
#   hardening.sh BUILD_DIR FORTIFY(0|1) COMPILER_ID
set -euo pipefail
build=$1 fortify=$2 compiler=$3
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
  # GCC fortifies the printf family, which every command uses; clang does not (it lacks
  # __builtin_va_arg_pack), so there only the flags below can be checked.
  if ((fortify)) && [[ $compiler == GNU ]]; then
    grep -Eq '__[a-z_]+_chk(@|$| )' <<<"$symbols" || fail "$f: no fortified libc calls (__*_chk)"
  fi
done

# Every object was compiled with the flags, not only those that happen to show it.
commands=$build/compile_commands.json
if [[ -f $commands ]]; then
  total=$(grep -c '"command"' "$commands" || true)
  protected=$(grep '"command"' "$commands" | grep -c -- '-fstack-protector-strong' || true)
  ((protected == total)) || fail "$((total - protected)) of $total objects compiled without -fstack-protector-strong"
  if ((fortify)); then
    fortified=$(grep '"command"' "$commands" | grep -c -- '-D_FORTIFY_SOURCE=2' || true)
    ((fortified == total)) || fail "$((total - fortified)) of $total objects compiled without -D_FORTIFY_SOURCE=2"
  fi
fi
exit $status
