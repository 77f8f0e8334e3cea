# qvm cp downloads (guest -> host) against a hostile SFTP server: a real sshd
# whose sftp subsystem is tests/hostile/sftp_server.c.
add_executable(hostile_sftp_server ${CMAKE_CURRENT_LIST_DIR}/sftp_server.c)
qvm_test(NAME hostile_sftp_download SOURCES ${CMAKE_CURRENT_LIST_DIR}/sftp_download.c
         LIBS qvm_ssh qvm_test_ssh_server LABELS hostile TIMEOUT 900)
target_compile_definitions(hostile_sftp_download
                           PRIVATE HOSTILE_SFTP_SERVER="$<TARGET_FILE:hostile_sftp_server>")
add_dependencies(hostile_sftp_download hostile_sftp_server)
# qvm cp's limit flags are parsed strictly; 0 in any spelling means no cap.
add_test(NAME hostile_sftp_cli COMMAND ${CMAKE_CURRENT_LIST_DIR}/sftp_cli.sh)
set_tests_properties(hostile_sftp_cli PROPERTIES LABELS hostile TIMEOUT 120
  ENVIRONMENT "QVM_BINARY_DIR=${PROJECT_BINARY_DIR}")
