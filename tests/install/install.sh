#!/usr/bin/env bash
# An HPC centre's install, checked as its users meet it: `cmake --install` into a fresh
# prefix; `module load cohort` through Debian's Lmod puts the commands, the man pages and the
# Python package in reach; a program outside the tree builds against the installed C++
# libraries with find_package(cohort) and runs (an allreduce on 2 ranks, a checkpoint round
# trip); pkg-config finds the same libraries.
#
#   install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 source=$2
work=$(mktemp -d /tmp/cohort-install-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL install: $*" >&2; exit 1; }

prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "cmake --install failed"; }

lmod_init=/usr/share/lmod/lmod/init/bash
[[ -r $lmod_init ]] || fail "Lmod is not installed ($lmod_init): scripts/install-deps installs the lmod package"
# Lmod's init reads variables that may be unset.
set +u
# shellcheck disable=SC1090
source "$lmod_init"
module use "$prefix/share/modulefiles"
module load cohort || fail "module load cohort failed"
set -u
[[ $COHORT_ROOT == "$prefix" ]] || fail "COHORT_ROOT is '$COHORT_ROOT', not the prefix $prefix"
[[ $(command -v cohort) == "$prefix/bin/cohort" ]] || fail "cohort on PATH is '$(command -v cohort)', not $prefix/bin/cohort"
version=$(cohort --version) || fail "cohort --version failed"
[[ $version == "cohort "* ]] || fail "cohort --version said '$version'"
module help cohort 2>&1 | grep -q "find_package(cohort)" || fail "module help cohort does not say how to build against it"
module whatis cohort 2>&1 | grep -q "Version: " || fail "module whatis cohort has no version"
man -w cohort-sweep >/dev/null 2>&1 || fail "man cohort-sweep is not found through MANPATH ($MANPATH)"
if [[ -d $build/python ]]; then
  (cd "$work" && /usr/bin/python3 -c 'import cohort, sys; sys.exit(0 if cohort.__file__.startswith(sys.argv[1]) else 1)' "$prefix") ||
    fail "import cohort does not load the installed package"
fi
conf=$prefix/share/cohort/plugstack.conf.d/cohort.conf
grep -qx "optional $prefix/.*spank_cohort.so" "$conf" || fail "$conf does not name the installed plugin: $(grep -v '^#' "$conf")"
[[ -f $(grep -v '^#' "$conf" | awk '{print $2}') ]] || fail "the plugin $conf names is not there"

# A user's program, built with the module's CMAKE_PREFIX_PATH only.
cmake -S "$source/tests/install/consumer" -B "$work/consumer" -G Ninja >"$work/consumer.log" 2>&1 ||
  { cat "$work/consumer.log"; fail "find_package(cohort) failed"; }
cmake --build "$work/consumer" >>"$work/consumer.log" 2>&1 || { cat "$work/consumer.log"; fail "the consumer did not build"; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
out=$(mpirun -n 2 "$work/consumer/consumer" "$work/ckpt" 2>&1) || { echo "$out"; fail "the consumer failed"; }
[[ $out == *"consumer: ok (2 ranks)"* ]] || fail "the consumer said: $out"
cohort ckpt verify "$work/ckpt" >/dev/null || fail "cohort ckpt verify does not accept the consumer's checkpoint"

# The same program through pkg-config, for builds without CMake.
flags=$(pkg-config --cflags --libs cohort) || fail "pkg-config does not find cohort"
# shellcheck disable=SC2086
g++ -o "$work/consumer-pc" "$source/tests/install/consumer/main.cpp" $flags 2>"$work/pc.log" ||
  { cat "$work/pc.log"; fail "the consumer did not build with pkg-config's flags: $flags"; }
out=$(mpirun -n 1 "$work/consumer-pc" "$work/ckpt-pc" 2>&1) || { echo "$out"; fail "the pkg-config consumer failed"; }
[[ $out == *"consumer: ok (1 ranks)"* ]] || fail "the pkg-config consumer said: $out"
echo "install: ok ($version, prefix $prefix)"
