# FindSlurm: Slurm's plugin headers (slurm/spank.h, from libslurm-dev).
#   Slurm::spank  headers only: a SPANK plugin takes its symbols from the daemon that loads it
#   Slurm_VERSION from SLURM_VERSION_NUMBER in slurm/slurm_version.h
find_path(Slurm_INCLUDE_DIR NAMES slurm/spank.h)
if(Slurm_INCLUDE_DIR AND EXISTS "${Slurm_INCLUDE_DIR}/slurm/slurm_version.h")
  file(STRINGS "${Slurm_INCLUDE_DIR}/slurm/slurm_version.h" _slurm_version_line
       REGEX "^#define SLURM_VERSION_STRING")
  string(REGEX REPLACE ".*\"([^\"]+)\".*" "\\1" Slurm_VERSION "${_slurm_version_line}")
endif()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Slurm REQUIRED_VARS Slurm_INCLUDE_DIR VERSION_VAR Slurm_VERSION)
if(Slurm_FOUND AND NOT TARGET Slurm::spank)
  add_library(Slurm::spank INTERFACE IMPORTED)
  set_target_properties(Slurm::spank PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${Slurm_INCLUDE_DIR}")
endif()
mark_as_advanced(Slurm_INCLUDE_DIR)
