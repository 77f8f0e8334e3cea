# libqvm: one shared library made of every module's objects, exporting only
# the public API of include/qvm/ (QVM_API + cmake/libqvm.map). The static
# module libraries stay for tests, benches and fuzz targets, which use
# internals. The qvm CLI links libqvm, which proves at link time that tools/
# uses nothing but the public API. Other programs (tools/qvm-shim, a test
# harness) link it the same way: target_link_libraries(X PRIVATE libqvm).
set(QVM_MODULES qvm_util qvm_qmp qvm_seed qvm_net qvm_ssh qvm_image qvm_vm qvm_diff)
list(APPEND QVM_MODULES qvm_review)
set(QVM_LIBQVM_MAP ${PROJECT_SOURCE_DIR}/cmake/libqvm.map)
set(QVM_SOVERSION 0)

add_library(libqvm SHARED)
foreach(m ${QVM_MODULES})
  target_sources(libqvm PRIVATE $<TARGET_OBJECTS:${m}>)
endforeach()
target_include_directories(libqvm PUBLIC $<BUILD_INTERFACE:${QVM_PUBLIC_INCLUDE}>
                                         $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
# The libraries only some commands need are bound lazily (lazy/lazy.h):
# libqvm.so does not name them as NEEDED and opens each on its first call,
# so `qvm list` and an idle qvmd never map libcurl, libarchive, libnbd,
# OpenSSL and what those pull in (qvm-shim links the static modules). json-c, libsodium and libmnl are
# small and used everywhere; they link normally.
target_link_libraries(libqvm PRIVATE PkgConfig::JSONC PkgConfig::SODIUM PkgConfig::MNL
                                     Threads::Threads)
set(QVM_LAZY_PKGS LIBSSH2 YAML NFTABLES CURL ARCHIVE CRYPTO NBD EXT2FS)
if(QVM_LAZY_LIBS)
  set(objects)
  foreach(m ${QVM_MODULES})
    list(APPEND objects $<TARGET_FILE:${m}>)
  endforeach()
  foreach(pkg ${QVM_LAZY_PKGS})
    foreach(file ${${pkg}_LINK_LIBRARIES})
      get_filename_component(id ${file} NAME_WE)
      string(REGEX REPLACE "^lib" "" id ${id})
      string(MAKE_C_IDENTIFIER ${id} id)
      qvm_lazy_trampolines(trampolines ${id} ${file} OBJECTS ${objects})
      target_sources(libqvm PRIVATE ${trampolines})
    endforeach()
  endforeach()
  target_sources(libqvm PRIVATE ${QVM_LAZY_DIR}/lazy.c)
  target_include_directories(libqvm PRIVATE ${QVM_LAZY_DIR})
  target_link_libraries(libqvm PRIVATE ${CMAKE_DL_LIBS})
else()
  foreach(pkg ${QVM_LAZY_PKGS})
    target_link_libraries(libqvm PRIVATE PkgConfig::${pkg})
  endforeach()
endif()
target_link_options(libqvm PRIVATE -Wl,--version-script=${QVM_LIBQVM_MAP})
# Every symbol libqvm uses must come from a library it names. Not with
# libFuzzer's coverage instrumentation or ThreadSanitizer (clang), whose runtime
# lives in the executable.
if(NOT QVM_FUZZ AND NOT QVM_TSAN)
  target_link_options(libqvm PRIVATE -Wl,--no-undefined)
endif()
set_target_properties(libqvm PROPERTIES
  OUTPUT_NAME qvm
  VERSION ${PROJECT_VERSION}
  SOVERSION ${QVM_SOVERSION}
  LIBRARY_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}
  LINK_DEPENDS ${QVM_LIBQVM_MAP})

# qvm_link_libqvm(TARGET INSTALL_DIR): links the program TARGET to libqvm
# and gives it the RUNPATH that finds the installed libqvm from INSTALL_DIR,
# the directory (relative to the prefix) it is installed to, e.g.
#   qvm_link_libqvm(qvm ${CMAKE_INSTALL_BINDIR})                 $ORIGIN/../lib
#   qvm_link_libqvm(qvm-shim ${CMAKE_INSTALL_LIBEXECDIR}/qvm)    $ORIGIN/../../lib
# Relative to $ORIGIN, it holds for any prefix, also one given only at
# install time (cmake --install build --prefix P), and a prefix can be
# moved. In the build tree, CMake's build RPATH finds ${PROJECT_BINARY_DIR}.
function(qvm_link_libqvm target install_dir)
  target_link_libraries(${target} PRIVATE libqvm)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
    set(runpath "${CMAKE_INSTALL_LIBDIR}")
  else()
    file(RELATIVE_PATH rel /qvm-prefix/${install_dir} /qvm-prefix/${CMAKE_INSTALL_LIBDIR})
    set(runpath "$ORIGIN/${rel}")
  endif()
  set_target_properties(${target} PROPERTIES INSTALL_RPATH "${runpath}")
endfunction()

install(TARGETS libqvm
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_COMPONENT devel)
file(GLOB QVM_PUBLIC_HEADERS CONFIGURE_DEPENDS ${QVM_PUBLIC_INCLUDE}/qvm/*.h)
install(FILES ${QVM_PUBLIC_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/qvm)

# qvm.pc is relocatable the same way: its prefix is found from its own
# directory (${pcfiledir}), not fixed at configure time.
file(RELATIVE_PATH QVM_PC_TO_PREFIX /qvm-prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /qvm-prefix)
string(REGEX REPLACE "/$" "" QVM_PC_TO_PREFIX "${QVM_PC_TO_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/qvm.pc.in ${PROJECT_BINARY_DIR}/qvm.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/qvm.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
