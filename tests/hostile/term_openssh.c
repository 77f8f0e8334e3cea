/* SPDX-License-Identifier: MIT */
/*
 * The OpenSSH equivalents of a session (`qvm ssh --print`, `qvm ssh-config`)
 * are read by a shell and by ssh's config parser, and the address in them
 * may be the guest's choice. A hostile address (or user, alias, path) is
 * refused; what is accepted reaches a real OpenSSH exactly (ssh -G shows
 * what ssh parsed), and the printed command, run through a shell, runs
 * nothing but ssh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <qvm/ssh.h>

#include "testlib.h"
#include "util/fs.h"

static qvm_ssh_options base(void) {
  qvm_ssh_options o = QVM_SSH_OPTIONS_INIT;
  o.host = "10.77.0.5";
  o.port = 22;
  o.user = "qvm";
  o.vm_name = "hv";
  o.identity = "/var/lib/qvm/vms/hv/id_ed25519";
  o.known_hosts = "/var/lib/qvm/vms/hv/known_hosts";
  return o;
}

static void expect_refused(const char *what, qvm_ssh_options o) {
  char *cmd = NULL, *cfg = NULL;
  int a = qvm_ssh_openssh_command(&cmd, &o, NULL);
  int b = qvm_ssh_openssh_config(&cfg, "hv", &o, NULL);
  if (a != QVM_EINVAL || b != QVM_EINVAL)
    fail_msg("%s was not refused: command %d '%s', config %d '%s'", what, a, cmd ? cmd : "", b,
             cfg ? cfg : "");
}

static void test_hostile_values_refused(void **state) {
  (void)state;
  static const char *const hosts[] = {"$(id>p)",
                                      "`id>p`",
                                      "1.2.3.4;id>p",
                                      "a b",
                                      "1\nProxyJump x",
                                      "1\rProxyJump x",
                                      "\"1.2.3.4\"",
                                      "-oProxyCommand=x",
                                      "\x1b]0;pwn\x07",
                                      "1.2.3.4\xc2\x9b",
                                      "10.0.0.1 -p 1",
                                      "",
                                      "a'b",
                                      "h%d",
                                      "1.2.3.4#comment",
                                      "x=y"};
  for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
    qvm_ssh_options o = base();
    o.host = hosts[i];
    expect_refused(hosts[i], o);
  }
  static const char *const users[] = {
      "-oProxyCommand=x", "a b", "u\nProxyJump x", "$(id)", "r@evil", "", "u\"", "u%h"};
  for (size_t i = 0; i < sizeof users / sizeof users[0]; i++) {
    qvm_ssh_options o = base();
    o.user = users[i];
    expect_refused(users[i], o);
  }
  static const char *const paths[] = {"/a\nProxyJump x", "/a\"b", "/a\\b", "/a%d", "/a\x1b[2J"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    qvm_ssh_options o = base();
    o.identity = paths[i];
    expect_refused(paths[i], o);
    o = base();
    o.known_hosts = paths[i];
    expect_refused(paths[i], o);
  }
  qvm_ssh_options o = base();
  o.vm_name = "h v";
  expect_refused("alias 'h v'", o);
  o = base();
  o.port = 70000;
  expect_refused("port 70000", o);
}

/* Awkward but honest values reach ssh exactly, through the shell and -o
 * (the command) and through ssh_config (the stanza). */
static void test_values_reach_openssh(void **state) {
  (void)state;
  qvm_test_require_program("ssh");
  char *dir = qvm_test_mkdtemp("hostile-openssh"), id[4096], kh[4096], cfg_path[4096];
  snprintf(id, sizeof id, "%s/a b'#c/id", dir);
  snprintf(kh, sizeof kh, "%s/a b'#c/known hosts", dir);
  snprintf(cfg_path, sizeof cfg_path, "%s/cfg", dir);
  char sub[4096];
  snprintf(sub, sizeof sub, "%s/a b'#c", dir);
  assert_int_equal(mkdir(sub, 0700), 0);
  assert_int_equal(qvm_write_file_atomic(id, "", 0, 0600, NULL), 0);
  assert_int_equal(qvm_write_file_atomic(kh, "", 0, 0644, NULL), 0);
  qvm_ssh_options o = base();
  o.host = "fd00::5";
  o.port = 2222;
  o.identity = id;
  o.known_hosts = kh;
  char *cmd = NULL, *cfg = NULL;
  assert_int_equal(qvm_ssh_openssh_command(&cmd, &o, NULL), 0);
  assert_int_equal(qvm_ssh_openssh_config(&cfg, "hv", &o, NULL), 0);
  assert_int_equal(qvm_write_file_atomic(cfg_path, cfg, strlen(cfg), 0644, NULL), 0);
  assert_int_equal(strncmp(cmd, "ssh ", 4), 0);
  char *via_cmd = qvm_test_sh_output("cd '%s' && ssh -G %s 2>/dev/null | grep -E "
                                     "'^(hostname|port|user|userknownhostsfile|hostkeyalias|"
                                     "identityfile) '",
                                     dir, cmd + 4);
  char *via_cfg = qvm_test_sh_output("ssh -G -F '%s' hv 2>/dev/null | grep -E "
                                     "'^(hostname|port|user|userknownhostsfile|hostkeyalias|"
                                     "identityfile) '",
                                     cfg_path);
  assert_non_null(via_cmd);
  assert_non_null(via_cfg);
  char want[12000];
  snprintf(want, sizeof want,
           "user qvm\nhostname fd00::5\nport 2222\nhostkeyalias hv\nidentityfile %s\n"
           "userknownhostsfile %s",
           id, kh);
  assert_string_equal(via_cmd, want);
  assert_string_equal(via_cfg, want);
  free(via_cmd);
  free(via_cfg);
  free(cmd);
  free(cfg);
  qvm_test_rmtree(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hostile_values_refused),
      cmocka_unit_test(test_values_reach_openssh),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
