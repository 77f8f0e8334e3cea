# qvm_lazy_trampolines(OUT_VAR ID LIBRARY OBJECTS obj|archive... [EXCLUDE sym...] [ON_LOAD fn]):
# generates lazy_ID.c, the trampolines (lazy/lazy.h) for every function of the
# shared LIBRARY that the OBJECTS call, and sets OUT_VAR to its path.
set(QVM_LAZY_DIR ${PROJECT_SOURCE_DIR}/lazy)
function(qvm_lazy_trampolines out id lib)
  cmake_parse_arguments(L "" "ON_LOAD" "EXCLUDE;OBJECTS" ${ARGN})
  set(c ${CMAKE_CURRENT_BINARY_DIR}/lazy_${id}.c)
  set(args)
  foreach(sym ${L_EXCLUDE})
    list(APPEND args --exclude ${sym})
  endforeach()
  if(L_ON_LOAD)
    list(APPEND args --on-load ${L_ON_LOAD})
  endif()
  add_custom_command(OUTPUT ${c}
    COMMAND ${QVM_LAZY_DIR}/lazy-trampolines.sh ${c} ${id} ${lib} ${args} -- ${L_OBJECTS}
    DEPENDS ${QVM_LAZY_DIR}/lazy-trampolines.sh ${L_OBJECTS}
    COMMENT "Generating lazy trampolines for ${lib}" VERBATIM)
  set(${out} ${c} PARENT_SCOPE)
endfunction()
