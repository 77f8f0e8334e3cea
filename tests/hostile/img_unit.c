/* SPDX-License-Identifier: MIT */
/* Unit tests of the image checks: qvm's qcow2 header parser on headers made
 * by the real qemu-img and on crafted ones, the policy the start applies,
 * what a raw disk may start with, the image format allow-list, and the argv
 * builder's refusal of a drive without a format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testlib.h"
#include "util/fs.h"
#include "vm/argv.h"
#include "vm/image.h"
#include "vm/qcow2.h"

static char *dir;

static uint8_t *head_of(size_t *len, const char *file) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  char *data = NULL;
  assert_int_equal(qvm_read_file(&data, len, path, 16u << 20, NULL), 0);
  if (*len > VM_QCOW2_HEAD) *len = VM_QCOW2_HEAD;
  return (uint8_t *)data;
}

/* qemu-img create ARGS FILE 16M in the test dir, then parse its header. */
static int made(vm_qcow2_header *h, const char *file, const char *args, qvm_error **err) {
  assert_int_equal(qvm_test_sh("cd '%s' && qemu-img create -q -f qcow2 %s %s 16M", dir, args, file),
                   0);
  size_t len = 0;
  uint8_t *b = head_of(&len, file);
  int r = vm_qcow2_parse(h, b, len, err);
  free(b);
  return r;
}

static void test_real_headers(void **state) {
  (void)state;
  vm_qcow2_header h;
  assert_int_equal(made(&h, "plain.qcow2", "", NULL), 0);
  assert_int_equal(h.version, 3);
  assert_int_equal(h.size, 16u << 20);
  assert_false(h.has_backing || h.has_backing_format || h.has_data_file);

  assert_int_equal(made(&h, "overlay.qcow2", "-u -b /images/base.img -F raw", NULL), 0);
  assert_true(h.has_backing && h.has_backing_format);
  assert_string_equal(h.backing, "/images/base.img");
  assert_string_equal(h.backing_format, "raw");
  assert_false(h.has_data_file);

  assert_int_equal(made(&h, "df.qcow2", "-o data_file=df.raw", NULL), 0);
  assert_true(h.has_data_file);
  assert_string_equal(h.data_file, "df.raw");
  assert_true(h.incompatible & 4);

  assert_int_equal(made(&h, "zstd.qcow2", "-o compression_type=zstd", NULL), 0);
  assert_true(h.incompatible & 8);
  assert_false(h.has_data_file);
  assert_int_equal(made(&h, "l2.qcow2", "-o extended_l2=on", NULL), 0);
  assert_true(h.incompatible & 16);

  assert_int_equal(made(&h, "v2.qcow2", "-o compat=0.10 -u -b /b.qcow2 -F qcow2", NULL), 0);
  assert_int_equal(h.version, 2);
  assert_string_equal(h.backing, "/b.qcow2");
  assert_string_equal(h.backing_format, "qcow2");
  assert_int_equal(
      made(&h, "json.qcow2", "-u -b 'json:{\"file.filename\":\"/etc/shadow\"}' -F raw", NULL), 0);
  assert_string_equal(h.backing, "json:{\"file.filename\":\"/etc/shadow\"}");
}

static void test_policy(void **state) {
  (void)state;
  vm_qcow2_header h;
  qvm_error *err = NULL;
  vm_qcow2_policy overlay = {
      .what = "vm disk", .backing = "/images/base.img", .backing_format = "raw"};
  assert_int_equal(made(&h, "overlay.qcow2", "-u -b /images/base.img -F raw", NULL), 0);
  assert_int_equal(vm_qcow2_check(&h, "o", &overlay, NULL), 0);
  overlay.backing_format = "qcow2";
  assert_int_equal(vm_qcow2_check(&h, "o", &overlay, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "not the vm's image '/images/base.img'"));
  qvm_error_free(err);
  err = NULL;
  /* No backing format pinned: QEMU would probe the base. */
  overlay.backing_format = "raw";
  assert_int_equal(made(&h, "nofmt.qcow2", "-u -b /images/base.img -F raw", NULL), 0);
  h.has_backing_format = false;
  assert_int_equal(vm_qcow2_check(&h, "o", &overlay, NULL), QVM_EINVAL);
  assert_int_equal(made(&h, "sh.qcow2", "-u -b /etc/shadow -F raw", NULL), 0);
  assert_int_equal(vm_qcow2_check(&h, "o", &overlay, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "backing file '/etc/shadow'"));
  qvm_error_free(err);
  err = NULL;
  /* A user's drive: a backing file only if allowed; a data file never. */
  vm_qcow2_policy drive = {.what = "drive"};
  assert_int_equal(vm_qcow2_check(&h, "d", &drive, NULL), QVM_EINVAL);
  drive.allow_backing = true;
  assert_int_equal(vm_qcow2_check(&h, "d", &drive, NULL), 0);
  assert_int_equal(made(&h, "df.qcow2", "-o data_file=/dev/sda", NULL), 0);
  assert_int_equal(vm_qcow2_check(&h, "d", &drive, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "external data file '/dev/sda'"));
  qvm_error_free(err);
  assert_int_equal(made(&h, "plain.qcow2", "", NULL), 0);
  assert_int_equal(vm_qcow2_check(&h, "d", &drive, NULL), 0);
  assert_int_equal(vm_qcow2_check(&h, "o", &overlay, NULL), QVM_EINVAL);
}

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put64(uint8_t *p, uint64_t v) {
  put32(p, (uint32_t)(v >> 32));
  put32(p + 4, (uint32_t)v);
}

/* A v3 header of 104 bytes, no extension, in a 4 KiB buffer. */
static void crafted(uint8_t *b) {
  memset(b, 0, 4096);
  memcpy(b, "QFI\xfb", 4);
  put32(b + 4, 3);
  put32(b + 20, 16);
  put64(b + 24, 1 << 20);
  put32(b + 96, 4);
  put32(b + 100, 104);
}

static void expect_refused(const uint8_t *b, size_t len, const char *why) {
  vm_qcow2_header h;
  qvm_error *err = NULL;
  if (vm_qcow2_parse(&h, b, len, &err) != QVM_EINVAL) fail_msg("not refused: want '%s'", why);
  if (!strstr(qvm_error_message(err), why))
    fail_msg("'%s' lacks '%s'", qvm_error_message(err), why);
  qvm_error_free(err);
}

static void test_crafted(void **state) {
  (void)state;
  uint8_t b[4096];
  vm_qcow2_header h;
  crafted(b);
  assert_int_equal(vm_qcow2_parse(&h, b, sizeof b, NULL), 0);
  expect_refused(b, 50, "truncated");
  expect_refused(b, 3, "not a qcow2");
  put32(b + 4, 4);
  expect_refused(b, sizeof b, "version 4");
  crafted(b);
  put64(b + 72, 1u << 5);
  expect_refused(b, sizeof b, "incompatible features 0x20");
  crafted(b);
  put32(b + 100, 1u << 30);
  expect_refused(b, sizeof b, "header length");
  crafted(b);
  put32(b + 20, 40);
  expect_refused(b, sizeof b, "cluster bits");
  crafted(b); /* a backing name past what was read */
  put64(b + 8, 0xffffffffffff0000ull);
  put32(b + 16, 10);
  expect_refused(b, sizeof b, "out of range");
  crafted(b); /* a name of 1024 bytes */
  put64(b + 8, 1024);
  put32(b + 16, 1024);
  memset(b + 1024, 'a', 1024);
  expect_refused(b, sizeof b, "too long");
  crafted(b); /* a name with a nul in it */
  put64(b + 8, 512);
  put32(b + 16, 8);
  memcpy(b + 512, "/ok\0/bad", 8);
  expect_refused(b, sizeof b, "nul");
  crafted(b); /* an extension longer than the header cluster */
  put32(b + 104, 0x12345678);
  put32(b + 108, 0x7fffffff);
  expect_refused(b, sizeof b, "out of range");
  crafted(b); /* extensions with no end marker in what was read */
  for (size_t at = 104; at + 16 <= sizeof b; at += 16) {
    put32(b + at, 0x12345678);
    put32(b + at + 4, 8);
  }
  put32(b + 4088, 0x12345678); /* the last one ends exactly at the end */
  put32(b + 4092, 0);
  expect_refused(b, sizeof b, "no end");
  put32(b + 20, 12); /* the same in a whole 4 KiB cluster: QEMU stops there too */
  assert_int_equal(vm_qcow2_parse(&h, b, sizeof b, NULL), 0);
  crafted(b); /* the data-file name extension alone, without the bit */
  put32(b + 104, 0x44415441);
  put32(b + 108, 9);
  memcpy(b + 112, "/dev/sda1", 9);
  assert_int_equal(vm_qcow2_parse(&h, b, sizeof b, NULL), 0);
  assert_true(h.has_data_file);
  assert_string_equal(h.data_file, "/dev/sda1");
}

static void test_raw_kinds(void **state) {
  (void)state;
  enum { N = 65536 + 128 };
  uint8_t *b = calloc(1, N);
  assert_non_null(b);
  assert_string_equal(vm_image_raw_kind(b, N), "a blank disk");
  assert_null(vm_image_raw_kind(b, 0));
  struct {
    size_t at;
    const char *sig;
    size_t len;
    const char *kind;
  } sigs[] = {{510, "\x55\xaa", 2, "boot sector"},
              {512, "EFI PART", 8, "gpt"},
              {4096, "EFI PART", 8, "4k sectors"},
              {1080, "\x53\xef", 2, "ext2"},
              {0, "XFSB", 4, "xfs"},
              {0, "hsqs", 4, "squashfs"},
              {0, "LUKS\xba\xbe", 6, "luks"},
              {512, "LABELONE", 8, "lvm2"},
              {4086, "SWAPSPACE2", 10, "swap"},
              {32769, "CD001", 5, "iso9660"},
              {65600, "_BHRfS_M", 8, "btrfs"}};
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
    memset(b, 0, N);
    b[N - 1] = 'x'; /* not blank */
    memcpy(b + sigs[i].at, sigs[i].sig, sigs[i].len);
    const char *kind = vm_image_raw_kind(b, N);
    if (!kind || !strstr(kind, sigs[i].kind))
      fail_msg("signature %zu: got '%s', want '%s'", i, kind ? kind : "(none)", sigs[i].kind);
    /* Cut just before the signature's last byte: not read past the end. */
    uint8_t *cut = malloc(sigs[i].at + sigs[i].len - 1);
    memcpy(cut, b, sigs[i].at + sigs[i].len - 1);
    cut[0] |= sigs[i].at ? 1 : 0; /* not blank */
    kind = vm_image_raw_kind(cut, sigs[i].at + sigs[i].len - 1);
    assert_true(!kind || !strstr(kind, sigs[i].kind));
    free(cut);
  }
  const char text[] = "root:x:0:0:root:/root:/bin/bash\n";
  assert_null(vm_image_raw_kind((const uint8_t *)text, sizeof text - 1));
  free(b);
}

static void test_formats(void **state) {
  (void)state;
  const char *good[] = {"raw", "qcow2", "vmdk", "vdi", "vhdx", "vpc"};
  const char *bad[] = {"vvfat", "nbd", "blkdebug", "file", "host_device", "throttle", "qed",
                       "http",  "ssh", "null-co",  "",     "QCOW2",       "raw,x"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++)
    assert_true(vm_image_format_allowed(good[i]));
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    qvm_error *err = NULL;
    assert_false(vm_image_format_allowed(bad[i]));
    assert_int_equal(vm_image_format_check("drive", "/d", bad[i], &err), QVM_EINVAL);
    assert_non_null(strstr(qvm_error_message(err), "which qvm does not use"));
    qvm_error_free(err);
  }
  assert_false(vm_image_format_allowed(NULL));
  assert_int_equal(vm_image_drive_check("/d.vmdk", "vmdk", false, NULL), QVM_EINVAL);
  assert_int_equal(vm_image_drive_check("/d.vmdk", "vmdk", true, NULL), 0);
}

static void test_argv_needs_format(void **state) {
  (void)state;
  vm_drive drive = {.path = "/d.img", .format = NULL, .media = VM_MEDIA_DISK};
  vm_spec spec = {.name = "x",
                  .uuid = "00000000-0000-0000-0000-000000000000",
                  .mac = "52:54:00:00:00:01",
                  .cpus = 1,
                  .memory_mib = 64,
                  .machine = "q35",
                  .drives = &drive,
                  .n_drives = 1};
  vm_argv_input in = {
      .spec = &spec, .qemu = "qemu", .vm_dir = "/v", .qmp_fd = 3, .console_fd = 4, .tap_fd = -1};
  vm_argv *a = NULL;
  qvm_error *err = NULL;
  assert_int_equal(vm_argv_build(&a, &in, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "has no format"));
  qvm_error_free(err);
  drive.format = "raw";
  assert_int_equal(vm_argv_build(&a, &in, NULL), 0);
  vm_argv_free(a);
}

static int setup(void **state) {
  (void)state;
  dir = qvm_test_mkdtemp("img-unit");
  return 0;
}

static int teardown(void **state) {
  (void)state;
  qvm_test_rmtree(dir);
  free(dir);
  return 0;
}

int main(void) {
  const struct CMUnitTest real[] = {cmocka_unit_test(test_real_headers),
                                    cmocka_unit_test(test_policy)};
  const struct CMUnitTest pure[] = {
      cmocka_unit_test(test_crafted), cmocka_unit_test(test_raw_kinds),
      cmocka_unit_test(test_formats), cmocka_unit_test(test_argv_needs_format)};
  int failed = cmocka_run_group_tests(pure, NULL, NULL);
  qvm_test_require_program("qemu-img");
  return failed + cmocka_run_group_tests(real, setup, teardown);
}
