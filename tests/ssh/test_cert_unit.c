/* SPDX-License-Identifier: MIT */
/*
 * Certificates and KRLs (ssh/cert.c, ssh/krl.c) and the CA store (vm/ca.c)
 * without sshd: encode/parse round trips, every truncation and bit flip
 * refused, bounds on hostile input, file modes, corrupt CA files, serials
 * across reopen, revocation bookkeeping, concurrent CA creation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include <qvm/cert.h>
#include <qvm/ssh.h>

#include "ssh/cert.h"
#include "ssh/ssh_internal.h"
#include "testlib.h"
#include "util/fs.h"

static char *dir;

static int setup(void **state) {
  (void)state;
  dir = qvm_test_mkdtemp("cert");
  return dir ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  qvm_test_rmtree(dir);
  free(dir);
  return 0;
}

static char *subdir(const char *name) {
  char *p = NULL;
  assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
  return p;
}

static const char *const principals[] = {"root", "alice", NULL};

static ssh_cert_spec sample_spec(qvm_ssh_key *subject) {
  ssh_cert_spec s = {.type = SSH_CERT_USER,
                     .serial = 42,
                     .key_id = "qvm:tester:vm1:42",
                     .principals = principals,
                     .n_principals = 2,
                     .valid_after = 1000,
                     .valid_before = 2000,
                     .source_address = "10.0.0.0/8,::1"};
  memcpy(s.key, ssh_key_public_bytes(subject), sizeof s.key);
  return s;
}

static void test_sign_parse_roundtrip(void **state) {
  (void)state;
  qvm_ssh_key *ca = NULL, *subject = NULL;
  assert_int_equal(qvm_ssh_key_generate(&ca, "ca", NULL), 0);
  assert_int_equal(qvm_ssh_key_generate(&subject, "s", NULL), 0);
  ssh_cert_spec spec = sample_spec(subject);
  unsigned char *blob = NULL;
  size_t len = 0;
  assert_int_equal(ssh_cert_sign(&blob, &len, &spec, ssh_key_secret_bytes(ca), NULL), 0);
  ssh_cert_parsed p;
  assert_int_equal(ssh_cert_parse(&p, blob, len, NULL), 0);
  assert_int_equal(p.type, SSH_CERT_USER);
  assert_int_equal(p.serial, 42);
  assert_string_equal(p.key_id, "qvm:tester:vm1:42");
  assert_int_equal(p.n_principals, 2);
  assert_string_equal(p.principals[1], "alice");
  assert_int_equal(p.valid_after, 1000);
  assert_int_equal(p.valid_before, 2000);
  assert_string_equal(p.source_address, "10.0.0.0/8,::1");
  assert_true(p.permit_pty);
  assert_int_equal(p.n_extensions, 1); /* permit-pty only: no forwarding, no agent */
  assert_memory_equal(p.ca_key, ssh_key_public_bytes(ca), 32);
  assert_memory_equal(p.key, ssh_key_public_bytes(subject), 32);
  ssh_cert_parsed_clear(&p);

  /* Every truncation and every single-bit flip is refused, never a crash. */
  for (size_t n = 0; n < len; n++) assert_int_not_equal(ssh_cert_parse(&p, blob, n, NULL), 0);
  for (size_t i = 0; i < len; i++) {
    blob[i] ^= 0x01;
    qvm_error *err = NULL;
    assert_int_equal(ssh_cert_parse(&p, blob, len, &err), QVM_EINVAL);
    assert_non_null(err);
    qvm_error_free(err);
    blob[i] ^= 0x01;
  }
  assert_int_equal(ssh_cert_parse(&p, blob, len, NULL), 0);
  ssh_cert_parsed_clear(&p);
  free(blob);

  /* A host certificate carries no extensions and no critical options. */
  spec.type = SSH_CERT_HOST;
  spec.source_address = NULL;
  assert_int_equal(ssh_cert_sign(&blob, &len, &spec, ssh_key_secret_bytes(ca), NULL), 0);
  assert_int_equal(ssh_cert_parse(&p, blob, len, NULL), 0);
  assert_int_equal(p.type, SSH_CERT_HOST);
  assert_int_equal(p.n_extensions, 0);
  assert_null(p.source_address);
  ssh_cert_parsed_clear(&p);
  free(blob);
  qvm_ssh_key_free(ca);
  qvm_ssh_key_free(subject);
}

static void expect_spec_error(const ssh_cert_spec *spec, const char *needle) {
  qvm_error *err = NULL;
  assert_int_equal(ssh_cert_spec_check(spec, &err), QVM_EINVAL);
  if (!strstr(qvm_error_message(err), needle))
    fail_msg("message '%s' lacks '%s'", qvm_error_message(err), needle);
  qvm_error_free(err);
}

static void test_spec_bounds(void **state) {
  (void)state;
  qvm_ssh_key *subject = NULL;
  assert_int_equal(qvm_ssh_key_generate(&subject, "s", NULL), 0);
  ssh_cert_spec spec = sample_spec(subject), bad;
  assert_int_equal(ssh_cert_spec_check(&spec, NULL), 0);
  char long_text[400];
  memset(long_text, 'a', sizeof long_text - 1);
  long_text[sizeof long_text - 1] = 0;
  const char *long_principal[] = {long_text, NULL};
  const char *space_principal[] = {"a b", NULL};
  const char *comma_principal[] = {"a,b", NULL};
  const char *wild_principal[] = {"*", NULL};

  bad = spec, bad.key_id = long_text;
  expect_spec_error(&bad, "key id");
  bad = spec, bad.key_id = "qvm:\x01:x";
  expect_spec_error(&bad, "key id");
  bad = spec, bad.key_id = "qvm:\xc3\xa9";
  expect_spec_error(&bad, "key id");
  bad = spec, bad.key_id = "";
  expect_spec_error(&bad, "key id");
  bad = spec, bad.principals = long_principal, bad.n_principals = 1;
  expect_spec_error(&bad, "principal");
  bad = spec, bad.principals = space_principal, bad.n_principals = 1;
  expect_spec_error(&bad, "principal");
  bad = spec, bad.principals = comma_principal, bad.n_principals = 1;
  expect_spec_error(&bad, "principal");
  bad = spec, bad.principals = wild_principal, bad.n_principals = 1;
  expect_spec_error(&bad, "principal");
  bad = spec, bad.n_principals = 0;
  expect_spec_error(&bad, "principals");
  bad = spec, bad.n_principals = SSH_CERT_MAX_PRINCIPALS + 1;
  expect_spec_error(&bad, "principals");
  static const char *const bad_sources[] = {
      "",          "10.0.0.0/33", "::1/129",         "host.example",
      "10.0.0.1,", "10.0.0.1/",   "1.2.3.4 5.6.7.8", "10.0.0.1/-1"};
  for (size_t i = 0; i < sizeof bad_sources / sizeof *bad_sources; i++) {
    bad = spec, bad.source_address = bad_sources[i];
    expect_spec_error(&bad, "source address");
  }
  bad = spec, bad.valid_before = bad.valid_after;
  expect_spec_error(&bad, "validity");
  bad = spec, bad.serial = 0;
  expect_spec_error(&bad, "serial 0");
  bad = spec, bad.type = 3;
  expect_spec_error(&bad, "type 3");
  qvm_ssh_key_free(subject);
}

static void test_ed25519_from_line(void **state) {
  (void)state;
  qvm_ssh_key *k = NULL;
  unsigned char pk[32];
  assert_int_equal(qvm_ssh_key_generate(&k, "c", NULL), 0);
  assert_int_equal(ssh_ed25519_from_line(pk, qvm_ssh_key_public_line(k), NULL), 0);
  assert_memory_equal(pk, ssh_key_public_bytes(k), 32);
  static const char *const bad[] = {"", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ", "ssh-ed25519",
                                    "ssh-ed25519 !!!!",
                                    /* base64 of a blob naming ssh-rsa inside an ed25519 line */
                                    "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAAAgQ=="};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_int_equal(ssh_ed25519_from_line(pk, bad[i], NULL), QVM_EINVAL);
  qvm_ssh_key_free(k);
}

static void test_krl_layout(void **state) {
  (void)state;
  qvm_ssh_key *ca = NULL;
  assert_int_equal(qvm_ssh_key_generate(&ca, "ca", NULL), 0);
  qvm_strbuf empty = QVM_STRBUF_INIT, sb = QVM_STRBUF_INIT;
  assert_int_equal(ssh_krl_build(&empty, ssh_key_public_bytes(ca), NULL, 0, 7, 1000, NULL), 0);
  assert_memory_equal(empty.buf, "SSHKRL\n\0\0\0\0\1", 12);
  /* 5, 1, 2, 3 (a range), 9, duplicates and 0 dropped: one range + a list of 2. */
  const uint64_t serials[] = {5, 3, 1, 2, 9, 3, 0};
  assert_int_equal(ssh_krl_build(&sb, ssh_key_public_bytes(ca), serials, 7, 7, 1000, NULL), 0);
  /* header, section byte, u32 len, ca blob (4+51), reserved (4), range (1+4+16), list (1+4+16) */
  size_t header = empty.len;
  assert_int_equal(sb.len, header + 1 + 4 + 4 + 51 + 4 + 21 + 21);
  const unsigned char *p = (const unsigned char *)sb.buf + header;
  assert_int_equal(p[0], 1);
  const unsigned char *range = p + 1 + 4 + 4 + 51 + 4;
  assert_int_equal(range[0], 0x21);
  assert_int_equal(range[4 + 8], 1);      /* lo = 1 */
  assert_int_equal(range[4 + 16], 3);     /* hi = 3 */
  assert_int_equal(range[21], 0x20);      /* the list */
  assert_int_equal(range[21 + 5 + 7], 5); /* 5 */
  assert_int_equal(range[21 + 5 + 15], 9);
  qvm_strbuf_free(&empty);
  qvm_strbuf_free(&sb);
  qvm_ssh_key_free(ca);
}

/* Certificates OpenSSH's ssh-keygen made (in the fuzz corpus) parse too. */
static void test_parse_openssh_made(void **state) {
  (void)state;
  char path[4096], *data = NULL;
  size_t len = 0;
  ssh_cert_parsed p;
  snprintf(path, sizeof path, "%s/tests/ssh/corpus/cert/openssh-user.bin", qvm_test_source_dir());
  assert_int_equal(qvm_read_file(&data, &len, path, 65536, NULL), 0);
  assert_int_equal(ssh_cert_parse(&p, (unsigned char *)data, len, NULL), 0);
  assert_string_equal(p.key_id, "openssh-made");
  assert_int_equal(p.serial, 7);
  assert_int_equal(p.n_principals, 2);
  assert_string_equal(p.principals[1], "bob");
  assert_string_equal(p.source_address, "10.1.0.0/16");
  assert_true(p.permit_pty);
  assert_int_equal(p.n_extensions, 5); /* ssh-keygen's defaults: forwarding and all */
  ssh_cert_parsed_clear(&p);
  free(data);
  snprintf(path, sizeof path, "%s/tests/ssh/corpus/cert/openssh-host.bin", qvm_test_source_dir());
  assert_int_equal(qvm_read_file(&data, &len, path, 65536, NULL), 0);
  assert_int_equal(ssh_cert_parse(&p, (unsigned char *)data, len, NULL), 0);
  assert_int_equal(p.type, SSH_CERT_HOST);
  assert_string_equal(p.principals[0], "vm1");
  ssh_cert_parsed_clear(&p);
  free(data);
}

/* ---- the CA store ---- */

static qvm_cert_options user_options(const char *public_line, const char *vm) {
  static const char *const root[] = {"root", NULL};
  qvm_cert_options o = QVM_CERT_OPTIONS_INIT;
  o.public_line = public_line;
  o.vm = vm;
  o.principals = root;
  o.actor = "tester";
  return o;
}

static void expect_issue_error(qvm_cert_ca *ca, const qvm_cert_options *o, int code,
                               const char *needle) {
  qvm_cert *cert = NULL;
  qvm_error *err = NULL;
  assert_int_equal(qvm_cert_issue(&cert, ca, o, &err), code);
  assert_null(cert);
  if (!strstr(qvm_error_message(err), needle))
    fail_msg("message '%s' lacks '%s'", qvm_error_message(err), needle);
  qvm_error_free(err);
}

static void test_ca_store(void **state) {
  (void)state;
  char *cadir = subdir("store");
  qvm_cert_ca *ca = NULL, *again = NULL;
  qvm_ssh_key *k = NULL;
  qvm_cert *c1 = NULL, *c2 = NULL, *h = NULL;
  assert_int_equal(qvm_cert_ca_open(&ca, cadir, NULL), 0);
  struct stat st;
  char path[4096];
  assert_int_equal(stat(cadir, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);
  snprintf(path, sizeof path, "%s/user_ca", cadir);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  snprintf(path, sizeof path, "%s/host_ca", cadir);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(stat(qvm_cert_ca_krl_path(ca), &st), 0);
  assert_string_not_equal(qvm_cert_ca_public_line(ca, QVM_CERT_USER),
                          qvm_cert_ca_public_line(ca, QVM_CERT_HOST));

  assert_int_equal(qvm_ssh_key_generate(&k, "", NULL), 0);
  qvm_cert_options o = user_options(qvm_ssh_key_public_line(k), "vm1");
  assert_int_equal(qvm_cert_issue(&c1, ca, &o, NULL), 0);
  assert_int_equal(qvm_cert_serial(c1), 1);
  assert_string_equal(qvm_cert_key_id(c1), "qvm:tester:vm1:1");
  assert_true(qvm_cert_valid_before(c1) - qvm_cert_valid_after(c1) == 300 + 30);
  assert_true(strncmp(qvm_cert_line(c1), "ssh-ed25519-cert-v01@openssh.com ", 33) == 0);

  /* Milliseconds round up to the certificate's whole seconds; `now` is used. */
  qvm_cert *c3 = NULL;
  qvm_cert_options o3 = o;
  o3.ttl_ms = 1500;
  o3.now = 1700000000;
  assert_int_equal(qvm_cert_issue(&c3, ca, &o3, NULL), 0);
  assert_int_equal(qvm_cert_valid_after(c3), 1700000000 - 30);
  assert_int_equal(qvm_cert_valid_before(c3), 1700000000 + 2);
  qvm_cert_free(c3);

  /* Reopened: the same keys, and serials go on from where they were. */
  assert_int_equal(qvm_cert_ca_open(&again, cadir, NULL), 0);
  assert_string_equal(qvm_cert_ca_public_line(again, QVM_CERT_USER),
                      qvm_cert_ca_public_line(ca, QVM_CERT_USER));
  assert_int_equal(qvm_cert_issue(&c2, again, &o, NULL), 0);
  assert_int_equal(qvm_cert_serial(c2), 3);

  /* A host certificate names the vm; its serial cannot go into the KRL. */
  qvm_cert_options ho = QVM_CERT_OPTIONS_INIT;
  ho.kind = QVM_CERT_HOST;
  ho.public_line = qvm_ssh_key_public_line(k);
  ho.vm = "vm1";
  assert_int_equal(qvm_cert_issue(&h, ca, &ho, NULL), 0);
  assert_int_equal(qvm_cert_serial(h), 4);
  qvm_error *err = NULL;
  assert_int_equal(qvm_cert_revoke(NULL, ca, "vm1", 4, &err), QVM_EINVAL);
  qvm_error_free(err);
  err = NULL;
  assert_int_equal(qvm_cert_revoke(NULL, ca, "vm2", 1, &err), QVM_ENOTFOUND);
  qvm_error_free(err);
  size_t n = 9;
  assert_int_equal(qvm_cert_revoke(&n, ca, "vm1", 1, NULL), 0);
  assert_int_equal(n, 1);
  assert_int_equal(qvm_cert_revoke(&n, ca, "vm1", 1, NULL), 0);
  assert_int_equal(n, 0); /* already revoked */
  assert_int_equal(qvm_cert_revoke(&n, ca, "vm1", 0, NULL), 0);
  assert_int_equal(n, 1); /* serial 3: 2 expired long ago and was dropped; 4 is a host cert */

  /* The file qvm_cert_write writes is the line and a newline, 0644. */
  snprintf(path, sizeof path, "%s/c1-cert.pub", dir);
  assert_int_equal(qvm_cert_write(c1, path, NULL), 0);
  char *text = NULL;
  assert_int_equal(qvm_read_file(&text, NULL, path, 65536, NULL), 0);
  assert_int_equal(strlen(text), strlen(qvm_cert_line(c1)) + 1);
  free(text);

  qvm_cert_free(c1);
  qvm_cert_free(c2);
  qvm_cert_free(h);
  qvm_ssh_key_free(k);
  qvm_cert_ca_free(again);
  qvm_cert_ca_free(ca);
  free(cadir);
}

static void test_issue_hostile_input(void **state) {
  (void)state;
  char *cadir = subdir("hostile");
  qvm_cert_ca *ca = NULL;
  qvm_ssh_key *k = NULL;
  assert_int_equal(qvm_cert_ca_open(&ca, cadir, NULL), 0);
  assert_int_equal(qvm_ssh_key_generate(&k, "", NULL), 0);
  qvm_cert_options o = user_options(qvm_ssh_key_public_line(k), "vm1"), bad;
  char long_text[300];
  memset(long_text, 'x', sizeof long_text - 1);
  long_text[sizeof long_text - 1] = 0;
  const char *long_principal[] = {long_text, NULL};
  const char *none[] = {NULL};

  bad = o, bad.actor = "ag\x01nt";
  expect_issue_error(ca, &bad, QVM_EINVAL, "actor");
  bad = o, bad.actor = "a:b";
  expect_issue_error(ca, &bad, QVM_EINVAL, "actor");
  bad = o, bad.actor = long_text;
  expect_issue_error(ca, &bad, QVM_EINVAL, "actor");
  bad = o, bad.principals = long_principal;
  expect_issue_error(ca, &bad, QVM_EINVAL, "principal");
  bad = o, bad.principals = none;
  expect_issue_error(ca, &bad, QVM_EINVAL, "principal");
  bad = o, bad.ttl_ms = 0;
  expect_issue_error(ca, &bad, QVM_EINVAL, "lifetime");
  bad = o, bad.ttl_ms = -5;
  expect_issue_error(ca, &bad, QVM_EINVAL, "lifetime");
  bad = o, bad.vm = "../etc";
  expect_issue_error(ca, &bad, QVM_EINVAL, "../etc");
  bad = o, bad.source_address = "0.0.0.0/0 ";
  expect_issue_error(ca, &bad, QVM_EINVAL, "source address");
  bad = o, bad.public_line = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ";
  expect_issue_error(ca, &bad, QVM_EINVAL, "ssh-ed25519");
  bad = o, bad.version = 99;
  expect_issue_error(ca, &bad, QVM_EINVAL, "qvm_cert_options");
  /* a key id over the bound: 64-character actor + 63-character vm fit; the
   * bound is checked on the whole id before a serial is spent */
  qvm_cert *cert = NULL;
  assert_int_equal(qvm_cert_issue(&cert, ca, &o, NULL), 0);
  assert_int_equal(qvm_cert_serial(cert), 1); /* nothing above spent a serial */
  qvm_cert_free(cert);
  qvm_ssh_key_free(k);
  qvm_cert_ca_free(ca);
  free(cadir);
}

static void expect_open_error(const char *cadir, const char *needle) {
  qvm_cert_ca *ca = NULL;
  qvm_error *err = NULL;
  assert_int_equal(qvm_cert_ca_open(&ca, cadir, &err), QVM_EINVAL);
  assert_null(ca);
  if (!strstr(qvm_error_message(err), needle))
    fail_msg("message '%s' lacks '%s'", qvm_error_message(err), needle);
  qvm_error_free(err);
}

static void test_corrupt_files(void **state) {
  (void)state;
  char *cadir = subdir("corrupt"), path[4096];
  qvm_cert_ca *ca = NULL;
  qvm_ssh_key *k = NULL;
  qvm_cert *cert = NULL;
  qvm_error *err = NULL;
  assert_int_equal(qvm_cert_ca_open(&ca, cadir, NULL), 0);
  assert_int_equal(qvm_ssh_key_generate(&k, "", NULL), 0);
  qvm_cert_options o = user_options(qvm_ssh_key_public_line(k), "vm1");

  /* A corrupt serial file: an error naming it, no certificate. */
  snprintf(path, sizeof path, "%s/serial", cadir);
  assert_int_equal(qvm_write_file_atomic(path, "12x\n", 4, 0600, NULL), 0);
  expect_issue_error(ca, &o, QVM_EINVAL, path);
  assert_int_equal(qvm_write_file_atomic(path, "41\n", 3, 0600, NULL), 0);
  assert_int_equal(qvm_cert_issue(&cert, ca, &o, NULL), 0);
  assert_int_equal(qvm_cert_serial(cert), 42);
  qvm_cert_free(cert);

  /* A corrupt issued file: revoke and issue refuse, naming the line. */
  snprintf(path, sizeof path, "%s/issued", cadir);
  const char *issued = "1 user vm1 99999999999 0\nbogus\n";
  assert_int_equal(qvm_write_file_atomic(path, issued, strlen(issued), 0600, NULL), 0);
  assert_int_equal(qvm_cert_revoke(NULL, ca, "vm1", 0, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "line 2"));
  qvm_error_free(err);
  qvm_cert_ca_free(ca);

  /* A corrupt CA key: a clear error naming it; it is not replaced. */
  snprintf(path, sizeof path, "%s/user_ca", cadir);
  assert_int_equal(qvm_write_file_atomic(path, "garbage\n", 8, 0600, NULL), 0);
  expect_open_error(cadir, path);
  char *text = NULL;
  assert_int_equal(qvm_read_file(&text, NULL, path, 4096, NULL), 0);
  assert_string_equal(text, "garbage\n");
  free(text);
  /* Truncated mid-key, and readable by others. */
  qvm_ssh_key *other = NULL;
  assert_int_equal(qvm_ssh_key_generate(&other, "", NULL), 0);
  const char *pem = qvm_ssh_key_private_text(other);
  assert_int_equal(qvm_write_file_atomic(path, pem, strlen(pem) / 2, 0600, NULL), 0);
  expect_open_error(cadir, path);
  assert_int_equal(qvm_write_file_atomic(path, pem, strlen(pem), 0644, NULL), 0);
  expect_open_error(cadir, "0600");
  qvm_ssh_key_free(other);
  qvm_ssh_key_free(k);
  free(cadir);
}

/* Processes opening a fresh store at once all end up with the same CA. */
static void test_concurrent_creation(void **state) {
  (void)state;
  char *cadir = subdir("race");
  enum { N = 6 };
  int fds[N][2];
  pid_t pids[N];
  for (int i = 0; i < N; i++) {
    assert_int_equal(pipe(fds[i]), 0);
    pids[i] = fork();
    assert_true(pids[i] >= 0);
    if (pids[i] == 0) {
      qvm_cert_ca *ca = NULL;
      close(fds[i][0]);
      if (qvm_cert_ca_open(&ca, cadir, NULL) < 0) _exit(1);
      const char *line = qvm_cert_ca_public_line(ca, QVM_CERT_USER);
      if (write(fds[i][1], line, strlen(line)) != (ssize_t)strlen(line)) _exit(1);
      _exit(0);
    }
    close(fds[i][1]);
  }
  char first[256] = "";
  for (int i = 0; i < N; i++) {
    char buf[256] = "";
    int status = 0;
    ssize_t n = read(fds[i][0], buf, sizeof buf - 1);
    close(fds[i][0]);
    assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(n > 20);
    if (!first[0]) memcpy(first, buf, sizeof first);
    assert_string_equal(buf, first);
  }
  free(cadir);
}

/* Processes issuing at once get distinct serials, and all are recorded. */
static void test_concurrent_serials(void **state) {
  (void)state;
  char *cadir = subdir("serials");
  enum { N = 6, EACH = 5 };
  qvm_cert_ca *ca = NULL;
  assert_int_equal(qvm_cert_ca_open(&ca, cadir, NULL), 0);
  qvm_cert_ca_free(ca);
  int fds[N][2];
  pid_t pids[N];
  for (int i = 0; i < N; i++) {
    assert_int_equal(pipe(fds[i]), 0);
    pids[i] = fork();
    assert_true(pids[i] >= 0);
    if (pids[i] == 0) {
      qvm_ssh_key *k = NULL;
      close(fds[i][0]);
      if (qvm_cert_ca_open(&ca, cadir, NULL) < 0 || qvm_ssh_key_generate(&k, "", NULL) < 0)
        _exit(1);
      qvm_cert_options o = user_options(qvm_ssh_key_public_line(k), "vm1");
      for (int j = 0; j < EACH; j++) {
        qvm_cert *c = NULL;
        if (qvm_cert_issue(&c, ca, &o, NULL) < 0) _exit(1);
        uint64_t serial = qvm_cert_serial(c);
        if (write(fds[i][1], &serial, sizeof serial) != sizeof serial) _exit(1);
        qvm_cert_free(c);
      }
      _exit(0);
    }
    close(fds[i][1]);
  }
  bool seen[N * EACH + 1] = {false};
  for (int i = 0; i < N; i++) {
    uint64_t serial;
    int status = 0;
    for (int j = 0; j < EACH; j++) {
      assert_int_equal(read(fds[i][0], &serial, sizeof serial), sizeof serial);
      assert_true(serial >= 1 && serial <= N * EACH);
      assert_false(seen[serial]);
      seen[serial] = true;
    }
    close(fds[i][0]);
    assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  /* every one of them is in `issued`: --all revokes them all */
  size_t n = 0;
  assert_int_equal(qvm_cert_ca_open(&ca, cadir, NULL), 0);
  assert_int_equal(qvm_cert_revoke(&n, ca, "vm1", 0, NULL), 0);
  assert_int_equal(n, N * EACH);
  qvm_cert_ca_free(ca);
  free(cadir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sign_parse_roundtrip),
      cmocka_unit_test(test_spec_bounds),
      cmocka_unit_test(test_ed25519_from_line),
      cmocka_unit_test(test_krl_layout),
      cmocka_unit_test(test_ca_store),
      cmocka_unit_test(test_issue_hostile_input),
      cmocka_unit_test(test_corrupt_files),
      cmocka_unit_test(test_concurrent_creation),
      cmocka_unit_test(test_parse_openssh_made),
      cmocka_unit_test(test_concurrent_serials),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
