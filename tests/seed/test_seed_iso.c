/* SPDX-License-Identifier: MIT */
/*
 * The ISO9660 writer against real readers: a generated tree (nested
 * directories, names of every allowed kind, sizes 0..64 MiB) read back by
 * bsdtar, isoinfo -R, isoinfo -J and xorriso gives the same bytes; blkid
 * sees LABEL="cidata" TYPE="iso9660"; two builds are identical; names, depths
 * and sizes the format cannot hold are refused with a clear error.
 */
#include <fcntl.h>
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

#include <qvm/seed.h>

#include "testlib.h"

#define BIG_SIZE (64u << 20)

typedef struct entry {
  char path[1024];
  size_t size;
  int joliet_ok; /* ASCII names of <= 64 characters: isoinfo -J can name them */
} entry;

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next_rand(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (uint32_t)(rng >> 11);
}

static const char *const pieces[] = {"a", "B", "z9", "_", "-",    ".",    "~",    " ",   "+", "=",
                                     ",", "@", "%",  "ü", "日本", "long", "File", "x.y", "ß"};

static int random_name(char *out, size_t max, int *ascii) {
  size_t len = 0;
  int n = 1 + (int)(next_rand() % 12);
  *ascii = 1;
  for (int i = 0; i < n; i++) {
    const char *p = pieces[next_rand() % (sizeof pieces / sizeof pieces[0])];
    if (len + strlen(p) >= max) break;
    if ((unsigned char)p[0] >= 0x80) *ascii = 0;
    memcpy(out + len, p, strlen(p));
    len += strlen(p);
  }
  out[len] = 0;
  if (!strcmp(out, ".") || !strcmp(out, "..") || len == 0) return random_name(out, max, ascii);
  return 0;
}

static void write_host_file(const char *path, size_t size) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  char buf[65536];
  for (size_t done = 0; done < size;) {
    size_t n = size - done < sizeof buf ? size - done : sizeof buf;
    for (size_t i = 0; i < n; i++) buf[i] = (char)next_rand();
    assert_int_equal(fwrite(buf, 1, n, f), n);
    done += n;
  }
  fclose(f);
}

static size_t build_tree(const char *src, entry *e, size_t max) {
  static const size_t sizes[] = {0, 1, 2047, 2048, 2049, 4096, 100000, BIG_SIZE};
  char dirs[8][1024] = {""};
  size_t ndirs = 1, n = 0;
  int ascii;
  /* a chain 7 levels deep (the root makes 8) plus some siblings */
  char chain[1024] = "";
  for (int level = 0; level < 7; level++) {
    char name[64];
    do random_name(name, 40, &ascii);
    while (!ascii);
    snprintf(chain + strlen(chain), sizeof chain - strlen(chain), "%s%s", level ? "/" : "", name);
    if (level == 1 || level == 3 || level == 6) snprintf(dirs[ndirs++], 1024, "%s", chain);
  }
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0] + 30 && n < max; i++) {
    char name[300];
    if (i == 0) {
      memset(name, 'L', 255);
      name[255] = 0;
      ascii = 0; /* too long for Joliet */
    } else
      random_name(name, 200, &ascii);
    const char *dir = dirs[next_rand() % ndirs];
    entry *x = &e[n];
    int len = snprintf(x->path, sizeof x->path, "%s%s%s", dir, *dir ? "/" : "", name);
    if (len < 0 || (size_t)len >= sizeof x->path) continue;
    int dup = 0;
    for (size_t k = 0; k < n; k++) dup |= !strcmp(e[k].path, x->path);
    if (dup) continue;
    x->size = i < sizeof sizes / sizeof sizes[0] ? sizes[i] : next_rand() % 5000;
    x->joliet_ok = ascii && strlen(name) <= 64;
    for (const char *p = dir; *p && x->joliet_ok; p++) x->joliet_ok = (unsigned char)*p < 0x80;
    char host[2048];
    snprintf(host, sizeof host, "%s/%s", src, x->path);
    assert_int_equal(qvm_test_sh("mkdir -p \"$(dirname '%s')\"", host), 0);
    write_host_file(host, x->size);
    n++;
  }
  return n;
}

static void build_iso(const char *iso_path, const char *src, const entry *e, size_t n) {
  qvm_seed_iso *iso = NULL;
  qvm_error *err = NULL;
  qvm_seed_iso_options opts = QVM_SEED_ISO_OPTIONS_INIT;
  opts.epoch = 1700000000;
  assert_int_equal(qvm_seed_iso_new(&iso, &opts, &err), 0);
  assert_int_equal(qvm_seed_iso_add_dir(iso, "empty-dir", &err), 0);
  for (size_t i = 0; i < n; i++) {
    char host[2048];
    snprintf(host, sizeof host, "%s/%s", src, e[i].path);
    if (qvm_seed_iso_add_file(iso, e[i].path, host, &err) < 0)
      fail_msg("add '%s': %s", e[i].path, qvm_error_message(err));
  }
  int fd = open(iso_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true(fd >= 0);
  if (qvm_seed_iso_write_fd(iso, fd, &err) < 0) fail_msg("write: %s", qvm_error_message(err));
  close(fd);
  qvm_seed_iso_free(iso);
}

static char *readers_dir; /* removed by the teardown, even when a check fails */

static int readers_teardown(void **state) {
  (void)state;
  if (readers_dir) qvm_test_rmtree(readers_dir);
  free(readers_dir);
  readers_dir = NULL;
  return 0;
}

static void test_readers(void **state) {
  (void)state;
  qvm_test_require_program("bsdtar");
  qvm_test_require_program("isoinfo");
  qvm_test_require_program("xorriso");
  qvm_test_require_program("blkid");
  char *dir = readers_dir = qvm_test_mkdtemp("seed-iso");
  char src[1024], iso1[1024], iso2[1024];
  snprintf(src, sizeof src, "%s/src", dir);
  snprintf(iso1, sizeof iso1, "%s/a.iso", dir);
  snprintf(iso2, sizeof iso2, "%s/b.iso", dir);
  assert_int_equal(qvm_test_sh("mkdir -p '%s/empty-dir'", src), 0);
  entry *e = calloc(64, sizeof *e);
  size_t n = build_tree(src, e, 64);
  build_iso(iso1, src, e, n);
  build_iso(iso2, src, e, n);
  assert_int_equal(qvm_test_sh("cmp -s '%s' '%s'", iso1, iso2), 0); /* deterministic */

  char *blkid = qvm_test_sh_output("blkid -p -o export '%s' || blkid '%s'", iso1, iso1);
  assert_non_null(blkid);
  if (!strstr(blkid, "LABEL=cidata") && !strstr(blkid, "LABEL=\"cidata\"")) fail_msg("%s", blkid);
  if (!strstr(blkid, "TYPE=iso9660") && !strstr(blkid, "TYPE=\"iso9660\"")) fail_msg("%s", blkid);
  free(blkid);

  /* whole-tree readers: bsdtar and xorriso */
  assert_int_equal(qvm_test_sh("cd '%s' && mkdir t x && bsdtar -xf a.iso -C t && "
                               "xorriso -osirrox on -indev a.iso -extract / x >/dev/null 2>&1",
                               dir),
                   0);
  assert_int_equal(qvm_test_sh("diff -r '%s' '%s/t'", src, dir), 0);
  assert_int_equal(qvm_test_sh("diff -r '%s' '%s/x'", src, dir), 0);
  /* per-file readers: isoinfo with Rock Ridge and with Joliet */
  size_t joliet = 0;
  for (size_t i = 0; i < n; i++) {
    if (qvm_test_sh("isoinfo -i '%s' -R -x '/%s' | cmp -s - '%s/%s'", iso1, e[i].path, src,
                    e[i].path) != 0)
      fail_msg("isoinfo -R: '%s' differs", e[i].path);
    if (!e[i].joliet_ok) continue;
    joliet++;
    if (qvm_test_sh("isoinfo -i '%s' -J -x '/%s' | cmp -s - '%s/%s'", iso1, e[i].path, src,
                    e[i].path) != 0)
      fail_msg("isoinfo -J: '%s' differs", e[i].path);
  }
  assert_true(joliet > 3);
  free(e);
}

static void expect_add_error(const char *path, int code, const char *needle) {
  qvm_seed_iso *iso = NULL;
  qvm_error *err = NULL;
  assert_int_equal(qvm_seed_iso_new(&iso, NULL, &err), 0);
  assert_int_equal(qvm_seed_iso_add_data(iso, "a/file", "x", 1, &err), 0);
  assert_int_equal(qvm_seed_iso_add_data(iso, path, "x", 1, &err), code);
  if (!strstr(qvm_error_message(err), needle))
    fail_msg("'%s': unexpected message: %s", path, qvm_error_message(err));
  qvm_error_free(err);
  qvm_seed_iso_free(iso);
}

static void test_refused(void **state) {
  (void)state;
  char name[300];
  memset(name, 'n', 256);
  name[256] = 0;
  expect_add_error(name, QVM_EINVAL, "longer than 255 bytes");
  expect_add_error("1/2/3/4/5/6/7/8/file", QVM_EINVAL, "deeper than 8");
  expect_add_error("a//b", QVM_EINVAL, "empty component");
  expect_add_error("/abs", QVM_EINVAL, "empty component");
  expect_add_error("a/../b", QVM_EINVAL, "'.' or '..'");
  expect_add_error("", QVM_EINVAL, "empty");
  expect_add_error("a/file", QVM_EEXISTS, "already in the image");
  expect_add_error("a/file/x", QVM_EEXISTS, "is a file");
  qvm_seed_iso *iso = NULL;
  qvm_error *err = NULL;
  qvm_seed_iso_options o = QVM_SEED_ISO_OPTIONS_INIT;
  o.epoch = -1;
  assert_int_equal(qvm_seed_iso_new(&iso, &o, &err), QVM_EINVAL);
  qvm_error_free(err);
  err = NULL;
  o.epoch = 0;
  o.volume_id = "seventeen-chars-x";
  assert_int_equal(qvm_seed_iso_new(&iso, &o, &err), QVM_EINVAL);
  qvm_error_free(err);
  err = NULL;
  assert_int_equal(qvm_seed_iso_new(&iso, NULL, &err), 0);
  assert_int_equal(qvm_seed_iso_add_file(iso, "f", "/nonexistent/qvm-seed", &err), QVM_ENOTFOUND);
  assert_non_null(strstr(qvm_error_message(err), "'/nonexistent/qvm-seed'"));
  qvm_error_free(err);
  qvm_seed_iso_free(iso);
}

/* The same set added in another order gives the same bytes. */
static void test_order_independent(void **state) {
  (void)state;
  const char *names[] = {"user-data",
                         "meta-data",
                         "network-config",
                         "d/Same.txt",
                         "d/same.txt",
                         "d/SAME.TXT",
                         "d/a-very-long-name-that-is-truncated-in-8.3.txt"};
  uint8_t *out[2] = {NULL, NULL};
  size_t len[2] = {0, 0};
  for (int k = 0; k < 2; k++) {
    qvm_seed_iso *iso = NULL;
    qvm_error *err = NULL;
    assert_int_equal(qvm_seed_iso_new(&iso, NULL, &err), 0);
    for (size_t i = 0; i < 7; i++) {
      const char *nm = names[k ? 6 - i : i];
      assert_int_equal(qvm_seed_iso_add_data(iso, nm, nm, strlen(nm), &err), 0);
    }
    assert_int_equal(qvm_seed_iso_write_buffer(&out[k], &len[k], iso, &err), 0);
    qvm_seed_iso_free(iso);
  }
  assert_int_equal(len[0], len[1]);
  assert_memory_equal(out[0], out[1], len[0]);
  assert_int_equal(len[0] % 2048, 0);
  assert_memory_equal(out[0] + 16 * 2048 + 1, "CD001", 5);
  assert_memory_equal(out[0] + 16 * 2048 + 40, "cidata  ", 8);
  free(out[0]);
  free(out[1]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_order_independent),
      cmocka_unit_test_teardown(test_readers, readers_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
