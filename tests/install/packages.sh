#!/usr/bin/env bash
# The three .deb packages `cpack` makes, checked with dpkg-deb as an admin would before
# installing them: names, dependencies, and that each holds its part of the layout at
# Debian's paths (the plugin in Slurm's PluginDir, the Python package where python3 looks).
#
#   packages.sh BUILD_DIR
set -euo pipefail
build=$1
work=$(mktemp -d /tmp/cohort-packages-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL packages: $*" >&2; exit 1; }

(cd "$build" && cpack -G DEB -B "$work" >"$work/cpack.log" 2>&1) || { tail -30 "$work/cpack.log"; fail "cpack -G DEB failed"; }
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
deb() { echo "$work/$1_${version}_amd64.deb"; }
for p in cohort cohort-slurm-plugin cohort-dev; do
  [[ -f $(deb "$p") ]] || fail "no package $p: $(ls "$work")"
  [[ $(dpkg-deb --field "$(deb "$p")" Package) == "$p" ]] || fail "$p's control file names another package"
done
has() {  # has PACKAGE PATH: the package holds PATH
  dpkg-deb --contents "$(deb "$1")" | awk '{print $6}' | grep -qx "\.$2" || fail "$1 does not hold $2"
}
has cohort /usr/bin/cohort
has cohort /usr/share/man/man1/cohort-sweep.1
has cohort "/usr/share/modulefiles/cohort/$version.lua"
has cohort /usr/share/cohort/sbatch/ddp.sbatch
if [[ -d $build/python ]]; then has cohort /usr/lib/python3/dist-packages/cohort/__init__.py; fi
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
has cohort-slurm-plugin "/usr/lib/$arch/slurm-wlm/spank_cohort.so"
has cohort-slurm-plugin /usr/share/cohort/plugstack.conf.d/cohort.conf
dpkg-deb --fsys-tarfile "$(deb cohort-slurm-plugin)" | tar -xO ./usr/share/cohort/plugstack.conf.d/cohort.conf |
  grep -qx "optional /usr/lib/$arch/slurm-wlm/spank_cohort.so" || fail "the plugstack line does not name the packaged plugin"
has cohort-dev /usr/include/cohort/collectives/communicator.hpp
has cohort-dev /usr/include/cohort/common/version.hpp
has cohort-dev /usr/lib/cmake/cohort/cohortConfig.cmake
dpkg-deb --contents "$(deb cohort-dev)" | grep -q "pkgconfig/cohort.pc" || fail "cohort-dev holds no pkg-config file"
depends=$(dpkg-deb --field "$(deb cohort)" Depends)
[[ $depends == *libhdf5-openmpi* && $depends == *libopenmpi* ]] || fail "cohort's dependencies miss HDF5 or MPI: $depends"
[[ $(dpkg-deb --field "$(deb cohort-dev)" Depends) == *"cohort (= $version)"* ]] || fail "cohort-dev does not depend on cohort $version"
echo "packages: ok ($(cd "$work" && ls ./*.deb | tr '\n' ' '))"
