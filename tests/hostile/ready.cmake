# Area "ready" (issue 10, item 4): the guest's readiness announcement
# (VSERPORT_CHANGE on qvm's readiness port) flooded by a guest that opens and
# closes the port in a loop.
add_test(NAME hostile_ready_flood COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/ready_flood.sh)
set_tests_properties(hostile_ready_flood PROPERTIES
  LABELS hostile TIMEOUT 600 SKIP_RETURN_CODE 77 FIXTURES_REQUIRED mini_guest
  ENVIRONMENT "QVM_SOURCE_DIR=${PROJECT_SOURCE_DIR};QVM_BINARY_DIR=${PROJECT_BINARY_DIR}")
