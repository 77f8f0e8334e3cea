/* SPDX-License-Identifier: MIT */
/*
 * The guest chooses the name in an SSH "exit-signal" message: qvm prints it
 * ("killed by signal NAME") and logs it. Here a real sshd kills the command
 * with TERM, and the name libssh2 hands qvm on the way back is replaced by a
 * hostile one (the linker's --wrap), so the whole exec path runs as with a
 * hostile guest. The name qvm reports and the audit log line must carry no
 * control sequence and be valid UTF-8.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <libssh2.h>

#include <qvm/ssh.h>

#include "ssh_server.h"
#include "testlib.h"
#include "util/fs.h"

static const char hostile[] = "\x1b]0;pwned\x07\x1b[2J\xc2\x9b"
                              "31m\xc2\x9d\x9b\x7f\xff\xe2\x80\xaeTERM";

int __real_libssh2_channel_get_exit_signal(LIBSSH2_CHANNEL *ch, char **sig, size_t *sig_len,
                                           char **msg, size_t *msg_len, char **lang,
                                           size_t *lang_len);
int __wrap_libssh2_channel_get_exit_signal(LIBSSH2_CHANNEL *ch, char **sig, size_t *sig_len,
                                           char **msg, size_t *msg_len, char **lang,
                                           size_t *lang_len);

/* What a hostile guest's sshd would send instead of the real name. */
int __wrap_libssh2_channel_get_exit_signal(LIBSSH2_CHANNEL *ch, char **sig, size_t *sig_len,
                                           char **msg, size_t *msg_len, char **lang,
                                           size_t *lang_len) {
  int r = __real_libssh2_channel_get_exit_signal(ch, sig, sig_len, msg, msg_len, lang, lang_len);
  if (r == 0 && sig && *sig) {
    free(*sig); /* the session's default allocator */
    *sig = malloc(sizeof hostile);
    memcpy(*sig, hostile, sizeof hostile);
    if (sig_len) *sig_len = sizeof hostile - 1;
  }
  return r;
}

static test_server server;
static char *dir;
static char key_path[4096], known_hosts[4096], audit[4096];

static int setup(void **state) {
  (void)state;
  qvm_test_require_root();
  qvm_test_require_program("/usr/sbin/sshd");
  qvm_test_require_program("unshare");
  qvm_ssh_key *client = NULL, *host = NULL;
  char host_path[4096], *auth = NULL;
  dir = qvm_test_mkdtemp("hostile-signal");
  snprintf(key_path, sizeof key_path, "%s/id_ed25519", dir);
  snprintf(known_hosts, sizeof known_hosts, "%s/known_hosts", dir);
  snprintf(audit, sizeof audit, "%s/audit.jsonl", dir);
  snprintf(host_path, sizeof host_path, "%s/ssh_host_ed25519_key", dir);
  int r = -1;
  if (qvm_ssh_key_generate(&client, "client", NULL) == 0 &&
      qvm_ssh_key_generate(&host, "root@hostile", NULL) == 0 &&
      qvm_ssh_key_write(client, key_path, NULL, NULL) == 0 &&
      qvm_ssh_key_write(host, host_path, NULL, NULL) == 0 &&
      asprintf(&auth, "%s\n", qvm_ssh_key_public_line(client)) > 0 &&
      test_sshd_start(&server, host_path, qvm_ssh_key_public_line(host), auth) == 0)
    r = qvm_ssh_known_hosts_pin(known_hosts, "hostile", qvm_ssh_key_public_line(host), NULL);
  free(auth);
  qvm_ssh_key_free(client);
  qvm_ssh_key_free(host);
  return r;
}

static int teardown(void **state) {
  (void)state;
  test_server_stop(&server);
  if (dir) qvm_test_rmtree(dir);
  free(dir);
  return 0;
}

/* No C0/C1 control, DEL, bidi override, and valid UTF-8. */
static void assert_terminal_safe(const char *what, const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = s[i];
    if (c < 0x20 || c == 0x7f) fail_msg("%s holds control byte 0x%02x at %zu", what, c, i);
    if (c < 0x80) continue;
    size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    if (!len || i + len > n) fail_msg("%s is not UTF-8 at %zu", what, i);
    uint32_t cp = c & (0xff >> (len + 1));
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80) fail_msg("%s is not UTF-8 at %zu", what, i);
      cp = cp << 6 | (s[i + k] & 0x3f);
    }
    if (cp <= 0x9f || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
      fail_msg("%s holds code point U+%04X", what, (unsigned)cp);
    i += len - 1;
  }
}

static void test_hostile_exit_signal_name(void **state) {
  (void)state;
  qvm_ssh_options o = QVM_SSH_OPTIONS_INIT;
  o.host = "127.0.0.1";
  o.port = server.port;
  o.vm_name = "hostile";
  o.known_hosts = known_hosts;
  o.identity = key_path;
  o.timeout_ms = 20000;
  qvm_ssh *ssh = NULL;
  qvm_error *err = NULL;
  if (qvm_ssh_connect(&ssh, &o, &err) < 0) fail_msg("connect: %s", qvm_error_message(err));
  qvm_ssh_exec_options eo = QVM_SSH_EXEC_OPTIONS_INIT;
  eo.command = "kill -TERM $$";
  eo.audit_log = audit;
  qvm_ssh_exec_result res = {0};
  if (qvm_ssh_exec(&res, ssh, &eo, &err) < 0) fail_msg("exec: %s", qvm_error_message(err));
  assert_true(res.signaled);
  assert_true(res.signal[0] != '\0');
  assert_terminal_safe("the signal name", (const unsigned char *)res.signal, strlen(res.signal));
  assert_non_null(strstr(res.signal, "pwned")); /* shown, escaped, not dropped */

  char *line = NULL;
  size_t len = 0;
  assert_int_equal(qvm_read_file(&line, &len, audit, 1 << 20, NULL), 0);
  assert_terminal_safe("the audit log", (const unsigned char *)line, len - 1); /* its '\n' */
  struct json_object *j = json_tokener_parse(line), *sig = NULL;
  assert_non_null(j);
  assert_true(json_object_object_get_ex(j, "signal", &sig));
  const char *logged = json_object_get_string(sig);
  assert_terminal_safe("the logged signal", (const unsigned char *)logged, strlen(logged));
  json_object_put(j);
  free(line);
  qvm_ssh_free(ssh);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_hostile_exit_signal_name)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
