# Area "shimb" (issue 11, review findings 3-6, 9, 10): the shim's bounds on
# the logs QEMU and the guest write (a sparse log, no inotify, qemu.log,
# provision.log), on QEMU's event flood, and its check of QEMU's privileges
# before cont.
qvm_test(NAME hostile_shimb_status SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/shimb_status.c
         LIBS qvm_vm LABELS hostile unit)
foreach(t logs qmp_flood qmp_stall ctl_client record_lock lock_note)
  add_test(NAME hostile_shimb_${t} COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/shimb_${t}.sh)
  set_tests_properties(hostile_shimb_${t} PROPERTIES
    LABELS hostile TIMEOUT 600 SKIP_RETURN_CODE 77 FIXTURES_REQUIRED mini_guest
    ENVIRONMENT "QVM_SOURCE_DIR=${PROJECT_SOURCE_DIR};QVM_BINARY_DIR=${PROJECT_BINARY_DIR}")
endforeach()
