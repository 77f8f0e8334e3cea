/* SPDX-License-Identifier: MIT */
/* ssh/ against Dropbear: connect, pinning, exec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <qvm/ssh.h>

#include "ssh_server.h"
#include "testlib.h"

static test_server server;
static char *dir;
static char key_path[4096], known_hosts[4096];

static qvm_ssh_options options(void) {
  qvm_ssh_options o = QVM_SSH_OPTIONS_INIT;
  o.host = "127.0.0.1";
  o.port = server.port;
  o.vm_name = "dropvm";
  o.known_hosts = known_hosts;
  o.identity = key_path;
  o.timeout_ms = 20000;
  return o;
}

static int setup(void **state) {
  (void)state;
  qvm_test_require_root();
  qvm_test_require_program("dropbear");
  qvm_test_require_program("dropbearkey");
  qvm_test_require_program("unshare");
  qvm_ssh_key *key = NULL;
  char *auth = NULL;
  dir = qvm_test_mkdtemp("dbclient");
  snprintf(key_path, sizeof(key_path), "%s/id_ed25519", dir);
  snprintf(known_hosts, sizeof(known_hosts), "%s/known_hosts", dir);
  if (qvm_ssh_key_generate(&key, "qvm", NULL) < 0 ||
      qvm_ssh_key_write(key, key_path, NULL, NULL) < 0 ||
      asprintf(&auth, "%s\n", qvm_ssh_key_public_line(key)) < 0)
    return -1;
  qvm_ssh_key_free(key);
  int r = test_dropbear_start(&server, auth);
  free(auth);
  if (r < 0) return -1;
  return qvm_ssh_known_hosts_pin(known_hosts, "dropvm", server.host_pub_line, NULL);
}

static int teardown(void **state) {
  (void)state;
  test_server_stop(&server);
  if (dir) qvm_test_rmtree(dir);
  free(dir);
  return 0;
}

static void test_pinned_connect_and_exec(void **state) {
  (void)state;
  qvm_ssh_options o = options();
  qvm_ssh *ssh = NULL;
  qvm_error *err = NULL;
  if (qvm_ssh_connect(&ssh, &o, &err) < 0) fail_msg("connect: %s", qvm_error_message(err));
  char *fp = NULL;
  assert_int_equal(qvm_ssh_public_line_fingerprint(&fp, server.host_pub_line, NULL), 0);
  assert_string_equal(qvm_ssh_host_fingerprint(ssh), fp);
  free(fp);

  const char *argv[] = {"printf", "%s\\0", "a b", "", "it's", "$x;`y`", "*", "l1\nl2", NULL};
  static const char want[] = "a b\0\0it's\0$x;`y`\0*\0l1\nl2\0";
  char out[256];
  size_t len = 0;
  int p[2];
  assert_int_equal(pipe(p), 0);
  qvm_ssh_exec_options eo = QVM_SSH_EXEC_OPTIONS_INIT;
  qvm_ssh_exec_result res;
  eo.argv = argv;
  eo.stdout_fd = p[1];
  assert_int_equal(qvm_ssh_exec(&res, ssh, &eo, NULL), 0);
  close(p[1]);
  for (ssize_t n; (n = read(p[0], out + len, sizeof(out) - len)) > 0;) len += (size_t)n;
  close(p[0]);
  assert_int_equal(res.exit_code, 0);
  assert_int_equal(len, sizeof(want) - 1);
  assert_memory_equal(out, want, len);

  eo = (qvm_ssh_exec_options)QVM_SSH_EXEC_OPTIONS_INIT;
  eo.command = "exit 17";
  assert_int_equal(qvm_ssh_exec(&res, ssh, &eo, NULL), 0);
  assert_int_equal(res.exit_code, 17);
  qvm_ssh_free(ssh);
}

static void test_mismatch_and_tofu(void **state) {
  (void)state;
  char kh[4096];
  qvm_ssh_key *other = NULL;
  qvm_ssh *ssh = NULL;
  qvm_error *err = NULL;
  snprintf(kh, sizeof(kh), "%s/known_hosts.other", dir);
  assert_int_equal(qvm_ssh_key_generate(&other, "", NULL), 0);
  assert_int_equal(qvm_ssh_known_hosts_pin(kh, "dropvm", qvm_ssh_key_public_line(other), NULL), 0);
  qvm_ssh_options o = options();
  o.known_hosts = kh;
  assert_int_equal(qvm_ssh_connect(&ssh, &o, &err), QVM_EAUTH);
  assert_string_equal(qvm_error_class(err), "HostKeyMismatch");
  assert_non_null(strstr(qvm_error_message(err), "'dropvm'"));
  assert_non_null(strstr(qvm_error_message(err), qvm_ssh_key_fingerprint(other)));
  qvm_error_free(err);
  qvm_ssh_key_free(other);

  unlink(kh);
  o.hostkey_policy = QVM_SSH_HOSTKEY_TOFU;
  assert_int_equal(qvm_ssh_connect(&ssh, &o, NULL), 0);
  qvm_ssh_free(ssh);
  o.hostkey_policy = QVM_SSH_HOSTKEY_PINNED;
  assert_int_equal(qvm_ssh_connect(&ssh, &o, NULL), 0);
  qvm_ssh_free(ssh);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pinned_connect_and_exec),
      cmocka_unit_test(test_mismatch_and_tofu),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
