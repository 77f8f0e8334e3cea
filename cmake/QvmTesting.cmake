# Test helpers shared by every tests/<module>/CMakeLists.txt.
#
# Exit code 77 means "skipped". Under CI=true the test library turns every
# skip into a failure instead (tests/lib/testlib.c), so CI cannot pass by
# skipping.

# qvm_test(NAME name SOURCES ... LIBS ... LABELS unit|golden|integration|e2e|fuzz|hostile
#          [TIMEOUT s] [ARGS ...] [FIXTURES ...] [SERIAL])
function(qvm_test)
  cmake_parse_arguments(T "SERIAL" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS;ARGS;FIXTURES" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_include_directories(${T_NAME} PRIVATE ${PROJECT_SOURCE_DIR}
                                               ${PROJECT_SOURCE_DIR}/tests/lib)
  target_link_libraries(${T_NAME} PRIVATE qvm_testlib ${T_LIBS} PkgConfig::CMOCKA)
  add_test(NAME ${T_NAME} COMMAND ${T_NAME} ${T_ARGS})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  set_tests_properties(${T_NAME} PROPERTIES
    LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT} SKIP_RETURN_CODE 77
    # a test program linking libqvm is not beside qvm-shim: QVM_SHIM says where it is
    ENVIRONMENT "QVM_SOURCE_DIR=${PROJECT_SOURCE_DIR};QVM_BINARY_DIR=${PROJECT_BINARY_DIR};QVM_SHIM=${PROJECT_BINARY_DIR}/qvm-shim")
  if(T_FIXTURES)
    set_tests_properties(${T_NAME} PROPERTIES FIXTURES_REQUIRED "${T_FIXTURES}")
  endif()
  if(T_SERIAL)
    set_tests_properties(${T_NAME} PROPERTIES RUN_SERIAL TRUE)
  endif()
endfunction()

# With QVM_FUZZ every module is compiled with libFuzzer's coverage
# instrumentation (-fsanitize=fuzzer-no-link), not just the fuzz target's own
# source: otherwise libFuzzer sees no edges inside the parser it fuzzes.
# This file is included before the modules, so the flag reaches them all.
if(QVM_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "QVM_FUZZ needs clang (CC=clang)")
  endif()
  # clang warns where gcc does not (e.g. -Wconstant-conversion on
  # ifr_flags); the fuzz build reports those but does not stop on them.
  add_compile_options(-fsanitize=fuzzer-no-link -Wno-error)
  add_link_options(-fsanitize=fuzzer-no-link)
endif()

# qvm_fuzz_target(NAME name SOURCES ... LIBS ... CORPUS dir)
# The source defines LLVMFuzzerTestOneInput. It always builds as a replay
# program (tests/lib/fuzz_replay.c) that ctest runs over the committed corpus;
# with -DQVM_FUZZ=ON and clang it also builds as a real libFuzzer binary.
function(qvm_fuzz_target)
  cmake_parse_arguments(F "" "NAME;CORPUS" "SOURCES;LIBS" ${ARGN})
  add_executable(${F_NAME}_replay ${F_SOURCES} ${PROJECT_SOURCE_DIR}/tests/lib/fuzz_replay.c)
  target_include_directories(${F_NAME}_replay PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${F_NAME}_replay PRIVATE ${F_LIBS})
  add_test(NAME ${F_NAME}_replay COMMAND ${F_NAME}_replay ${F_CORPUS})
  set_tests_properties(${F_NAME}_replay PROPERTIES LABELS fuzz TIMEOUT 300)
  if(QVM_FUZZ)
    add_executable(${F_NAME} ${F_SOURCES})
    target_include_directories(${F_NAME} PRIVATE ${PROJECT_SOURCE_DIR})
    target_compile_options(${F_NAME} PRIVATE -fsanitize=fuzzer)
    target_link_options(${F_NAME} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(${F_NAME} PRIVATE ${F_LIBS})
  endif()
endfunction()
