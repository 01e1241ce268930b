#!/usr/bin/env bash
# bench/gpu-check.sh — on a machine with an NVIDIA GPU: build cohort's NCCL backend, run the
# `gpu`-labelled tests, and run `cohort bench collectives` on device buffers.
#
#   OUT=/tmp/gpu-check bash bench/gpu-check.sh
#
# Logs go to $OUT (default ./gpu-check-out): summary.txt first, then one log per step.
# Expects CUDA and NCCL under $CUDA_HOME (default /usr/local/cuda), Open MPI and
# Boost.Program_options. When the other Debian development packages of a full cohort build
# are missing (hwloc, HDF5, UCX, Slurm), CMake cannot configure the whole project; the script
# says which are missing and builds the collectives component alone with mpicxx, which needs
# only MPI, CUDA, NCCL, Boost.Program_options and RapidJSON's headers (and GoogleTest for the
# tests). Where the machine lacks the last two, copy them from a Debian machine
# (/usr/include/rapidjson, libboost_program_options.so.*) and name them in CPATH,
# LIBRARY_PATH and LD_LIBRARY_PATH.
# GPU_CHECK_MODE=direct takes that path even when CMake could configure; JOBS (16), BUILD
# ($SRC/build-gpu) and STEP_TIMEOUT (300 s per step) adjust it.
set -u

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$PWD/gpu-check-out}
BUILD=${BUILD:-$SRC/build-gpu}
CUDA=${CUDA_HOME:-/usr/local/cuda}
JOBS=${JOBS:-16}
STEP_TIMEOUT=${STEP_TIMEOUT:-300}
mkdir -p "$OUT" "$BUILD"
: > "$OUT/summary.txt"

say() { echo "gpu-check: $*" | tee -a "$OUT/summary.txt"; }
# run NAME CMD...: runs CMD with a time limit, logs to $OUT/NAME.log, records the outcome.
run() {
  local name=$1; shift
  local start=$SECONDS
  timeout "$STEP_TIMEOUT" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  say "$name: exit $rc after $((SECONDS - start)) s (log: $name.log)"
  return $rc
}

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PATH="$CUDA/bin:$PATH"
export LD_LIBRARY_PATH="$CUDA/lib64:$CUDA/lib:${LD_LIBRARY_PATH:-}"

# ---- what this machine has ----------------------------------------------------------------
say "source $SRC, build $BUILD, logs $OUT"
{ nvidia-smi || echo "nvidia-smi: not found"; } > "$OUT/nvidia-smi.txt" 2>&1
GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
say "GPUs: ${GPUS:-0} ($(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | sort | uniq -c | xargs))"

missing_core=()   # without these nothing of the NCCL backend builds
missing_full=()   # without these only the full CMake configure fails
have() { command -v "$1" > /dev/null 2>&1; }
header() { # header NAME DIR...: true when NAME exists in one of DIRs
  local name=$1; shift
  for d in "$@"; do [ -e "$d/$name" ] && return 0; done
  return 1
}
have c++ || missing_core+=("a C++20 compiler (g++ 12 or later)")
have mpicxx || missing_core+=("Open MPI with its compiler wrapper (mpicxx; Debian: libopenmpi-dev)")
have mpirun || missing_core+=("mpirun (Debian: openmpi-bin)")
header cuda_runtime.h "$CUDA/include" || missing_core+=("CUDA runtime headers in $CUDA/include")
header nccl.h "$CUDA/include" /usr/include || missing_core+=("nccl.h in $CUDA/include or /usr/include")
{ compgen -G "$CUDA/lib*/libnccl.so*" || compgen -G "/usr/lib/*/libnccl.so*"; } > /dev/null ||
  missing_core+=("libnccl.so in $CUDA/lib64 or the system library path")
GTEST=yes
header gtest/gtest.h /usr/include /usr/local/include || { GTEST=no; missing_full+=("GoogleTest (libgtest-dev): the gpu tests cannot be built"); }
have cmake || missing_full+=("cmake 3.25 or later")
have ninja || missing_full+=("ninja (ninja-build)")
header rapidjson/reader.h /usr/include /usr/local/include $(tr : " " <<< "${CPATH:-}") ||
  missing_core+=("RapidJSON's headers, which the benchmark's JSON needs (rapidjson-dev, or a copy named in CPATH)")
header boost/program_options.hpp /usr/include ||
  missing_core+=("Boost.Program_options, which reads the benchmark's options (libboost-program-options-dev)")
pkg-config --exists 'hwloc >= 2.0' 2> /dev/null || missing_full+=("hwloc 2 (libhwloc-dev)")
pkg-config --exists ucx 2> /dev/null || missing_full+=("UCX (libucx-dev)")
header H5public.h /usr/include/hdf5/openmpi /usr/include || missing_full+=("parallel HDF5 (libhdf5-openmpi-dev)")
header slurm/spank.h /usr/include /usr/local/include || missing_full+=("Slurm headers (libslurm-dev)")

# Open MPI needs --oversubscribe to start more ranks than it counts slots; other MPIs refuse it.
OVERSUBSCRIBE=()
mpirun --version 2>&1 | grep -q "Open MPI" && OVERSUBSCRIBE=(--oversubscribe)
have mpirun && say "MPI: $(mpirun --version 2>&1 | head -1)"

for m in "${missing_core[@]+"${missing_core[@]}"}"; do say "MISSING (needed): $m"; done
for m in "${missing_full[@]+"${missing_full[@]}"}"; do say "missing (full build only): $m"; done
if [ ${#missing_core[@]} -gt 0 ]; then
  say "cannot build the NCCL backend without the packages above; stopping"
  exit 2
fi

# ---- build -----------------------------------------------------------------------------------
COHORT=()        # the command that runs `cohort bench` (its area follows)
GPU_TEST=""      # the gpu test binary, when ctest is not available
MODE=${GPU_CHECK_MODE:-cmake}   # GPU_CHECK_MODE=direct skips CMake
[ ${#missing_full[@]} -gt 0 ] && MODE=direct

if [ $MODE = cmake ]; then
  if run configure cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DCUDAToolkit_ROOT="$CUDA"; then
    if ! grep -q "NCCL backend on" "$OUT/configure.log"; then
      say "CMake did not find CUDA and NCCL under $CUDA (see configure.log); stopping"
      exit 2
    fi
    if run build cmake --build "$BUILD" -j "$JOBS" --target cohort collectives_gpu_test; then
      COHORT=("$BUILD/bin/cohort" bench)
    else
      MODE=direct
    fi
  else
    MODE=direct
  fi
fi

if [ $MODE = direct ]; then
  say "building the collectives component alone with mpicxx"
  D="$BUILD/direct"
  mkdir -p "$D"
  cat > "$D/bench_main.cpp" << 'CPP'
// `cohort bench collectives` alone, for machines that cannot build the whole cohort.
#include <iostream>
#include <string_view>
#include "collectives/bench.hpp"
#include "common/error.hpp"
int main(int argc, char** argv) {
  const int first = argc > 1 && std::string_view(argv[1]) == "collectives" ? 2 : 1;
  try {
    return cohort::collectives::bench_command(std::vector<std::string>(argv + first, argv + argc));
  } catch (const cohort::Error& e) {
    std::cerr << "cohort: bench: collectives: " << e.what() << "\n";
    return e.exit_code();
  }
}
CPP
  FLAGS=(-std=c++20 -O2 -g -Wall -Wextra -I"$SRC" -I"$CUDA/include" -DCOHORT_HAVE_NCCL=1
         -DOMPI_SKIP_MPICXX=1 -DMPICH_SKIP_MPICXX=1)
  LIBS=(-L"$CUDA/lib64" -L"$CUDA/lib" -Wl,-rpath,"$CUDA/lib64" -lnccl -lcudart -lboost_program_options -pthread)
  # The benchmark's report, options and JSON come from common/.
  LIB_SOURCES=("$SRC"/collectives/*.cpp "$SRC"/common/{bench,dtype,error,fd,json,options,process}.cpp)
  compile_all() { # every source at once; fails when any fails
    local pids=() f ok=0
    for f in "${LIB_SOURCES[@]}"; do
      # Named by folder too: collectives/bench.cpp and common/bench.cpp are two objects.
      mpicxx "${FLAGS[@]}" -c "$f" -o "$D/$(basename "$(dirname "$f")")-$(basename "$f" .cpp).o" & pids+=($!)
    done
    for f in "${pids[@]}"; do wait "$f" || ok=1; done
    return $ok
  }
  compile_all > "$OUT/build-direct-lib.log" 2>&1
  lib_rc=$?
  say "build-direct-lib: exit $lib_rc (log: build-direct-lib.log)"
  if [ $lib_rc -eq 0 ]; then
    OBJS=$(ls "$D"/*.o)
    run build-direct-bench mpicxx "${FLAGS[@]}" "$D/bench_main.cpp" $OBJS "${LIBS[@]}" -o "$D/cohort-bench" &&
      COHORT=("$D/cohort-bench")
    if [ $GTEST = yes ]; then
      run build-direct-test mpicxx "${FLAGS[@]}" "$SRC/tests/collectives/nccl_test.cpp" \
          "$SRC/tests/support/gtest_main.cpp" $OBJS -lgtest "${LIBS[@]}" -o "$D/collectives_gpu_test" &&
        GPU_TEST="$D/collectives_gpu_test"
    fi
  fi
fi

# ---- gpu tests ---------------------------------------------------------------------------------
# A failing test fails this script (after the benchmark has run); a run that could not check
# anything (exit 77: every test skipped, saying why) is reported as not run, never as passed.
tests_failed=0
if [ $MODE = cmake ] && [ ${#COHORT[@]} -gt 0 ]; then
  # Only the collectives' targets were built; gpu tests of other components show as not built.
  run ctest-gpu ctest --test-dir "$BUILD" -L gpu --output-on-failure || tests_failed=1
  grep -E "tests passed|Skipped|Failed|Not Run" "$OUT/ctest-gpu.log" | sed 's/^/gpu-check:   /' | tee -a "$OUT/summary.txt"
elif [ -n "$GPU_TEST" ]; then
  for ranks in 1 2; do
    run "gpu-test-${ranks}rank" mpirun -n "$ranks" "${OVERSUBSCRIBE[@]+"${OVERSUBSCRIBE[@]}"}" "$GPU_TEST" --gtest_color=no
    case $? in
      0) ;;
      77) say "gpu-test-${ranks}rank: NOT RUN: every test skipped (see the log for why)" ;;
      *) tests_failed=1 ;;
    esac
    grep -E "^\[  (PASSED|FAILED) \]|SKIPPED \] [0-9]+ tests?,|NOT CHECKED" "$OUT/gpu-test-${ranks}rank.log" |
      sort -u | sed 's/^/gpu-check:   /' | tee -a "$OUT/summary.txt"
  done
else
  say "gpu tests: not built"
  tests_failed=1
fi

# ---- NCCL benchmark ----------------------------------------------------------------------------
if [ ${#COHORT[@]} -eq 0 ]; then
  say "benchmark: not built; stopping"
  exit 1
fi
if [ "${GPUS:-0}" -eq 0 ]; then
  say "benchmark: no GPU visible (nvidia-smi -L lists none); stopping"
  exit 1
fi
bench() { # bench NAME RANKS ARGS...
  local name=$1 ranks=$2; shift 2
  run "$name" mpirun -n "$ranks" "${OVERSUBSCRIBE[@]+"${OVERSUBSCRIBE[@]}"}" "${COHORT[@]}" collectives --backend nccl "$@"
  grep -E "^# (Out of bounds|Avg bus)" "$OUT/$name.log" | sed "s/^/gpu-check:   $name /" | tee -a "$OUT/summary.txt"
}
bench nccl-allreduce-1gpu 1 --op allreduce --sizes 8:1G --iters 20 --warmup 5 --baseline nccl
bench nccl-allreduce-1gpu-json 1 --op allreduce --sizes 8:1G --iters 20 --warmup 5 --json
bench nccl-allreduce-bf16-1gpu 1 --op allreduce --dtype bf16 --sizes 8:1G
bench nccl-allgather-1gpu 1 --op allgather --sizes 8:256M
bench nccl-reduce_scatter-1gpu 1 --op reduce_scatter --sizes 8:256M
bench nccl-broadcast-1gpu 1 --op broadcast --sizes 8:256M
if [ "${GPUS:-0}" -ge 2 ]; then
  bench "nccl-allreduce-${GPUS}gpu" "$GPUS" --op allreduce --sizes 8:1G --baseline nccl
fi
# NCCL's own figures: above, `--baseline nccl` times NCCL's own calls on the same buffers in
# the same run (cohort's cost is the speedup column below 1); nccl-tests too, where installed.
if command -v all_reduce_perf > /dev/null 2>&1; then
  run nccl-tests-allreduce-1gpu all_reduce_perf -b 8 -e 1G -f 2 -g 1 -n 20 -w 5
else
  say "nccl-tests (all_reduce_perf) not installed: no NCCL-own comparison"
fi
if [ $tests_failed -ne 0 ]; then
  say "done: GPU TESTS FAILED (or were not built); see the logs above"
  exit 1
fi
say "done"
