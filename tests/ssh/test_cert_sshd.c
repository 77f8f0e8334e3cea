/* SPDX-License-Identifier: MIT */
/*
 * Certificates from qvm's CA against OpenSSH itself: ssh-keygen -L reads
 * what `qvm cert issue` wrote; a real sshd trusting the user CA
 * (TrustedUserCAKeys) lets plain `ssh -i FILE` in and refuses a certificate
 * of another CA, an expired one and, through RevokedKeys = qvm's KRL, a
 * revoked one; ssh-keygen -Q agrees with the KRL; a client whose
 * known_hosts holds only "@cert-authority * HOST-CA" reaches the sshd
 * presenting a qvm host certificate with StrictHostKeyChecking=yes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include <qvm/cert.h>
#include <qvm/ssh.h>

#include "ssh_server.h"
#include "testlib.h"

#define VM "certvm"

static struct {
  test_server server;
  char *dir;
  char qvm[4096], state[4096], known_hosts[4096], ca_known_hosts[4096];
  qvm_cert_ca *ca;
} env;

static int write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fputs(text, f);
  return fclose(f);
}

static int setup(void **state) {
  (void)state;
  qvm_test_require_root();
  qvm_test_require_program("/usr/sbin/sshd");
  qvm_test_require_program("ssh");
  qvm_test_require_program("ssh-keygen");
  qvm_test_require_program("unshare");
  char path[4096], run[4096], host_key[4096], host_cert[4096], *config = NULL, *line = NULL;
  qvm_ssh_key *hk = NULL;
  qvm_cert *hc = NULL;
  env.dir = qvm_test_mkdtemp("certsshd");
  snprintf(env.qvm, sizeof env.qvm, "%s/qvm", qvm_test_binary_dir());
  snprintf(env.state, sizeof env.state, "%s/state", env.dir);
  snprintf(run, sizeof run, "%s/run", env.dir);
  setenv("QVM_STATE_DIR", env.state, 1);
  setenv("QVM_RUNTIME_DIR", run, 1);
  snprintf(path, sizeof path, "%s/kernel", env.dir);
  if (write_text(path, "") < 0 ||
      qvm_test_sh("'%s' create " VM " --kernel '%s' >/dev/null", env.qvm, path) != 0)
    return -1;
  if (qvm_cert_ca_open(&env.ca, NULL, NULL) < 0) return -1;
  /* The host key, and a host certificate for it naming the vm. */
  snprintf(host_key, sizeof host_key, "%s/host_key", env.dir);
  snprintf(host_cert, sizeof host_cert, "%s/host_key-cert.pub", env.dir);
  qvm_cert_options ho = QVM_CERT_OPTIONS_INIT;
  ho.kind = QVM_CERT_HOST;
  ho.vm = VM;
  ho.ttl_ms = 3600 * 1000;
  if (qvm_ssh_key_generate(&hk, "", NULL) < 0 || qvm_ssh_key_write(hk, host_key, NULL, NULL) < 0)
    return -1;
  ho.public_line = qvm_ssh_key_public_line(hk);
  if (qvm_cert_issue(&hc, env.ca, &ho, NULL) < 0 || qvm_cert_write(hc, host_cert, NULL) < 0)
    return -1;
  qvm_cert_free(hc);
  if (asprintf(&config, "TrustedUserCAKeys %s/ca/user_ca.pub\nRevokedKeys %s\nHostCertificate %s\n",
               env.state, qvm_cert_ca_krl_path(env.ca), host_cert) < 0)
    return -1;
  int r = test_sshd_start_config(&env.server, host_key, qvm_ssh_key_public_line(hk), "", config);
  free(config);
  snprintf(env.known_hosts, sizeof env.known_hosts, "%s/known_hosts", env.dir);
  snprintf(env.ca_known_hosts, sizeof env.ca_known_hosts, "%s/known_hosts_ca", env.dir);
  if (r < 0 || qvm_ssh_known_hosts_pin(env.known_hosts, VM, qvm_ssh_key_public_line(hk), NULL) < 0)
    r = -1;
  qvm_ssh_key_free(hk);
  /* The host CA line as `qvm cert ca --host --print` prints it. */
  line = qvm_test_sh_output("'%s' cert ca --host --print", env.qvm);
  if (r < 0 || !line || asprintf(&config, "@cert-authority * %s\n", line) < 0) r = -1;
  if (r >= 0) r = write_text(env.ca_known_hosts, config);
  free(config);
  free(line);
  return r;
}

static int teardown(void **state) {
  (void)state;
  test_server_stop(&env.server);
  qvm_cert_ca_free(env.ca);
  if (env.dir) qvm_test_rmtree(env.dir);
  free(env.dir);
  return 0;
}

/* Plain OpenSSH, nothing but the given key (and its -cert.pub) and hosts. */
static int ssh_login(const char *identity, const char *known_hosts, const char *alias) {
  return qvm_test_sh("ssh -F /dev/null -i '%s' -o IdentitiesOnly=yes -o UserKnownHostsFile='%s' "
                     "-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes "
                     "-o HostKeyAlias=%s -o BatchMode=yes -o ConnectTimeout=20 -p %d "
                     "root@127.0.0.1 true </dev/null 2>/dev/null",
                     identity, known_hosts, alias, env.server.port);
}

/* `qvm cert issue VM -o DIR/name ARGS --json`: the serial. */
static uint64_t cli_issue(const char *name, const char *args, char **json_out) {
  char *out = qvm_test_sh_output("'%s' cert issue " VM " -o '%s/%s' --principal root %s --json",
                                 env.qvm, env.dir, name, args);
  assert_non_null(out);
  struct json_object *o = json_tokener_parse(out), *v = NULL;
  assert_non_null(o);
  assert_true(json_object_object_get_ex(o, "serial", &v));
  uint64_t serial = (uint64_t)json_object_get_int64(v);
  assert_true(serial > 0);
  json_object_put(o);
  if (json_out)
    *json_out = out;
  else
    free(out);
  return serial;
}

static char *json_member(const char *json, const char *key) {
  struct json_object *o = json_tokener_parse(json), *v = NULL;
  assert_true(json_object_object_get_ex(o, key, &v));
  char *s = strdup(json_object_get_string(v));
  json_object_put(o);
  return s;
}

static void assert_contains(const char *hay, const char *needle) {
  if (!strstr(hay, needle)) fail_msg("'%s' not found in:\n%s", needle, hay);
}

static void test_issue_keygen_and_login(void **state) {
  (void)state;
  char *json = NULL, want[512], path[4096];
  uint64_t serial = cli_issue("c1", "--ttl 2m --source-address 127.0.0.1/32,::1", &json);
  char *listing = qvm_test_sh_output("TZ=UTC ssh-keygen -L -f '%s/c1-cert.pub'", env.dir);
  assert_non_null(listing);
  assert_contains(listing, "Type: ssh-ed25519-cert-v01@openssh.com user certificate");
  snprintf(want, sizeof want, "Key ID: \"qvm:root:" VM ":%" PRIu64 "\"", serial);
  assert_contains(listing, want);
  snprintf(want, sizeof want, "Serial: %" PRIu64 "\n", serial);
  assert_contains(listing, want);
  assert_contains(listing, "Principals: \n                root\n");
  assert_contains(listing, "Critical Options: \n                source-address 127.0.0.1/32,::1\n");
  /* permit-pty is the last line: the only extension */
  const char *ext = "Extensions: \n                permit-pty";
  assert_contains(listing, ext);
  assert_string_equal(listing + strlen(listing) - strlen(ext), ext);
  assert_null(strstr(listing, "forwarding"));
  /* The validity ssh-keygen reads is the one qvm printed: 2 minutes + 30 s skew. */
  char *after = json_member(json, "valid_after"), *before = json_member(json, "valid_before");
  after[strlen(after) - 1] = before[strlen(before) - 1] = 0; /* the Z */
  snprintf(want, sizeof want, "Valid: from %s to %s\n", after, before);
  assert_contains(listing, want);
  struct tm ta = {0}, tb = {0};
  assert_non_null(strptime(after, "%Y-%m-%dT%H:%M:%S", &ta));
  assert_non_null(strptime(before, "%Y-%m-%dT%H:%M:%S", &tb));
  assert_int_equal((long)(timegm(&tb) - timegm(&ta)), 150);
  free(after), free(before), free(listing), free(json);
  /* The key is 0600 and plain ssh -i logs in with it. */
  struct stat st;
  snprintf(path, sizeof path, "%s/c1", env.dir);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(ssh_login(path, env.known_hosts, VM), 0);
}

static void test_other_ca_refused(void **state) {
  (void)state;
  char cadir[4096], key[4096], cert_path[4096];
  qvm_cert_ca *other = NULL;
  qvm_ssh_key *k = NULL;
  qvm_cert *c = NULL;
  snprintf(cadir, sizeof cadir, "%s/other-ca", env.dir);
  snprintf(key, sizeof key, "%s/other", env.dir);
  snprintf(cert_path, sizeof cert_path, "%s/other-cert.pub", env.dir);
  static const char *const root[] = {"root", NULL};
  qvm_cert_options o = QVM_CERT_OPTIONS_INIT;
  o.vm = VM;
  o.principals = root;
  assert_int_equal(qvm_cert_ca_open(&other, cadir, NULL), 0);
  assert_int_equal(qvm_ssh_key_generate(&k, "", NULL), 0);
  assert_int_equal(qvm_ssh_key_write(k, key, NULL, NULL), 0);
  o.public_line = qvm_ssh_key_public_line(k);
  assert_int_equal(qvm_cert_issue(&c, other, &o, NULL), 0);
  assert_int_equal(qvm_cert_write(c, cert_path, NULL), 0);
  assert_int_not_equal(ssh_login(key, env.known_hosts, VM), 0);
  /* The same key certified by the trusted CA gets in: the CA made the difference. */
  qvm_cert_free(c);
  assert_int_equal(qvm_cert_issue(&c, env.ca, &o, NULL), 0);
  assert_int_equal(qvm_cert_write(c, cert_path, NULL), 0);
  assert_int_equal(ssh_login(key, env.known_hosts, VM), 0);
  qvm_cert_free(c);
  qvm_ssh_key_free(k);
  qvm_cert_ca_free(other);
}

static void test_expired_refused(void **state) {
  (void)state;
  char key[4096], cert_path[4096];
  qvm_ssh_key *k = NULL;
  qvm_cert *c = NULL;
  snprintf(key, sizeof key, "%s/expired", env.dir);
  snprintf(cert_path, sizeof cert_path, "%s/expired-cert.pub", env.dir);
  static const char *const root[] = {"root", NULL};
  qvm_cert_options o = QVM_CERT_OPTIONS_INIT;
  o.vm = VM;
  o.principals = root;
  o.ttl_ms = 60 * 1000;
  o.now = (int64_t)time(NULL) - 3600; /* valid for a minute, an hour ago */
  assert_int_equal(qvm_ssh_key_generate(&k, "", NULL), 0);
  assert_int_equal(qvm_ssh_key_write(k, key, NULL, NULL), 0);
  o.public_line = qvm_ssh_key_public_line(k);
  assert_int_equal(qvm_cert_issue(&c, env.ca, &o, NULL), 0);
  assert_true(qvm_cert_valid_before(c) < (int64_t)time(NULL));
  assert_int_equal(qvm_cert_write(c, cert_path, NULL), 0);
  assert_int_not_equal(ssh_login(key, env.known_hosts, VM), 0);
  qvm_cert_free(c);
  qvm_ssh_key_free(k);
}

static void test_revoked_refused(void **state) {
  (void)state;
  char a[4096], b[4096], *out = NULL;
  uint64_t sa = cli_issue("ra", "", NULL), sb = cli_issue("rb", "", NULL);
  snprintf(a, sizeof a, "%s/ra", env.dir);
  snprintf(b, sizeof b, "%s/rb", env.dir);
  assert_int_equal(ssh_login(a, env.known_hosts, VM), 0);
  assert_int_equal(ssh_login(b, env.known_hosts, VM), 0);
  out = qvm_test_sh_output("'%s' cert revoke " VM " %" PRIu64, env.qvm, sa);
  assert_non_null(out);
  assert_contains(out, "1 certificate newly revoked");
  free(out);
  /* sshd reads the KRL: a is refused before it expires, b still gets in. */
  assert_int_not_equal(ssh_login(a, env.known_hosts, VM), 0);
  assert_int_equal(ssh_login(b, env.known_hosts, VM), 0);
  const char *krl = qvm_cert_ca_krl_path(env.ca);
  out = qvm_test_sh_output("ssh-keygen -Q -f '%s' '%s-cert.pub'; echo rc=$?", krl, a);
  assert_non_null(out);
  assert_contains(out, "REVOKED");
  assert_contains(out, "rc=1");
  free(out);
  out = qvm_test_sh_output("ssh-keygen -Q -f '%s' '%s-cert.pub'; echo rc=$?", krl, b);
  assert_contains(out, ": ok");
  assert_contains(out, "rc=0");
  free(out);
  /* --all: b too. */
  assert_int_equal(qvm_test_sh("'%s' cert revoke " VM " --all >/dev/null", env.qvm), 0);
  assert_int_not_equal(ssh_login(b, env.known_hosts, VM), 0);
  /* a serial never issued for the vm */
  assert_int_equal(qvm_test_sh("'%s' cert revoke " VM " 999999 2>/dev/null", env.qvm), 3);
  (void)sb;
}

static void test_host_cert(void **state) {
  (void)state;
  char key[4096], other_kh[4096], *line = NULL;
  cli_issue("hc", "", NULL);
  snprintf(key, sizeof key, "%s/hc", env.dir);
  /* Only the host CA line: no pinned key, no TOFU, strict checking. */
  assert_int_equal(ssh_login(key, env.ca_known_hosts, VM), 0);
  /* The certificate names the vm: another name is refused. */
  assert_int_not_equal(ssh_login(key, env.ca_known_hosts, "othervm"), 0);
  /* Another CA's line is refused. */
  qvm_cert_ca *other = NULL;
  char cadir[4096];
  snprintf(cadir, sizeof cadir, "%s/other-host-ca", env.dir);
  assert_int_equal(qvm_cert_ca_open(&other, cadir, NULL), 0);
  snprintf(other_kh, sizeof other_kh, "%s/known_hosts_other", env.dir);
  assert_true(
      asprintf(&line, "@cert-authority * %s\n", qvm_cert_ca_public_line(other, QVM_CERT_HOST)) > 0);
  assert_int_equal(write_text(other_kh, line), 0);
  assert_int_not_equal(ssh_login(key, other_kh, VM), 0);
  free(line);
  qvm_cert_ca_free(other);
}

static void test_cli_bad_input(void **state) {
  (void)state;
  char long_principal[300];
  memset(long_principal, 'p', sizeof long_principal - 1);
  long_principal[sizeof long_principal - 1] = 0;
  /* usage errors (2) for the ttl, before anything is written */
  assert_int_equal(
      qvm_test_sh("'%s' cert issue " VM " -o '%s/x' --ttl 0 2>/dev/null", env.qvm, env.dir), 2);
  assert_int_equal(
      qvm_test_sh("'%s' cert issue " VM " -o '%s/x' --ttl 11m 2>/dev/null", env.qvm, env.dir), 2);
  assert_int_equal(qvm_test_sh("'%s' cert issue " VM " 2>/dev/null", env.qvm), 2);
  /* library refusals (1): no key file is left behind */
  assert_int_equal(qvm_test_sh("'%s' cert issue " VM " -o '%s/x' --principal %s 2>/dev/null",
                               env.qvm, env.dir, long_principal),
                   1);
  assert_int_equal(qvm_test_sh("'%s' cert issue " VM " -o '%s/x' --source-address bogus "
                               "2>/dev/null",
                               env.qvm, env.dir),
                   1);
  assert_int_equal(qvm_test_sh("test -e '%s/x' || test -e '%s/x.pub'", env.dir, env.dir), 1);
  /* no such vm (3); an existing file is not replaced without --force (4) */
  assert_int_equal(qvm_test_sh("'%s' cert issue nosuchvm -o '%s/x' 2>/dev/null", env.qvm, env.dir),
                   3);
  assert_int_equal(
      qvm_test_sh("'%s' cert issue " VM " -o '%s/kernel' 2>/dev/null", env.qvm, env.dir), 4);
  /* A corrupt CA key in another state dir: a clear error naming it, no crash. */
  char *err = qvm_test_sh_output(
      "mkdir -p -m 0700 '%s/bad/ca' && printf garbage > '%s/bad/ca/user_ca' && "
      "chmod 0600 '%s/bad/ca/user_ca' && QVM_STATE_DIR='%s/bad' '%s' cert ca --print 2>&1; "
      "echo rc=$?",
      env.dir, env.dir, env.dir, env.dir, env.qvm);
  assert_non_null(err);
  assert_contains(err, "bad/ca/user_ca' is unusable");
  assert_contains(err, "rc=1");
  free(err);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_issue_keygen_and_login),
      cmocka_unit_test(test_other_ca_refused),
      cmocka_unit_test(test_expired_refused),
      cmocka_unit_test(test_revoked_refused),
      cmocka_unit_test(test_host_cert),
      cmocka_unit_test(test_cli_bad_input),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
