# Area "term": guest text never reaches a shell or a terminal raw, and --json
# stays valid UTF-8 JSON (ssh --print, ssh-config, ip, info, ls, logs, the
# serial tail in up's errors, a remote exit-signal name).
add_test(NAME hostile_term_cli COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/term_cli.sh)
set_tests_properties(hostile_term_cli PROPERTIES
  LABELS hostile TIMEOUT 120 SKIP_RETURN_CODE 77
  ENVIRONMENT "QVM_SOURCE_DIR=${PROJECT_SOURCE_DIR};QVM_BINARY_DIR=${PROJECT_BINARY_DIR}")
# A hostile exit-signal name through the real exec path against a real sshd:
# libssh2's answer is replaced by the linker's --wrap.
qvm_test(NAME hostile_term_signal SOURCES term_signal.c
         LIBS qvm_ssh qvm_test_ssh_server PkgConfig::JSONC LABELS hostile TIMEOUT 120)
target_link_options(hostile_term_signal PRIVATE -Wl,--wrap=libssh2_channel_get_exit_signal)
# A real guest (mini) writes control sequences to its console: up's failure
# message (the serial tail, also in --json), qvm logs and --raw.
add_test(NAME hostile_term_up_mini COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/term_up_mini.sh)
set_tests_properties(hostile_term_up_mini PROPERTIES
  LABELS hostile TIMEOUT 600 SKIP_RETURN_CODE 77 FIXTURES_REQUIRED mini_guest
  ENVIRONMENT "QVM_SOURCE_DIR=${PROJECT_SOURCE_DIR};QVM_BINARY_DIR=${PROJECT_BINARY_DIR}")
# ssh --print / ssh-config against hostile values, and honest ones through a
# real OpenSSH (ssh -G).
qvm_test(NAME hostile_term_openssh SOURCES term_openssh.c LIBS qvm_ssh LABELS hostile)
