# Area "isolation" (issue 11, findings 10 and 11): what a guest that took
# QEMU over, or a guest on qvm's networks, can reach.
qvm_test(NAME hostile_isolation_nat SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/isolation_nat.c
         LIBS qvm_net_testlib qvm_net LABELS hostile TIMEOUT 180)
target_include_directories(hostile_isolation_nat PRIVATE ${PROJECT_SOURCE_DIR}/tests/net)
foreach(t qemu_user qemu_prelaunch user_restrict)
  add_test(NAME hostile_isolation_${t} COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/isolation_${t}.sh)
  set_tests_properties(hostile_isolation_${t} PROPERTIES
    LABELS hostile TIMEOUT 600 SKIP_RETURN_CODE 77 FIXTURES_REQUIRED mini_guest
    ENVIRONMENT "QVM_SOURCE_DIR=${PROJECT_SOURCE_DIR};QVM_BINARY_DIR=${PROJECT_BINARY_DIR}")
endforeach()
