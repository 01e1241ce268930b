# Every dependency comes from a Debian package and is found the standard way.
# scripts/install-deps installs them.
find_package(PkgConfig REQUIRED)

find_package(MPI REQUIRED COMPONENTS C)

# Serial and MPI HDF5 development packages coexist on Debian: ask for the parallel one.
set(HDF5_PREFER_PARALLEL TRUE)
find_package(HDF5 REQUIRED COMPONENTS C)
if(NOT HDF5_IS_PARALLEL)
  message(FATAL_ERROR "cohort: found a serial HDF5 (${HDF5_C_INCLUDE_DIRS}); checkpoints need "
                      "parallel HDF5: install libhdf5-openmpi-dev (scripts/install-deps)")
endif()

pkg_check_modules(HWLOC REQUIRED IMPORTED_TARGET hwloc>=2.0)
pkg_check_modules(UCX REQUIRED IMPORTED_TARGET ucx)
find_package(Boost 1.74 REQUIRED COMPONENTS program_options)
find_package(Slurm REQUIRED)
find_package(yaml-cpp REQUIRED)
# SHA-256 of pipeline tasks' fingerprints and artifacts (libssl-dev).
find_package(OpenSSL REQUIRED COMPONENTS Crypto)
# The lineage store is one SQLite file (libsqlite3-dev).
find_package(SQLite3 REQUIRED)

# RapidJSON reads and writes all JSON (common/json.hpp says why this library). Its package
# config names only the headers' folder, so the target is made here.
find_package(RapidJSON 1.1 REQUIRED)
if(NOT TARGET RapidJSON::RapidJSON)
  add_library(RapidJSON::RapidJSON INTERFACE IMPORTED)
  set_target_properties(RapidJSON::RapidJSON PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${RAPIDJSON_INCLUDE_DIRS}")
endif()

# CUDA and NCCL are optional: without them the NCCL backend is left out.
if(NOT DEFINED CUDAToolkit_ROOT AND EXISTS /usr/local/cuda)
  set(CUDAToolkit_ROOT /usr/local/cuda)
endif()
find_package(CUDAToolkit QUIET)
if(CUDAToolkit_FOUND)
  find_package(NCCL)
endif()
if(CUDAToolkit_FOUND AND NCCL_FOUND)
  set(COHORT_HAVE_NCCL ON)
  message(STATUS "cohort: NCCL backend on (CUDA ${CUDAToolkit_VERSION}, NCCL ${NCCL_VERSION})")
else()
  set(COHORT_HAVE_NCCL OFF)
  message(STATUS "cohort: CUDA toolkit or NCCL not found (looked in ${CUDAToolkit_ROOT}): "
                 "building without the NCCL backend")
endif()

# The Python package is optional: without Python's headers or pybind11 it is left out.
# Debian's own interpreter, the one python3-torch and python3-h5py serve, is the one built for.
if(NOT DEFINED Python_EXECUTABLE AND EXISTS /usr/bin/python3)
  set(Python_EXECUTABLE /usr/bin/python3)
endif()
find_package(Python 3.9 QUIET COMPONENTS Interpreter Development.Module)
if(Python_FOUND)
  find_package(pybind11 CONFIG QUIET)
endif()
if(NOT pybind11_FOUND)
  message(STATUS "cohort: Python ${Python_VERSION} development files or pybind11 not found: building "
                 "without the Python package (install python3-dev pybind11-dev)")
endif()

# libtorch is optional: without it `cohort serve` builds with its runtime interface and no
# TorchScript runtime, and says so when started. Debian's TorchConfig.cmake (libtorch-dev).
find_package(Torch QUIET)
if(Torch_FOUND OR TORCH_FOUND)
  set(COHORT_HAVE_TORCH ON)
  message(STATUS "cohort: TorchScript runtime on (libtorch in ${TORCH_INSTALL_PREFIX})")
else()
  set(COHORT_HAVE_TORCH OFF)
  message(STATUS "cohort: libtorch not found: cohort serve builds without its TorchScript runtime")
endif()

if(COHORT_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()

if(COHORT_HAVE_NCCL)
  set(COHORT_HAVE_NCCL_BOOL true)
else()
  set(COHORT_HAVE_NCCL_BOOL false)
endif()
