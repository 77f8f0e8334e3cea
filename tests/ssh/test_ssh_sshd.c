/* SPDX-License-Identifier: MIT */
/*
 * ssh/ against a real OpenSSH sshd started by the test on 127.0.0.1: keys,
 * pinning, TOFU, connect errors, exec quoting, exit codes, signals, stdin,
 * env, heavy output, timeouts, audit log. Files, provisioners and shells are
 * in test_ssh_sshd_files.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "sshd_env.h"
#include "testlib.h"
#include "util/cleanup.h"

sshd_env env;

qvm_ssh_options env_options(void) {
  qvm_ssh_options o = QVM_SSH_OPTIONS_INIT;
  o.host = "127.0.0.1";
  o.port = env.server.port;
  o.vm_name = "testvm";
  o.known_hosts = env.known_hosts;
  o.identity = env.key_path;
  o.timeout_ms = 20000;
  return o;
}

qvm_ssh *env_connect(void) {
  qvm_ssh_options o = env_options();
  qvm_ssh *ssh = NULL;
  qvm_error *err = NULL;
  if (qvm_ssh_connect(&ssh, &o, &err) < 0) fail_msg("connect: %s", qvm_error_message(err));
  return ssh;
}

static int capture_cb(void *ctx, int stream, const void *data, size_t len) {
  captured *c = ctx;
  char **buf = stream == QVM_SSH_STDOUT ? &c->out : &c->err;
  size_t *n = stream == QVM_SSH_STDOUT ? &c->out_len : &c->err_len;
  *buf = realloc(*buf, *n + len + 1);
  memcpy(*buf + *n, data, len);
  *n += len;
  (*buf)[*n] = 0;
  return 0;
}

int run_capture(captured *c, qvm_ssh *ssh, qvm_ssh_exec_options *o) {
  memset(c, 0, sizeof(*c));
  c->out = calloc(1, 1);
  c->err = calloc(1, 1);
  o->on_output = capture_cb;
  o->ctx = c;
  o->audit_log = env.audit;
  qvm_error *err = NULL;
  int r = qvm_ssh_exec(&c->res, ssh, o, &err);
  if (r < 0) {
    print_message("exec: %s\n", qvm_error_message(err));
    qvm_error_free(err);
  }
  return r;
}

void captured_free(captured *c) {
  free(c->out);
  free(c->err);
}

static int setup(void **state) {
  (void)state;
  qvm_test_require_root();
  qvm_test_require_program("/usr/sbin/sshd");
  qvm_test_require_program("ssh-keygen");
  qvm_test_require_program("unshare");
  char host_path[4096], *auth = NULL;
  env.dir = qvm_test_mkdtemp("sshclient");
  snprintf(env.key_path, sizeof(env.key_path), "%s/id_ed25519", env.dir);
  snprintf(env.known_hosts, sizeof(env.known_hosts), "%s/known_hosts", env.dir);
  snprintf(env.audit, sizeof(env.audit), "%s/audit.jsonl", env.dir);
  snprintf(host_path, sizeof(host_path), "%s/ssh_host_ed25519_key", env.dir);
  if (qvm_ssh_key_generate(&env.client_key, "qvm-test-client", NULL) < 0 ||
      qvm_ssh_key_generate(&env.host_key, "root@testvm", NULL) < 0 ||
      qvm_ssh_key_write(env.client_key, env.key_path, NULL, NULL) < 0 ||
      qvm_ssh_key_write(env.host_key, host_path, NULL, NULL) < 0 ||
      asprintf(&auth, "%s\n", qvm_ssh_key_public_line(env.client_key)) < 0)
    return -1;
  int r = test_sshd_start(&env.server, host_path, qvm_ssh_key_public_line(env.host_key), auth);
  free(auth);
  if (r < 0) return -1;
  return qvm_ssh_known_hosts_pin(env.known_hosts, "testvm", qvm_ssh_key_public_line(env.host_key),
                                 NULL);
}

static int teardown(void **state) {
  (void)state;
  test_server_stop(&env.server);
  qvm_ssh_key_free(env.client_key);
  qvm_ssh_key_free(env.host_key);
  if (env.dir) qvm_test_rmtree(env.dir);
  free(env.dir);
  return 0;
}

/* ---- keys ---- */

static void test_keys_accepted_by_openssh(void **state) {
  (void)state;
  char *derived = qvm_test_sh_output("ssh-keygen -y -f '%s'", env.key_path);
  const char *ours = qvm_ssh_key_public_line(env.client_key);
  assert_non_null(derived);
  /* equal modulo comment */
  assert_memory_equal(derived, ours, strlen("ssh-ed25519 ") + 68);
  free(derived);
  char *fp = qvm_test_sh_output("ssh-keygen -lf '%s.pub' | cut -d' ' -f2", env.key_path);
  assert_non_null(fp);
  assert_string_equal(fp, qvm_ssh_key_fingerprint(env.client_key));
  free(fp);
  /* OpenSSH's client logs in with our key and our known_hosts, strictly. */
  qvm_ssh_options o = env_options();
  char *cmd = NULL;
  assert_int_equal(qvm_ssh_openssh_command(&cmd, &o, NULL), 0);
  assert_int_equal(qvm_test_sh("%s -o BatchMode=yes true </dev/null", cmd), 0);
  free(cmd);
  assert_int_equal(
      qvm_test_sh("ssh -i '%s' -o UserKnownHostsFile='%s' -o StrictHostKeyChecking=yes "
                  "-o HostKeyAlias=testvm -o BatchMode=yes -p %d root@127.0.0.1 true "
                  "</dev/null",
                  env.key_path, env.known_hosts, env.server.port),
      0);
}

/* ---- pinning ---- */

static void expect_connect_error(qvm_ssh_options *o, int code, const char *cls, char **msg) {
  qvm_ssh *ssh = NULL;
  qvm_error *err = NULL;
  assert_int_equal(qvm_ssh_connect(&ssh, o, &err), code);
  assert_null(ssh);
  assert_non_null(err);
  assert_non_null(qvm_error_class(err));
  assert_string_equal(qvm_error_class(err), cls);
  if (msg) *msg = strdup(qvm_error_message(err));
  qvm_error_free(err);
}

static void test_pinned_key_accepted(void **state) {
  (void)state;
  qvm_ssh *ssh = env_connect();
  assert_string_equal(qvm_ssh_host_fingerprint(ssh), qvm_ssh_key_fingerprint(env.host_key));
  qvm_ssh_free(ssh);
}

static void test_changed_host_key_refused(void **state) {
  (void)state;
  qvm_ssh_key *other = NULL;
  char kh[4096], *msg = NULL;
  snprintf(kh, sizeof(kh), "%s/known_hosts.other", env.dir);
  assert_int_equal(qvm_ssh_key_generate(&other, "", NULL), 0);
  assert_int_equal(qvm_ssh_known_hosts_pin(kh, "testvm", qvm_ssh_key_public_line(other), NULL), 0);
  qvm_ssh_options o = env_options();
  o.known_hosts = kh;
  expect_connect_error(&o, QVM_EAUTH, "HostKeyMismatch", &msg);
  assert_non_null(strstr(msg, "'testvm'"));
  assert_non_null(strstr(msg, qvm_ssh_key_fingerprint(other)));
  assert_non_null(strstr(msg, qvm_ssh_key_fingerprint(env.host_key)));
  free(msg);
  /* TOFU does not override a pin either. */
  o.hostkey_policy = QVM_SSH_HOSTKEY_TOFU;
  expect_connect_error(&o, QVM_EAUTH, "HostKeyMismatch", NULL);
  /* OpenSSH agrees with the same file. */
  assert_int_not_equal(
      qvm_test_sh("ssh -i '%s' -o UserKnownHostsFile='%s' "
                  "-o StrictHostKeyChecking=yes -o HostKeyAlias=testvm "
                  "-o BatchMode=yes -p %d root@127.0.0.1 true </dev/null 2>/dev/null",
                  env.key_path, kh, env.server.port),
      0);
  /* Re-pinning is explicit, and afterwards the new key is what is pinned. */
  o.hostkey_policy = QVM_SSH_HOSTKEY_REPIN;
  qvm_ssh *ssh = NULL;
  assert_int_equal(qvm_ssh_connect(&ssh, &o, NULL), 0);
  qvm_ssh_free(ssh);
  o.hostkey_policy = QVM_SSH_HOSTKEY_PINNED;
  assert_int_equal(qvm_ssh_connect(&ssh, &o, NULL), 0);
  qvm_ssh_free(ssh);
  qvm_ssh_key_free(other);
}

static void test_tofu(void **state) {
  (void)state;
  char kh[4096], *msg = NULL;
  snprintf(kh, sizeof(kh), "%s/known_hosts.tofu", env.dir);
  unlink(kh);
  qvm_ssh_options o = env_options();
  o.known_hosts = kh;
  /* Strict mode with nothing pinned refuses. */
  expect_connect_error(&o, QVM_EAUTH, "HostKeyUnknown", &msg);
  assert_non_null(strstr(msg, "testvm"));
  free(msg);
  /* First contact pins ... */
  o.hostkey_policy = QVM_SSH_HOSTKEY_TOFU;
  qvm_ssh *ssh = NULL;
  assert_int_equal(qvm_ssh_connect(&ssh, &o, NULL), 0);
  qvm_ssh_free(ssh);
  char *line = qvm_test_sh_output("cat '%s'", kh);
  assert_non_null(line);
  const char *pub = qvm_ssh_key_public_line(env.host_key);
  assert_memory_equal(line, "testvm ", 7);
  assert_memory_equal(line + 7, pub, strlen("ssh-ed25519 ") + 68);
  free(line);
  /* ... and a changed key is refused at the second. */
  qvm_ssh_key *other = NULL;
  assert_int_equal(qvm_ssh_key_generate(&other, "", NULL), 0);
  assert_int_equal(qvm_ssh_known_hosts_pin(kh, "testvm", qvm_ssh_key_public_line(other), NULL), 0);
  expect_connect_error(&o, QVM_EAUTH, "HostKeyMismatch", NULL);
  qvm_ssh_key_free(other);
}

/* ---- connect errors ---- */

static void test_connect_errors(void **state) {
  (void)state;
  qvm_ssh_options o = env_options();
  char *msg = NULL;
  o.port = test_free_port();
  o.timeout_ms = 800;
  expect_connect_error(&o, QVM_ESYS, "ConnectionRefused", &msg);
  assert_non_null(strstr(msg, "refused"));
  free(msg);

  int port = 0, fd = test_silent_listener(&port);
  assert_true(fd >= 0);
  o.port = port;
  o.timeout_ms = 1000;
  expect_connect_error(&o, QVM_ETIMEOUT, "Timeout", &msg);
  assert_non_null(strstr(msg, "testvm"));
  free(msg);
  close(fd);

  qvm_ssh_key *stranger = NULL;
  char path[4096];
  snprintf(path, sizeof(path), "%s/id_stranger", env.dir);
  assert_int_equal(qvm_ssh_key_generate(&stranger, "", NULL), 0);
  assert_int_equal(qvm_ssh_key_write(stranger, path, NULL, NULL), 0);
  o = env_options();
  o.identity = path;
  expect_connect_error(&o, QVM_EAUTH, "AuthFailed", &msg);
  assert_non_null(strstr(msg, "testvm"));
  free(msg);
  qvm_ssh_key_free(stranger);
}

/* ---- exec ---- */

static void test_exec_quoting(void **state) {
  (void)state;
  static const char *const args[] = {
      "a b",     "",       "'",       "\"",          "$HOME", "${PATH}", "`id`",  "$(id)",
      "a;b",     "a|b&&c", "x\ny",    "back\\slash", "\\",    "*",       "?[a]*", "~",
      "-n",      "  lead", "trail  ", "tab\there",   "it's",  "!bang",   "%s%d",  "é ✓",
      "'\"'\"'", "\\'",    "#hash",   "a=b",         ">out",  "\n",
  };
  const char *argv[QVM_ARRAY_SIZE(args) + 3] = {"printf", "%s\\0"};
  char want[1024];
  size_t want_len = 0;
  for (size_t i = 0; i < QVM_ARRAY_SIZE(args); i++) {
    argv[i + 2] = args[i];
    memcpy(want + want_len, args[i], strlen(args[i]) + 1);
    want_len += strlen(args[i]) + 1;
  }
  qvm_ssh *ssh = env_connect();
  qvm_ssh_exec_options o = QVM_SSH_EXEC_OPTIONS_INIT;
  captured c;
  o.argv = argv;
  assert_int_equal(run_capture(&c, ssh, &o), 0);
  assert_int_equal(c.res.exit_code, 0);
  assert_int_equal(c.out_len, want_len);
  assert_memory_equal(c.out, want, want_len);
  captured_free(&c);
  /* `-- ls "a b"` keeps two arguments. */
  const char *two[] = {"sh", "-c", "echo $#", "zero", "a b", NULL};
  o.argv = two;
  assert_int_equal(run_capture(&c, ssh, &o), 0);
  assert_string_equal(c.out, "1\n");
  captured_free(&c);
  qvm_ssh_free(ssh);
}

static void test_exec_exit_signal_stdin_env(void **state) {
  (void)state;
  qvm_ssh *ssh = env_connect();
  qvm_ssh_exec_options o = QVM_SSH_EXEC_OPTIONS_INIT;
  captured c;
  o.command = "echo out; echo err >&2; exit 42";
  assert_int_equal(run_capture(&c, ssh, &o), 0);
  assert_int_equal(c.res.exit_code, 42);
  assert_false(c.res.signaled);
  assert_string_equal(c.out, "out\n");
  assert_string_equal(c.err, "err\n");
  captured_free(&c);

  o.command = "kill -TERM $$";
  assert_int_equal(run_capture(&c, ssh, &o), 0);
  assert_true(c.res.signaled);
  assert_string_equal(c.res.signal, "TERM");
  captured_free(&c);

  int p[2];
  assert_int_equal(pipe(p), 0);
  assert_int_equal(write(p[1], "hello\nworld", 11), 11);
  close(p[1]);
  o.command = "cat; echo; echo done";
  o.stdin_fd = p[0];
  assert_int_equal(run_capture(&c, ssh, &o), 0);
  assert_string_equal(c.out, "hello\nworld\ndone\n");
  close(p[0]);
  captured_free(&c);

  /* 8 MiB of stdin through a pipe fed by a child: window and EOF handling. */
  o.command = "wc -c";
  o.stdin_fd = -1;
  FILE *src = popen("head -c 8388608 /dev/urandom", "r");
  assert_non_null(src);
  o.stdin_fd = fileno(src);
  assert_int_equal(run_capture(&c, ssh, &o), 0);
  assert_int_equal(atol(c.out), 8388608);
  pclose(src);
  captured_free(&c);
  o.stdin_fd = -1;

  const char *argv[] = {"sh", "-c", "printf '%s|%s' \"$FOO\" \"$BAR\"", NULL};
  const char *envv[] = {"FOO=a b'c\"d", "BAR=$HOME;`x`", NULL};
  o.command = NULL;
  o.argv = argv;
  o.env = envv;
  assert_int_equal(run_capture(&c, ssh, &o), 0);
  assert_string_equal(c.out, "a b'c\"d|$HOME;`x`");
  captured_free(&c);
  qvm_ssh_free(ssh);
}

static int count_cb(void *ctx, int stream, const void *data, size_t len) {
  uint64_t *counts = ctx;
  const unsigned char *p = data;
  for (size_t i = 0; i < len; i++)
    if (p[i] != 0) return QVM_EPROTO;
  counts[stream - 1] += len;
  return 0;
}

static void test_exec_heavy_both_streams(void **state) {
  (void)state;
  qvm_ssh *ssh = env_connect();
  qvm_ssh_exec_options o = QVM_SSH_EXEC_OPTIONS_INIT;
  qvm_ssh_exec_result res;
  uint64_t counts[2] = {0, 0};
  qvm_error *err = NULL;
  o.command = "head -c 104857600 /dev/zero & head -c 104857600 /dev/zero >&2; wait";
  o.on_output = count_cb;
  o.ctx = counts;
  o.timeout_ms = 300000;
  int r = qvm_ssh_exec(&res, ssh, &o, &err);
  if (r < 0) fail_msg("exec: %s", qvm_error_message(err));
  assert_int_equal(res.exit_code, 0);
  assert_int_equal(counts[0], 104857600);
  assert_int_equal(counts[1], 104857600);
  assert_int_equal(res.bytes_out, 104857600);
  assert_int_equal(res.bytes_err, 104857600);
  qvm_ssh_free(ssh);
}

static void test_exec_timeout_keeps_session(void **state) {
  (void)state;
  qvm_ssh *ssh = env_connect();
  qvm_ssh_exec_options o = QVM_SSH_EXEC_OPTIONS_INIT;
  qvm_error *err = NULL;
  o.command = "sleep 30";
  o.timeout_ms = 300;
  assert_int_equal(qvm_ssh_exec(NULL, ssh, &o, &err), QVM_ETIMEOUT);
  assert_non_null(strstr(qvm_error_message(err), "300 ms"));
  qvm_error_free(err);
  captured c;
  o = (qvm_ssh_exec_options)QVM_SSH_EXEC_OPTIONS_INIT;
  o.command = "echo still";
  assert_int_equal(run_capture(&c, ssh, &o), 0);
  assert_string_equal(c.out, "still\n");
  captured_free(&c);
  qvm_ssh_free(ssh);
}

static void test_audit_log(void **state) {
  (void)state;
  qvm_ssh *ssh = env_connect();
  qvm_ssh_exec_options o = QVM_SSH_EXEC_OPTIONS_INIT;
  const char *argv[] = {"sh", "-c", "printf abc; printf de >&2; exit 3", "x\"y\n", NULL};
  captured c;
  unlink(env.audit);
  o.argv = argv;
  assert_int_equal(run_capture(&c, ssh, &o), 0);
  captured_free(&c);
  char *text = qvm_test_sh_output("cat '%s'", env.audit);
  assert_non_null(text);
  assert_null(strchr(text, '\n')); /* one line (trailing newline stripped) */
  json_object *j = json_tokener_parse(text), *v = NULL;
  assert_non_null(j);
  assert_true(json_object_object_get_ex(j, "time", &v));
  assert_true(json_object_object_get_ex(j, "command", &v));
  assert_int_equal(json_object_array_length(v), 4);
  assert_string_equal(json_object_get_string(json_object_array_get_idx(v, 3)), "x\"y\n");
  assert_true(json_object_object_get_ex(j, "exit", &v));
  assert_int_equal(json_object_get_int(v), 3);
  assert_true(json_object_object_get_ex(j, "bytes_out", &v));
  assert_int_equal(json_object_get_int(v), 3);
  assert_true(json_object_object_get_ex(j, "bytes_err", &v));
  assert_int_equal(json_object_get_int(v), 2);
  assert_true(json_object_object_get_ex(j, "duration_ms", &v));
  assert_true(json_object_get_int(v) >= 0);
  json_object_put(j);
  free(text);
  qvm_ssh_free(ssh);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_keys_accepted_by_openssh),
      cmocka_unit_test(test_pinned_key_accepted),
      cmocka_unit_test(test_changed_host_key_refused),
      cmocka_unit_test(test_tofu),
      cmocka_unit_test(test_connect_errors),
      cmocka_unit_test(test_exec_quoting),
      cmocka_unit_test(test_exec_exit_signal_stdin_env),
      cmocka_unit_test(test_exec_heavy_both_streams),
      cmocka_unit_test(test_exec_timeout_keeps_session),
      cmocka_unit_test(test_audit_log),
      cmocka_unit_test(test_sftp_roundtrip),
      cmocka_unit_test(test_provision_abort),
      cmocka_unit_test(test_provision_file_and_script),
      cmocka_unit_test(test_provision_script_cleanup),
      cmocka_unit_test(test_shell_pty),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
