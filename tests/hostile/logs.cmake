# Logs and addresses (issue 11): a guest cannot grow serial.log or
# events.jsonl without bound, a long or rotated events.jsonl never hides the
# newest lease, and no address from the guest is used unchecked. Shell tests
# driving the qvm binary with the mini guest (tests/e2e/lib.sh).
foreach(t agent serial lease events)
  add_test(NAME hostile_logs_${t} COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/logs_${t}.sh)
  set_tests_properties(hostile_logs_${t} PROPERTIES
    LABELS hostile TIMEOUT 600 SKIP_RETURN_CODE 77 FIXTURES_REQUIRED mini_guest
    ENVIRONMENT "QVM_SOURCE_DIR=${PROJECT_SOURCE_DIR};QVM_BINARY_DIR=${PROJECT_BINARY_DIR}")
endforeach()
