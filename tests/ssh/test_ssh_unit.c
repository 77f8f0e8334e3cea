/* SPDX-License-Identifier: MIT */
/* Pure parts of ssh/: quoting, JSON escaping, key format, known_hosts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sodium.h>

#include <qvm/ssh.h>

#include "ssh/ssh_internal.h"
#include "testlib.h"
#include "util/fs.h"

static void test_quote_table(void **state) {
  (void)state;
  static const struct {
    const char *argv[4];
    const char *want;
  } table[] = {
      {{"ls", "a b", NULL}, "'ls' 'a b'"},
      {{"echo", "", NULL}, "'echo' ''"},
      {{"echo", "it's", NULL}, "'echo' 'it'\\''s'"},
      {{"echo", "$HOME;`id`", NULL}, "'echo' '$HOME;`id`'"},
      {{"echo", "a\nb", "*", NULL}, "'echo' 'a\nb' '*'"},
      {{"echo", "back\\slash", NULL}, "'echo' 'back\\slash'"},
  };
  for (size_t i = 0; i < QVM_ARRAY_SIZE(table); i++) {
    char *out = NULL;
    assert_int_equal(qvm_ssh_quote_command(&out, table[i].argv, NULL, NULL), 0);
    assert_string_equal(out, table[i].want);
    free(out);
  }
}

static void test_quote_env(void **state) {
  (void)state;
  const char *argv[] = {"env", NULL};
  const char *env[] = {"FOO=a b", "B_2=it's", "EMPTY=", NULL};
  char *out = NULL;
  assert_int_equal(qvm_ssh_quote_command(&out, argv, env, NULL), 0);
  assert_string_equal(out, "FOO='a b' B_2='it'\\''s' EMPTY='' 'env'");
  free(out);
  const char *bad[][2] = {
      {"1X=y", NULL}, {"A B=c", NULL}, {"noequals", NULL}, {"=v", NULL}, {"$(x)=1", NULL}};
  for (size_t i = 0; i < QVM_ARRAY_SIZE(bad); i++) {
    qvm_error *err = NULL;
    assert_int_equal(qvm_ssh_quote_command(&out, argv, bad[i], &err), QVM_EINVAL);
    assert_non_null(strstr(qvm_error_message(err), bad[i][0]));
    qvm_error_free(err);
  }
  const char *empty[] = {NULL};
  assert_int_equal(qvm_ssh_quote_command(&out, empty, NULL, NULL), QVM_EINVAL);
}

static void test_json_string(void **state) {
  (void)state;
  qvm_strbuf sb = QVM_STRBUF_INIT;
  ssh_json_string(&sb, "a\"b\\c\n\t\x01\x7f é \xff\xc3");
  assert_string_equal(sb.buf, "\"a\\\"b\\\\c\\n\\t\\u0001\\u007f é \\ufffd\\ufffd\"");
  qvm_strbuf_free(&sb);
}

static void test_key_roundtrip(void **state) {
  (void)state;
  char *dir = qvm_test_mkdtemp("sshkey"), path[4096], *fp = NULL;
  qvm_ssh_key *key = NULL, *back = NULL;
  struct stat st;
  assert_int_equal(qvm_ssh_key_generate(&key, "qvm@test", NULL), 0);
  assert_non_null(strstr(qvm_ssh_key_private_text(key), "-----BEGIN OPENSSH PRIVATE KEY-----\n"));
  assert_memory_equal(qvm_ssh_key_public_line(key), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA", 36);
  assert_non_null(strstr(qvm_ssh_key_public_line(key), " qvm@test"));
  assert_int_equal(strlen(qvm_ssh_key_fingerprint(key)), 7 + 43);
  snprintf(path, sizeof(path), "%s/id_ed25519", dir);
  assert_int_equal(qvm_ssh_key_write(key, path, NULL, NULL), 0);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(qvm_ssh_key_load(&back, path, NULL), 0);
  assert_string_equal(qvm_ssh_key_public_line(back), qvm_ssh_key_public_line(key));
  assert_int_equal(qvm_ssh_public_line_fingerprint(&fp, qvm_ssh_key_public_line(key), NULL), 0);
  assert_string_equal(fp, qvm_ssh_key_fingerprint(key));
  strcat(path, ".pub");
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0644);
  free(fp);
  qvm_ssh_key_free(key);
  qvm_ssh_key_free(back);
  qvm_test_rmtree(dir);
  free(dir);
}

static void test_key_load_garbage(void **state) {
  (void)state;
  static const char *const bad[] = {
      "",
      "not a key",
      "-----BEGIN OPENSSH PRIVATE KEY-----\n!!!!\n-----END OPENSSH PRIVATE KEY-----\n",
      "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n-----END OPENSSH PRIVATE "
      "KEY-----\n",
      "-----BEGIN OPENSSH PRIVATE "
      "KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAAB/////w==\n"
      "-----END OPENSSH PRIVATE KEY-----\n",
      "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n",
  };
  char *dir = qvm_test_mkdtemp("sshkeybad"), path[4096];
  snprintf(path, sizeof(path), "%s/k", dir);
  for (size_t i = 0; i < QVM_ARRAY_SIZE(bad); i++) {
    qvm_ssh_key *key = NULL;
    qvm_error *err = NULL;
    assert_int_equal(qvm_write_file_atomic(path, bad[i], strlen(bad[i]), 0600, NULL), 0);
    assert_int_equal(qvm_ssh_key_load(&key, path, &err), QVM_EINVAL);
    assert_null(key);
    qvm_error_free(err);
  }
  /* Truncations of a valid key never crash and never load. */
  qvm_ssh_key *key = NULL;
  assert_int_equal(qvm_ssh_key_generate(&key, "", NULL), 0);
  const char *text = qvm_ssh_key_private_text(key);
  for (size_t cut = 40; cut < strlen(text) - 40; cut += 7) {
    char *t = NULL;
    qvm_ssh_key *k = NULL;
    assert_true(asprintf(&t, "%.*s\n-----END OPENSSH PRIVATE KEY-----\n", (int)cut, text) > 0);
    assert_int_equal(qvm_write_file_atomic(path, t, strlen(t), 0600, NULL), 0);
    assert_int_not_equal(qvm_ssh_key_load(&k, path, NULL), 0);
    free(t);
  }
  qvm_ssh_key_free(key);
  qvm_test_rmtree(dir);
  free(dir);
}

static void test_known_hosts_pin_and_parse(void **state) {
  (void)state;
  char *dir = qvm_test_mkdtemp("sshkh"), path[4096];
  qvm_ssh_key *key = NULL;
  qvm_error *err = NULL;
  snprintf(path, sizeof(path), "%s/known_hosts", dir);
  assert_int_equal(qvm_ssh_key_generate(&key, "host", NULL), 0);
  assert_int_equal(qvm_ssh_known_hosts_pin(path, "vm-1", qvm_ssh_key_public_line(key), NULL), 0);
  char *algos = ssh_known_hosts_algorithms(path);
  assert_string_equal(algos, "ssh-ed25519");
  free(algos);
  assert_int_equal(qvm_ssh_known_hosts_pin(path, "bad alias", qvm_ssh_key_public_line(key), &err),
                   QVM_EINVAL);
  qvm_error_free(err);
  err = NULL;
  assert_int_equal(qvm_ssh_known_hosts_pin(path, "vm", "ssh-rsa AAAAC3NzaC1lZDI1NTE5", &err),
                   QVM_EINVAL);
  qvm_error_free(err);
  static const char *const garbage[] = {
      "vm ssh-ed25519\n", "@revoked * ssh-ed25519 AAAA\n", "vm ssh-ed25519 !!!!\n",
      "vm ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIA==\n", "vm ssh-ed25519 AAAAAAAA\n"};
  for (size_t i = 0; i < QVM_ARRAY_SIZE(garbage); i++) {
    assert_int_equal(qvm_write_file_atomic(path, garbage[i], strlen(garbage[i]), 0644, NULL), 0);
    assert_null(ssh_known_hosts_algorithms(path));
  }
  qvm_ssh_key_free(key);
  qvm_test_rmtree(dir);
  free(dir);
}

static void test_openssh_equivalents(void **state) {
  (void)state;
  qvm_ssh_options o = QVM_SSH_OPTIONS_INIT;
  char *cmd = NULL, *cfg = NULL;
  o.host = "127.0.0.1";
  o.port = 2222;
  o.vm_name = "web-1";
  o.identity = "/var/lib/qvm/vms/web-1/id_ed25519";
  o.known_hosts = "/var/lib/qvm/vms/web-1/known_hosts";
  assert_int_equal(qvm_ssh_openssh_command(&cmd, &o, NULL), 0);
  assert_string_equal(cmd, "ssh -i '/var/lib/qvm/vms/web-1/id_ed25519' -o IdentitiesOnly=yes "
                           "-o UserKnownHostsFile='/var/lib/qvm/vms/web-1/known_hosts' "
                           "-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes "
                           "-o HostKeyAlias='web-1' -p 2222 'root@127.0.0.1'");
  assert_int_equal(qvm_ssh_openssh_config(&cfg, "qvm-web-1", &o, NULL), 0);
  assert_non_null(strstr(cfg, "Host qvm-web-1\n  HostName 127.0.0.1\n  Port 2222\n"));
  assert_non_null(strstr(cfg, "StrictHostKeyChecking yes\n"));
  free(cmd);
  free(cfg);
}

/* Keys qvm cannot read itself are named as such, with ssh-agent as the way
 * out; public key lines are checked. */
static void test_key_unloadable_and_public_lines(void **state) {
  (void)state;
  char *dir = qvm_test_mkdtemp("sshkeykind"), path[4096];
  static const struct {
    const char *args, *want;
  } kinds[] = {{"-t ed25519 -N secret", "is encrypted"},
               {"-t ecdsa -N ''", "is a ecdsa-sha2-nistp256 key"},
               {"-t rsa -b 1024 -m PEM -N ''", "not in the openssh format"}};
  for (size_t i = 0; i < QVM_ARRAY_SIZE(kinds); i++) {
    snprintf(path, sizeof(path), "%s/k%zu", dir, i);
    if (qvm_test_sh("ssh-keygen -q %s -f '%s' >/dev/null 2>&1", kinds[i].args, path) != 0)
      qvm_test_skip("ssh-keygen is missing");
    qvm_ssh_key *key = NULL;
    qvm_error *err = NULL;
    assert_int_equal(qvm_ssh_key_load(&key, path, &err), QVM_EINVAL);
    const char *msg = qvm_error_message(err);
    if (!strstr(msg, kinds[i].want) || !strstr(msg, "ssh-add") || !strstr(msg, "--agent"))
      fail_msg("'%s': %s", kinds[i].args, msg);
    qvm_error_free(err);
  }
  static const char *const bad[] = {"garbage",
                                    "ssh-ed25519",
                                    "ssh-ed25519 !!!",
                                    "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIG",
                                    "-----BEGIN OPENSSH PRIVATE KEY-----",
                                    "command=\"x\" ssh-ed25519 AAAA"};
  for (size_t i = 0; i < QVM_ARRAY_SIZE(bad); i++) {
    qvm_error *err = NULL;
    assert_int_equal(qvm_ssh_public_line_check(bad[i], &err), QVM_EINVAL);
    qvm_error_free(err);
  }
  qvm_ssh_key *key = NULL;
  assert_int_equal(qvm_ssh_key_generate(&key, "c", NULL), 0);
  assert_int_equal(qvm_ssh_public_line_check(qvm_ssh_key_public_line(key), NULL), 0);
  qvm_ssh_key_free(key);
  qvm_test_rmtree(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_quote_table),
      cmocka_unit_test(test_quote_env),
      cmocka_unit_test(test_json_string),
      cmocka_unit_test(test_key_roundtrip),
      cmocka_unit_test(test_key_load_garbage),
      cmocka_unit_test(test_known_hosts_pin_and_parse),
      cmocka_unit_test(test_openssh_equivalents),
      cmocka_unit_test(test_key_unloadable_and_public_lines),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
