/* SPDX-License-Identifier: MIT */
/* image/catalog.c: the built-in catalog, user files (overrides, additions,
 * every bad input naming file and line) and checksum files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/catalog.h"
#include "testlib.h"

#define H64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define H64B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define H128 H64 H64B

static char *tmpdir;

static char *write_catalog(const char *text) {
  char *p = NULL;
  assert_true(asprintf(&p, "%s/catalog.yaml", tmpdir) > 0);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  return p;
}

static void test_builtin(void **state) {
  (void)state;
  img_catalog c = {0};
  qvm_error *err = NULL;
  assert_int_equal(img_catalog_load(&c, NULL, &err), 0);
  const char *want[] = {"debian-11",    "debian-12",    "debian-13",
                        "ubuntu-20.04", "ubuntu-22.04", "ubuntu-24.04"};
  for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
    const img_catalog_entry *e = img_catalog_find(&c, want[i]);
    assert_non_null(e);
    assert_string_equal(e->origin, "builtin");
    assert_non_null(e->checksums);
    assert_true(!strncmp(e->url, "https://", 8));
  }
  const img_catalog_entry *d = img_catalog_find(&c, "debian-12");
  assert_string_equal(d->url, "https://cloud.debian.org/images/cloud/bookworm/latest/"
                              "debian-12-generic-amd64.qcow2");
  assert_string_equal(d->checksums,
                      "https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS");
  const img_catalog_entry *u = img_catalog_find(&c, "ubuntu-24.04");
  assert_non_null(strstr(u->checksums, "SHA256SUMS"));
  for (size_t i = 1; i < c.n; i++)
    assert_true(strcmp(c.entries[i - 1].alias, c.entries[i].alias) < 0);
  assert_null(img_catalog_find(&c, "nope"));
  img_catalog_clear(&c);
  /* a missing user file is no error */
  assert_int_equal(img_catalog_load(&c, "/nonexistent/catalog.yaml", &err), 0);
  img_catalog_clear(&c);
}

static void test_user_overrides_and_adds(void **state) {
  (void)state;
  char *p = write_catalog("images:\n"
                          "  debian-12:\n"
                          "    url: http://127.0.0.1:1/d.qcow2\n"
                          "    checksums: http://127.0.0.1:1/SHA256SUMS\n"
                          "  mine:\n"
                          "    url: file:///srv/mine.img\n"
                          "    sha256: " H64 "\n"
                          "    description: my image\n"
                          "  big:\n"
                          "    url: https://h/big.img\n"
                          "    sha512: " H128 "\n");
  img_catalog c = {0};
  qvm_error *err = NULL;
  assert_int_equal(img_catalog_load(&c, p, &err), 0);
  const img_catalog_entry *d = img_catalog_find(&c, "debian-12");
  assert_string_equal(d->url, "http://127.0.0.1:1/d.qcow2");
  assert_string_equal(d->origin, p);
  const img_catalog_entry *m = img_catalog_find(&c, "mine");
  assert_string_equal(m->sha256, H64);
  assert_string_equal(m->description, "my image");
  assert_null(m->checksums);
  assert_string_equal(img_catalog_find(&c, "big")->sha512, H128);
  assert_non_null(img_catalog_find(&c, "ubuntu-24.04")); /* builtins stay */
  img_catalog_clear(&c);
  free(p);
}

/* Each bad file fails with QVM_EINVAL naming "<file>:<line>" and `what`. */
static void bad(const char *text, int line, const char *what) {
  char *p = write_catalog(text);
  img_catalog c = {0};
  qvm_error *err = NULL;
  int r = img_catalog_load(&c, p, &err);
  if (r != QVM_EINVAL) fail_msg("no error for:\n%s", text);
  char want[512];
  snprintf(want, sizeof want, "%s:%d: ", p, line);
  if (!strstr(qvm_error_message(err), want) || !strstr(qvm_error_message(err), what))
    fail_msg("message '%s' lacks '%s' / '%s'", qvm_error_message(err), want, what);
  assert_int_equal(c.n, 0);
  qvm_error_free(err);
  free(p);
}

static void test_user_errors(void **state) {
  (void)state;
  bad("images:\n  x:\n    url: http://h/x\n    sha256: " H64 "\n    color: red\n", 5,
      "unknown key 'color'");
  bad("images:\n  Bad_Alias:\n    url: http://h/x\n    sha256: " H64 "\n", 2, "alias");
  bad("images:\n  x:\n    url: ftp://h/x\n    sha256: " H64 "\n", 3, "url");
  bad("images:\n  x:\n    url: http://h/x\n    sha256: 0123\n", 4, "64 lowercase hex");
  bad("images:\n  x:\n    url: http://h/x\n    sha512: " H64 "\n", 4, "128 lowercase hex");
  bad("images:\n  x:\n    url: http://h/x\n", 3, "exactly one of");
  bad("images:\n  x:\n    url: http://h/x\n    sha256: " H64 "\n    checksums: http://h/S\n", 3,
      "exactly one of");
  bad("images:\n  x:\n    sha256: " H64 "\n", 3, "no url");
  bad("images:\n  x: just a string\n", 2, "mapping");
  bad("images:\n  - a\n", 2, "mapping");
  bad("other:\n  x: 1\n", 1, "unknown key 'other'");
  bad("images:\n  x:\n    url: [1, 2]\n", 3, "string");
  bad("images:\n  x:\n    url: http://h/x\n    url: http://h/y\n    sha256: " H64 "\n", 4, "twice");
  bad("images:\n  x:\n    url: \"http://h/\\x1b[31m\"\n    sha256: " H64 "\n", 3, "control");
  bad("images: {x: [\n", 2, "");
  bad("- just\n- a list\n", 1, "mapping");
}

static void test_empty_user_file(void **state) {
  (void)state;
  char *p = write_catalog("");
  img_catalog c = {0};
  qvm_error *err = NULL;
  assert_int_equal(img_catalog_load(&c, p, &err), 0);
  assert_non_null(img_catalog_find(&c, "debian-12"));
  img_catalog_clear(&c);
  free(p);
}

static int find(char out[129], const char **alg, const char *text, const char *name,
                qvm_error **err) {
  return img_checksums_find(out, alg, text, strlen(text), name, err);
}

static void test_checksums_gnu_bsd(void **state) {
  (void)state;
  char hex[129];
  const char *alg = NULL;
  qvm_error *err = NULL;
  const char *gnu = H64B "  other.img\n" H64 " *disk.img\n";
  assert_int_equal(find(hex, &alg, gnu, "disk.img", &err), 0);
  assert_string_equal(hex, H64);
  assert_string_equal(alg, "sha256");
  assert_int_equal(find(hex, &alg, gnu, "other.img", &err), 0);
  assert_string_equal(hex, H64B);
  const char *bsd = "SHA512 (a.qcow2) = " H128 "\nSHA256 (b (1).img) = " H64 "\n";
  assert_int_equal(find(hex, &alg, bsd, "a.qcow2", &err), 0);
  assert_string_equal(hex, H128);
  assert_string_equal(alg, "sha512");
  assert_int_equal(find(hex, &alg, bsd, "b (1).img", &err), 0);
  assert_string_equal(hex, H64);
  /* uppercase hex is taken, lowercased */
  const char *upper = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF  u.img\n";
  assert_int_equal(find(hex, &alg, upper, "u.img", &err), 0);
  assert_string_equal(hex, H64);
}

static void test_checksums_crlf_garbage_missing(void **state) {
  (void)state;
  char hex[129];
  const char *alg = NULL;
  qvm_error *err = NULL;
  const char *crlf = "-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n\r\n" H64
                     " *disk.img\r\n# comment\r\nnot a line at all\r\n" H64B "\r\n";
  assert_int_equal(find(hex, &alg, crlf, "disk.img", &err), 0);
  assert_string_equal(hex, H64);
  /* a name that is only a prefix or suffix of a listed one is no match */
  assert_int_equal(find(hex, &alg, crlf, "disk.im", &err), QVM_ENOTFOUND);
  assert_non_null(strstr(qvm_error_message(err), "'disk.im'"));
  qvm_error_free(err), err = NULL;
  assert_int_equal(find(hex, &alg, crlf, "isk.img", &err), QVM_ENOTFOUND);
  qvm_error_free(err), err = NULL;
  /* a wrong-length digest is garbage, not an entry */
  assert_int_equal(find(hex, &alg, "0123  short.img\n", "short.img", &err), QVM_ENOTFOUND);
  qvm_error_free(err), err = NULL;
  assert_int_equal(find(hex, &alg, "", "x", &err), QVM_ENOTFOUND);
  qvm_error_free(err), err = NULL;
  /* a hostile name in the error is neutralized */
  assert_int_equal(find(hex, &alg, "", "\x1b]0;x\a", &err), QVM_ENOTFOUND);
  assert_null(strchr(qvm_error_message(err), '\x1b'));
  qvm_error_free(err), err = NULL;
  /* NUL bytes inside the text do not end the scan early or match */
  char nul[200];
  int n = snprintf(nul, sizeof nul, "x\n%s  a.img\n", H64);
  nul[0] = '\0';
  assert_int_equal(img_checksums_find(hex, &alg, nul, (size_t)n, "a.img", &err), 0);
}

static void test_checksums_duplicates(void **state) {
  (void)state;
  char hex[129];
  const char *alg = NULL;
  qvm_error *err = NULL;
  const char *same = H64 "  d.img\n" H64 " *d.img\n";
  assert_int_equal(find(hex, &alg, same, "d.img", &err), 0);
  const char *differ = H64 "  d.img\n" H64B "  d.img\n";
  assert_int_equal(find(hex, &alg, differ, "d.img", &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "twice"));
  qvm_error_free(err);
}

int main(void) {
  tmpdir = qvm_test_mkdtemp("catalog");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_builtin),
      cmocka_unit_test(test_user_overrides_and_adds),
      cmocka_unit_test(test_user_errors),
      cmocka_unit_test(test_empty_user_file),
      cmocka_unit_test(test_checksums_gnu_bsd),
      cmocka_unit_test(test_checksums_crlf_garbage_missing),
      cmocka_unit_test(test_checksums_duplicates),
  };
  int r = cmocka_run_group_tests(tests, NULL, NULL);
  qvm_test_rmtree(tmpdir);
  free(tmpdir);
  return r;
}
