/* SPDX-License-Identifier: MIT */
/*
 * A key added to a written seed image (qvm_seed_add_authorized_key), and the
 * reader under it (qvm_seed_read_iso): the image keeps its pristine
 * user-data and every other file; user-data becomes the pristine one plus a
 * part whose bootcmd and runcmd carry each key as one YAML double-quoted
 * argument (a comment with quotes, backslashes and $(...) stays one inert
 * argument); a key added twice leaves the image untouched; the wrapper is
 * never wrapped again; bad names, lines and user-data are refused; a
 * truncated or lying image is an error, never a read out of bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include <qvm/seed.h>

#include "testlib.h"

static char *dir;
static char iso[4096];

#define KEY_A "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkeyAkeyAkeyAkeyAkeyAkeyAkeyAkeyAkeyAkeyAkeyA a"
#define KEY_B                                                                                      \
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkeyBkeyBkeyBkeyBkeyBkeyBkeyBkeyBkeyBkeyBkeyB "            \
  "x\"q\" \\ $(touch /pwned) 'y'"
#define KEY_B_YAML                                                                                 \
  "    - \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkeyBkeyBkeyBkeyBkeyBkeyBkeyBkeyBkeyBkeyBkeyB "    \
  "x\\\"q\\\" \\\\ $(touch /pwned) 'y'\"\n"
#define PRISTINE "#cloud-config\nusers:\n  - name: web\n    ssh_authorized_keys:\n      - k0\n"

static int setup(void **state) {
  (void)state;
  dir = qvm_test_mkdtemp("seed-keys");
  snprintf(iso, sizeof iso, "%s/seed.iso", dir);
  qvm_seed_file files[] = {{"user-data", PRISTINE, strlen(PRISTINE)},
                           {"meta-data", "instance-id: i-1\n", 17},
                           {"network-config", "version: 2\n", 11}};
  qvm_error *err = NULL;
  assert_int_equal(qvm_seed_write_iso(iso, files, 3, QVM_SEED_EPOCH_DEFAULT, 0600, &err), 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  qvm_test_rmtree(dir);
  free(dir);
  return 0;
}

static const qvm_seed_file *find(const qvm_seed_file *f, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(f[i].name, name)) return &f[i];
  return NULL;
}

static char *file_text(const qvm_seed_file *f) {
  assert_non_null(f);
  char *s = malloc(f->len + 1);
  assert_non_null(s);
  memcpy(s, f->data, f->len);
  s[f->len] = 0;
  return s;
}

static size_t count(const char *hay, const char *needle) {
  size_t n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
  return n;
}

static void test_add(void **state) {
  (void)state;
  qvm_error *err = NULL;
  bool added = false;
  assert_int_equal(qvm_seed_add_authorized_key(iso, "web", KEY_A, &added, &err), 0);
  assert_true(added);
  struct stat st;
  assert_int_equal(stat(iso, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);

  qvm_seed_file *f = NULL;
  size_t n = 0;
  assert_int_equal(qvm_seed_read_iso(&f, &n, iso, &err), 0);
  assert_int_equal(n, 5);
  char *ud = file_text(find(f, n, "user-data")), *orig = file_text(find(f, n, "qvm-user-data"));
  char *keys = file_text(find(f, n, "qvm-authorized-keys")),
       *meta = file_text(find(f, n, "meta-data"));
  assert_string_equal(orig, PRISTINE);
  assert_string_equal(keys, KEY_A "\n");
  assert_string_equal(meta, "instance-id: i-1\n");
  assert_non_null(
      strstr(ud, "Content-Type: multipart/mixed; boundary=\"==qvm-keys-boundary-0==\""));
  /* the pristine part: cloud-init tells its kind from its first line */
  assert_non_null(strstr(ud, "Content-Type: text/x-not-multipart; charset=\"utf-8\"\n"
                             "MIME-Version: 1.0\nContent-Transfer-Encoding: 8bit\n\n" PRISTINE));
  assert_non_null(strstr(ud, "Merge-Type: list(append)+dict(no_replace,recurse_list)+str()\n"));
  assert_int_equal(count(ud, "    - \"" KEY_A "\"\n"), 2); /* bootcmd and runcmd */
  assert_int_equal(count(ud, "\nbootcmd:\n  - - sh\n"), 1);
  assert_int_equal(count(ud, "\nruncmd:\n  - - sh\n"), 1);
  assert_int_equal(count(ud, "    - qvm-keys\n    - \"web\"\n"), 2);
  free(ud), free(orig), free(keys), free(meta);
  qvm_seed_files_free(f, n);

  /* again: untouched (same inode: not even rewritten) */
  ino_t ino = st.st_ino;
  assert_int_equal(qvm_seed_add_authorized_key(iso, "web", KEY_A, &added, &err), 0);
  assert_false(added);
  assert_int_equal(stat(iso, &st), 0);
  assert_int_equal(st.st_ino, ino);

  /* a second key: both, one wrapper around the pristine user-data */
  assert_int_equal(qvm_seed_add_authorized_key(iso, "web", KEY_B, &added, &err), 0);
  assert_true(added);
  assert_int_equal(qvm_seed_read_iso(&f, &n, iso, &err), 0);
  ud = file_text(find(f, n, "user-data"));
  keys = file_text(find(f, n, "qvm-authorized-keys"));
  orig = file_text(find(f, n, "qvm-user-data"));
  assert_string_equal(keys, KEY_A "\n" KEY_B "\n");
  assert_string_equal(orig, PRISTINE);
  assert_int_equal(count(ud, "==qvm-keys-boundary-0=="), 4); /* header, 2 parts, close */
  assert_int_equal(count(ud, "multipart/mixed"), 1);
  assert_int_equal(count(ud, KEY_B_YAML), 2);
  assert_int_equal(count(ud, "    - \"" KEY_A "\"\n"), 2);
  free(ud), free(orig), free(keys);
  qvm_seed_files_free(f, n);
}

static void expect_refused(const char *user, const char *line, const char *needle) {
  qvm_error *err = NULL;
  assert_int_equal(qvm_seed_add_authorized_key(iso, user, line, NULL, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), needle));
  qvm_error_free(err);
}

static void test_refused(void **state) {
  (void)state;
  expect_refused("Root;x", KEY_A, "'Root;x' is not a user name a seed can carry");
  expect_refused("web", KEY_A "\nssh-ed25519 AAAA x", "one line of printable ASCII");
  expect_refused("web", "ssh-ed25519 AAAA \xc3\xa4", "one line of printable ASCII");
  expect_refused("web", "", "one line of printable ASCII");
  /* a seed with a directory: its rewrite would lose it */
  char other[4096];
  snprintf(other, sizeof other, "%s/other.iso", dir);
  qvm_seed_file files[] = {{"user-data", "#cloud-config\n", 14}, {"d/x", "y", 1}};
  qvm_error *err = NULL;
  assert_int_equal(qvm_seed_write_iso(other, files, 2, QVM_SEED_EPOCH_DEFAULT, 0600, &err), 0);
  assert_int_equal(qvm_seed_add_authorized_key(other, "web", KEY_A, NULL, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "a directory"));
  qvm_error_free(err);
}

static void expect_bad_image(const char *path, const char *needle) {
  qvm_seed_file *f = NULL;
  size_t n = 0;
  qvm_error *err = NULL;
  assert_int_equal(qvm_seed_read_iso(&f, &n, path, &err), QVM_EINVAL);
  assert_null(f);
  assert_non_null(strstr(qvm_error_message(err), needle));
  qvm_error_free(err);
}

static void patch32(const char *path, long off, uint32_t v) {
  FILE *fp = fopen(path, "r+b");
  assert_non_null(fp);
  uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  assert_int_equal(fseek(fp, off, SEEK_SET), 0);
  assert_int_equal(fwrite(b, 1, 4, fp), 4);
  fclose(fp);
}

static uint32_t read32(const char *path, long off) {
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  uint8_t b[4];
  assert_int_equal(fseek(fp, off, SEEK_SET), 0);
  assert_int_equal(fread(b, 1, 4, fp), 4);
  fclose(fp);
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void test_bad_images(void **state) {
  (void)state;
  char bad[4096];
  snprintf(bad, sizeof bad, "%s/bad.iso", dir);
  assert_int_equal(qvm_test_sh("head -c 30000 '%s' >'%s'", iso, bad), 0);
  expect_bad_image(bad, "too short");
  assert_int_equal(qvm_test_sh("head -c 40000 /dev/zero >'%s'", bad), 0);
  expect_bad_image(bad, "no Joliet descriptor");
  /* the root directory claims more than the image holds */
  assert_int_equal(qvm_test_sh("cp '%s' '%s'", iso, bad), 0);
  patch32(bad, 17 * 2048 + 156 + 10, 60000);
  expect_bad_image(bad, "root directory out of bounds");
  /* a file whose extent runs past the end */
  assert_int_equal(qvm_test_sh("cp '%s' '%s'", iso, bad), 0);
  uint32_t root = read32(bad, 17 * 2048 + 156 + 2);
  long rec = (long)root * 2048;
  for (int i = 0; i < 2; i++) { /* past "." and ".." */
    FILE *fp = fopen(bad, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, rec, SEEK_SET), 0);
    rec += fgetc(fp);
    fclose(fp);
  }
  patch32(bad, rec + 10, 0x7fffffff);
  expect_bad_image(bad, "a file out of bounds");
  /* a name longer than its record */
  assert_int_equal(qvm_test_sh("cp '%s' '%s' && printf '\\310' | dd of='%s' bs=1 seek=%ld "
                               "conv=notrunc status=none",
                               iso, bad, bad, rec + 32),
                   0);
  expect_bad_image(bad, "malformed directory record");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_add),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_bad_images),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
