# Area "perms" (issue 11): file modes against other local users, and disk
# image formats that are never probed from a guest-written disk.
#   files:   every file and directory qvm makes under the state and runtime
#            dirs (after create, up with provisioning, seed build -o) is
#            private; a loose state root is tightened, a foreign one refused
#   format:  a guest writes a qcow2 header naming a host file into its raw
#            disk; QEMU keeps opening it as raw, a later create refuses it,
#            and a vm.json without a drive format is refused
#   backing: a user image with a backing file needs --allow-backing
#   shim_path: root does not run a qvm-shim another user owns or may write,
#            where libqvm searches for one (an installed prefix)
#   qemu_env: QEMU gets only PATH and QVM_* from the caller's environment,
#            with qvm start and with qvm run (the shim in the caller)
foreach(t files format backing shim_path qemu_env)
  add_test(NAME hostile_perms_${t} COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/perms_${t}.sh)
  set_tests_properties(hostile_perms_${t} PROPERTIES
    LABELS hostile TIMEOUT 400 SKIP_RETURN_CODE 77 FIXTURES_REQUIRED mini_guest
    ENVIRONMENT "QVM_SOURCE_DIR=${PROJECT_SOURCE_DIR};QVM_BINARY_DIR=${PROJECT_BINARY_DIR}")
endforeach()
