/* SPDX-License-Identifier: MIT */
#ifndef QVM_TEST_SSHD_ENV_H
#define QVM_TEST_SSHD_ENV_H

#include <qvm/ssh.h>

#include "ssh_server.h"

/* The fixture shared by the test_ssh_sshd files: one sshd, one client key,
 * the host key pinned in known_hosts. */
typedef struct sshd_env {
  test_server server;
  char *dir; /* client-side temp dir */
  char key_path[4096], known_hosts[4096], audit[4096];
  qvm_ssh_key *client_key, *host_key;
} sshd_env;

extern sshd_env env;

qvm_ssh_options env_options(void);
qvm_ssh *env_connect(void);

/* Runs a command, capturing stdout and stderr (NUL-safe; caller frees). */
typedef struct captured {
  char *out, *err;
  size_t out_len, err_len;
  qvm_ssh_exec_result res;
} captured;
int run_capture(captured *c, qvm_ssh *ssh, qvm_ssh_exec_options *o);
void captured_free(captured *c);

void test_sftp_roundtrip(void **state);
void test_provision_abort(void **state);
void test_provision_file_and_script(void **state);
void test_provision_script_cleanup(void **state);
void test_shell_pty(void **state);

#endif
