# `cmake --install` and `cpack`: the layout an HPC centre installs, as three Debian packages.
#
#   bin/cohort, bin/cohort-*                        the commands (runtime)
#   share/man/man1/cohort*.1                        their pages, made from their --help (runtime)
#   share/cohort/{bench,sbatch}/                    benchmark scripts, sbatch templates (runtime)
#   share/modulefiles/cohort/VERSION.lua            `module load cohort` (Lmod) (runtime)
#   <python dir>/cohort/                            `import cohort` (runtime)
#   COHORT_SPANK_PLUGIN_DIR/spank_cohort.so         the SPANK plugin (plugin)
#   share/cohort/plugstack.conf.d/cohort.conf       its one-line plugstack entry (plugin)
#   include/cohort/<component>/*.hpp, lib/*.a       the C++ libraries (development)
#   lib/cmake/cohort/, lib/pkgconfig/cohort.pc      find_package(cohort), pkg-config (development)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# Slurm looks for plugins in its PluginDir; Debian's is lib/<multiarch>/slurm-wlm under /usr.
# A relative path is under the prefix; the plugstack line names wherever it went.
set(COHORT_SPANK_PLUGIN_DIR "lib/${CMAKE_LIBRARY_ARCHITECTURE}/slurm-wlm" CACHE STRING
    "Where `cmake --install` puts spank_cohort.so (Slurm's PluginDir; relative: under the prefix)")

# The commands. `cohort` runs its heavier siblings (cohort-ckpt, …) from its own folder.
set(commands cohort)
foreach(tool IN ITEMS ckpt serve dashboard bench)
  if(TARGET cohort-${tool})
    list(APPEND commands cohort-${tool})
  endif()
endforeach()
install(TARGETS ${commands} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)

# Man pages from the commands' own help, so that they cannot drift from it.
set(man_dir ${CMAKE_BINARY_DIR}/man)
add_custom_command(OUTPUT ${man_dir}/cohort.1
  COMMAND ${CMAKE_COMMAND} -E rm -rf ${man_dir}
  COMMAND ${Python_EXECUTABLE} ${PROJECT_SOURCE_DIR}/cmake/install/manpages.py $<TARGET_FILE:cohort>
          ${man_dir} ${PROJECT_VERSION}
  DEPENDS cohort ${PROJECT_SOURCE_DIR}/cmake/install/manpages.py
  COMMENT "Writing the man pages from the commands' help")
add_custom_target(cohort_man ALL DEPENDS ${man_dir}/cohort.1)
install(DIRECTORY ${man_dir}/ DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT runtime FILES_MATCHING PATTERN "*.1")

install(DIRECTORY ${PROJECT_SOURCE_DIR}/cmake/install/sbatch/ DESTINATION ${CMAKE_INSTALL_DATADIR}/cohort/sbatch
        COMPONENT runtime)

get_property(COHORT_PYTHON_DIR_CODE GLOBAL PROPERTY COHORT_PYTHON_DIR_CODE)
if(TARGET cohort_python)
  set(has_python 1)
else()
  set(has_python 0)
endif()
# The files that name the install's own paths are written when it is made, so that
# `cmake --install build --prefix P` and the packages (DESTDIR) each name theirs.
install(CODE "
  set(prefix \"\${CMAKE_INSTALL_PREFIX}\")
  set(version ${PROJECT_VERSION})
  set(bindir ${CMAKE_INSTALL_BINDIR})
  set(libdir ${CMAKE_INSTALL_LIBDIR})
  set(datadir ${CMAKE_INSTALL_DATADIR})
  set(mandir ${CMAKE_INSTALL_MANDIR})
  set(python_dir \"\")
  ${COHORT_PYTHON_DIR_CODE}
  if(${has_python})
    set(python_dir \"\${cohort_python_dir}\")
  endif()
  set(module \"\$ENV{DESTDIR}\${prefix}/${CMAKE_INSTALL_DATADIR}/modulefiles/cohort/${PROJECT_VERSION}.lua\")
  configure_file(\"${PROJECT_SOURCE_DIR}/cmake/install/cohort.lua.in\" \"\${module}\" @ONLY)
  message(STATUS \"Installing: \${module}\")
" COMPONENT runtime)

if(TARGET spank_cohort)
  install(TARGETS spank_cohort LIBRARY DESTINATION ${COHORT_SPANK_PLUGIN_DIR} COMPONENT plugin)
  install(CODE "
    set(prefix \"\${CMAKE_INSTALL_PREFIX}\")
    set(datadir ${CMAKE_INSTALL_DATADIR})
    set(plugin \"${COHORT_SPANK_PLUGIN_DIR}/spank_cohort.so\")
    if(NOT IS_ABSOLUTE \"\${plugin}\")
      set(plugin \"\${prefix}/\${plugin}\")
    endif()
    set(conf \"\$ENV{DESTDIR}\${prefix}/${CMAKE_INSTALL_DATADIR}/cohort/plugstack.conf.d/cohort.conf\")
    configure_file(\"${PROJECT_SOURCE_DIR}/cmake/install/plugstack.conf.in\" \"\${conf}\" @ONLY)
    message(STATUS \"Installing: \${conf}\")
  " COMPONENT plugin)
endif()

# The C++ libraries a program builds on, with what they link, as imported targets
# cohort::<component>.
set(libraries common lineage topology checkpoint)
if(TARGET cohort_collectives)
  list(APPEND libraries collectives)
endif()
foreach(name IN LISTS libraries)
  set_target_properties(cohort_${name} PROPERTIES EXPORT_NAME ${name})
  install(TARGETS cohort_${name} EXPORT cohortTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${name}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/cohort/${name}
          COMPONENT development FILES_MATCHING PATTERN "*.hpp")
endforeach()
install(FILES ${CMAKE_BINARY_DIR}/common/generated/common/version.hpp
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/cohort/common COMPONENT development)
set(cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/cohort)
install(EXPORT cohortTargets NAMESPACE cohort:: DESTINATION ${cmake_dir} COMPONENT development)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/install/cohortConfig.cmake.in
  ${CMAKE_BINARY_DIR}/install/cohortConfig.cmake INSTALL_DESTINATION ${cmake_dir})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/install/cohortConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/install/cohortConfig.cmake ${CMAKE_BINARY_DIR}/install/cohortConfigVersion.cmake
        ${PROJECT_SOURCE_DIR}/cmake/FindNCCL.cmake DESTINATION ${cmake_dir} COMPONENT development)
# The .pc file finds the prefix from where it lies, so that a moved install still works.
file(RELATIVE_PATH COHORT_PC_UP /x/${CMAKE_INSTALL_LIBDIR}/pkgconfig /x)
if(COHORT_HAVE_NCCL)
  set(COHORT_PC_NCCL_CFLAGS "-DCOHORT_HAVE_NCCL=1 -I${CUDAToolkit_INCLUDE_DIRS} -I${NCCL_INCLUDE_DIR}")
  set(COHORT_PC_NCCL_LIBS "-L${CUDAToolkit_LIBRARY_DIR} -lcudart ${NCCL_LIBRARY}")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/install/cohort.pc.in ${CMAKE_BINARY_DIR}/install/cohort.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/install/cohort.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
        COMPONENT development)

# Three .deb packages: `cpack -G DEB` in the build folder.
set(CPACK_PACKAGE_NAME cohort)
set(CPACK_PACKAGE_VENDOR cohort)
set(CPACK_PACKAGE_CONTACT "cohort maintainers <cohort@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
set(CPACK_STRIP_FILES TRUE)  # the debug information stays in the build; a -dbgsym package is not made
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime plugin development)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME cohort)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_RECOMMENDS "slurm-client, python3-torch, python3-h5py, lmod")
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION "cohort's commands, man pages, Python package and Lmod module")
set(CPACK_DEBIAN_PLUGIN_PACKAGE_NAME cohort-slurm-plugin)
set(CPACK_DEBIAN_PLUGIN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PLUGIN_PACKAGE_DEPENDS "slurm-wlm-basic-plugins | slurmd")
set(CPACK_COMPONENT_PLUGIN_DESCRIPTION "cohort's SPANK plugin for Slurm (srun --cohort) and its plugstack entry")
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_NAME cohort-dev)
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_DEPENDS
    "cohort (= ${PROJECT_VERSION}), libopenmpi-dev, libhdf5-openmpi-dev, libhwloc-dev, libboost-program-options-dev, libyaml-cpp-dev, libsqlite3-dev")
set(CPACK_COMPONENT_DEVELOPMENT_DESCRIPTION "cohort's C++ libraries: headers, static libraries, CMake and pkg-config files")
include(CPack)
