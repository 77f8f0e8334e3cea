/* SPDX-License-Identifier: MIT */
/* vm/ptable.c: the last partition grown on the host (issue 20). Tables are
 * made by util-linux's sfdisk, and what qvm writes is read back by sfdisk
 * (its --verify, and its dump from the GPT's backup alone); hostile tables
 * (bad CRCs, overlaps, sizes past the buffer or the disk, hybrid MBRs) are
 * left alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <cmocka.h>

#include "vm/ptable.h"

#define MIB (1024u * 1024u)
#define LINUX "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
#define BIOS "21686148-6449-6E6F-744E-656564454649"
#define ESP "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
#define SWAP "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"

static char dir[] = "/tmp/qvm-ptable-XXXXXX";

static int setup(void **state) {
  (void)state;
  if (!mkdtemp(dir)) return -1;
  if (system("command -v sfdisk >/dev/null") != 0) {
    fprintf(stderr, "sfdisk (Debian package fdisk) is needed\n");
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static int sh(const char *fmt, ...) {
  char cmd[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  return system(cmd);
}

static char *capture(const char *fmt, ...) {
  char cmd[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  static char buf[16384];
  size_t n = fread(buf, 1, sizeof buf - 1, p);
  buf[n] = 0;
  pclose(p);
  return buf;
}

/* A disk of `mib` MiB partitioned by sfdisk from `script`; its first
 * sectors in head. */
static void make_disk(const char *name, unsigned mib, const char *script, uint8_t *head) {
  assert_int_equal(sh("cd %s && rm -f %s && truncate -s %uM %s && printf '%s' | sfdisk -q %s "
                      ">/dev/null 2>&1",
                      dir, name, mib, name, script, name),
                   0);
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_RDONLY);
  assert_true(fd >= 0);
  assert_int_equal(pread(fd, head, VM_PTABLE_HEAD_BYTES, 0), VM_PTABLE_HEAD_BYTES);
  close(fd);
}

/* The disk grown to `mib` MiB and the plan written, as qemu-io would. */
static void apply(const char *name, unsigned mib, const vm_ptable_grow *g) {
  assert_int_equal(sh("truncate -s %uM %s/%s", mib, dir, name), 0);
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_WRONLY);
  assert_true(fd >= 0);
  if (g->tail_len)
    assert_int_equal(pwrite(fd, g->tail, g->tail_len, (off_t)g->tail_offset), (ssize_t)g->tail_len);
  assert_int_equal(pwrite(fd, g->head, g->head_len, 0), (ssize_t)g->head_len);
  close(fd);
}

static void test_crc32(void **state) {
  (void)state;
  assert_int_equal(vm_ptable_crc32("123456789", 9), 0xcbf43926u);
  assert_int_equal(vm_ptable_crc32("", 0), 0);
}

/* An MBR disk like the test cloud guest's: the same sizes growpart gave
 * (33 sectors left at the end). */
static void test_mbr(void **state) {
  (void)state;
  static uint8_t head[VM_PTABLE_HEAD_BYTES];
  static vm_ptable_grow g;
  make_disk("mbr.raw", 64, "label: dos\\nstart=2048, type=83, bootable\\n", head);
  const char *why = NULL;
  assert_int_equal(vm_ptable_plan_grow(&g, head, sizeof head, 64ull * MIB, 192ull * MIB, &why), 1);
  assert_int_equal(g.kind, VM_PTABLE_MBR);
  assert_int_equal(g.number, 1);
  assert_int_equal(g.first, 2048);
  assert_int_equal(g.old_last, 64 * 2048 - 1);
  assert_int_equal(g.new_last, 192 * 2048 - 34);
  assert_int_equal(g.head_len, 512);
  assert_int_equal(g.tail_len, 0);
  apply("mbr.raw", 192, &g);
  assert_non_null(strstr(capture("sfdisk -V %s/mbr.raw 2>&1", dir), "No errors detected"));
  char want[128];
  snprintf(want, sizeof want, "start=2048,size=%u,type=83,bootable", 192 * 2048 - 33 - 2048);
  char *dump = capture("sfdisk -d %s/mbr.raw | tr -d ' '", dir);
  assert_non_null(strstr(dump, want));
}

/* A GPT laid out like Debian's cloud images: BIOS boot and ESP first on the
 * disk, the root (numbered 1) after them, at the end. */
static const char gpt_script[] = "label: gpt\\n"
                                 "start=16384, type=" LINUX "\\n"
                                 "start=2048, size=2048, type=" BIOS "\\n"
                                 "start=4096, size=12288, type=" ESP "\\n";

static void test_gpt(void **state) {
  (void)state;
  static uint8_t head[VM_PTABLE_HEAD_BYTES];
  static vm_ptable_grow g;
  make_disk("gpt.raw", 256, gpt_script, head);
  const char *why = NULL;
  assert_int_equal(vm_ptable_plan_grow(&g, head, sizeof head, 256ull * MIB, 1024ull * MIB, &why),
                   1);
  assert_int_equal(g.kind, VM_PTABLE_GPT);
  assert_int_equal(g.number, 1);
  assert_int_equal(g.first, 16384);
  uint64_t n = 1024ull * 2048;
  assert_int_equal(g.new_last, n - 34);
  assert_int_equal(g.tail_offset, (n - 33) * 512);
  assert_int_equal(g.tail_len, 33 * 512);
  apply("gpt.raw", 1024, &g);
  char *v = capture("sfdisk -V %s/gpt.raw 2>&1", dir);
  assert_non_null(strstr(v, "No errors detected"));
  char want[160];
  snprintf(want, sizeof want, "start=16384,size=%llu,type=" LINUX,
           (unsigned long long)(n - 34 - 16384 + 1));
  assert_non_null(strstr(capture("sfdisk -d %s/gpt.raw | tr -d ' '", dir), want));
  assert_non_null(strstr(capture("sfdisk -d %s/gpt.raw", dir), "last-lba: 2097118"));
  /* The backup alone: the primary header zeroed, sfdisk reads the table
   * from the end of the disk. */
  assert_int_equal(sh("dd if=/dev/zero of=%s/gpt.raw bs=512 seek=1 count=1 conv=notrunc "
                      "status=none",
                      dir),
                   0);
  char *dump = capture("sfdisk -d %s/gpt.raw 2>&1 | tr -d ' '", dir);
  assert_non_null(strstr(dump, want));
}

/* The written table planned again for a further grow: its CRCs, backup
 * position and usable area pass every check. */
static void test_gpt_round_trip(void **state) {
  (void)state;
  static uint8_t head[VM_PTABLE_HEAD_BYTES];
  static vm_ptable_grow g, again;
  make_disk("rt.raw", 64, gpt_script, head);
  const char *why = NULL;
  assert_int_equal(vm_ptable_plan_grow(&g, head, sizeof head, 64ull * MIB, 128ull * MIB, &why), 1);
  memcpy(head, g.head, g.head_len);
  assert_int_equal(vm_ptable_plan_grow(&again, head, sizeof head, 128ull * MIB, 129ull * MIB, &why),
                   1);
  assert_int_equal(again.first, g.first);
  assert_int_equal(again.old_last, g.new_last);
  /* A later start does not know the old size: the backup header tells. */
  assert_int_equal(vm_ptable_plan_grow(&again, head, sizeof head, 0, 192ull * MIB, &why), 1);
  assert_int_equal(again.old_last, g.new_last);
  assert_int_equal(again.new_last, 192ull * 2048 - 34);
  assert_int_equal(vm_ptable_plan_grow(&again, head, sizeof head, 0, 128ull * MIB, &why), 0);
  assert_non_null(strstr(why, "already ends there"));
  assert_int_equal(vm_ptable_plan_grow(&again, head, sizeof head, 0, 100ull * MIB, &why), 0);
  assert_non_null(strstr(why, "backup is past"));
  /* An MBR: its partitions need only lie within the new size. */
  static vm_ptable_grow m;
  make_disk("rt-mbr.raw", 64, "label: dos\nstart=2048, size=4096, type=83\n", head);
  assert_int_equal(vm_ptable_plan_grow(&m, head, sizeof head, 0, 64ull * MIB, &why), 1);
  assert_int_equal(m.new_last, 64ull * 2048 - 34);
  memcpy(head, m.head, m.head_len);
  assert_int_equal(vm_ptable_plan_grow(&m, head, sizeof head, 0, 64ull * MIB, &why), 0);
  assert_non_null(strstr(why, "already ends there"));
}

static void le32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void le64(uint8_t *p, uint64_t v) {
  le32(p, (uint32_t)v);
  le32(p + 4, (uint32_t)(v >> 32));
}

/* Recomputes both GPT CRCs after a test changed the table, so that only
 * the change under test is wrong. */
static void fix_crcs(uint8_t *head) {
  uint8_t *h = head + 512;
  uint32_t count = h[80] | h[81] << 8 | h[82] << 16 | (uint32_t)h[83] << 24;
  uint32_t esize = h[84] | h[85] << 8 | h[86] << 16 | (uint32_t)h[87] << 24;
  uint64_t bytes = (uint64_t)count * esize;
  if (bytes <= VM_PTABLE_HEAD_BYTES - 1024) le32(h + 88, vm_ptable_crc32(head + 1024, bytes));
  le32(h + 16, 0);
  le32(h + 16, vm_ptable_crc32(h, 92));
}

typedef void (*mutation)(uint8_t *head);

static void gpt_bad_header_crc(uint8_t *h) { h[512 + 16] ^= 1; }
static void gpt_bad_entries_crc(uint8_t *h) { h[1024 + 60] ^= 1; /* a name byte */ }
static void gpt_huge_count(uint8_t *h) {
  le32(h + 512 + 80, 0xffffffffu);
  fix_crcs(h);
}
static void gpt_zero_entry_size(uint8_t *h) {
  le32(h + 512 + 84, 0);
  fix_crcs(h);
}
static void gpt_odd_entry_size(uint8_t *h) {
  le32(h + 512 + 84, 130);
  fix_crcs(h);
}
static void gpt_far_entries(uint8_t *h) {
  le64(h + 512 + 72, 1ull << 62);
  fix_crcs(h);
}
static void gpt_big_header(uint8_t *h) {
  le32(h + 512 + 12, 4096);
  fix_crcs(h);
}
/* p14 (BIOS boot) overlapping p1 */
static void gpt_overlap(uint8_t *h) {
  le64(h + 1024 + 128 + 40, 16384 + 10);
  fix_crcs(h);
}
/* p1 ending past the last usable sector */
static void gpt_past_usable(uint8_t *h) {
  le64(h + 1024 + 40, 1ull << 40);
  fix_crcs(h);
}
/* p1 ending before it starts */
static void gpt_backwards(uint8_t *h) {
  le64(h + 1024 + 40, 100);
  fix_crcs(h);
}
/* The last partition is swap, not a file system. */
static void gpt_swap_last(uint8_t *h) {
  static const uint8_t swap[16] = {0x6d, 0xfd, 0x57, 0x06, 0xab, 0xa4, 0xc4, 0x43,
                                   0x84, 0xe5, 0x09, 0x33, 0xc8, 0x4b, 0x4f, 0x4f};
  memcpy(h + 1024, swap, 16);
  fix_crcs(h);
}
/* A hybrid MBR: a second, visible partition beside the protective one. */
static void gpt_hybrid(uint8_t *h) {
  uint8_t *e = h + 446 + 16;
  e[4] = 0x83;
  le32(e + 8, 2048);
  le32(e + 12, 2048);
}
/* The backup header is not at the disk's end (the disk was grown before). */
static void gpt_moved_backup(uint8_t *h) {
  le64(h + 512 + 32, 1000);
  fix_crcs(h);
}
/* The usable area reaching into the backup's entries. */
static void gpt_usable_over_backup(uint8_t *h) {
  le64(h + 512 + 48, 64 * 2048 - 2);
  fix_crcs(h);
}
/* A last usable sector so large that adding the backup's size wraps. */
static void gpt_usable_wraps(uint8_t *h) {
  le64(h + 512 + 48, UINT64_MAX - 10);
  fix_crcs(h);
}
static void no_signature(uint8_t *h) { h[510] = 0; }

static void test_gpt_refused(void **state) {
  (void)state;
  static const struct {
    mutation m;
    const char *why;
  } cases[] = {
      {gpt_bad_header_crc, "header's CRC"},
      {gpt_bad_entries_crc, "entries' CRC"},
      {gpt_huge_count, "entry array"},
      {gpt_zero_entry_size, "entry array"},
      {gpt_odd_entry_size, "entry array"},
      {gpt_far_entries, "where they can be read"},
      {gpt_big_header, "header's size"},
      {gpt_overlap, "overlap"},
      {gpt_past_usable, "leaves the usable area"},
      {gpt_backwards, "leaves the usable area"},
      {gpt_swap_last, "not a Linux file system"},
      {gpt_hybrid, "hybrid"},
      {gpt_moved_backup, "backup"},
      {gpt_usable_over_backup, "usable area is odd"},
      {gpt_usable_wraps, "usable area is odd"},
      {no_signature, "no MBR signature"},
  };
  static uint8_t clean[VM_PTABLE_HEAD_BYTES], head[VM_PTABLE_HEAD_BYTES];
  make_disk("refuse.raw", 64, gpt_script, clean);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    memcpy(head, clean, sizeof head);
    cases[i].m(head);
    static vm_ptable_grow g;
    memset(&g, 0xa5, sizeof g);
    const char *why = NULL;
    int r = vm_ptable_plan_grow(&g, head, sizeof head, 64ull * MIB, 128ull * MIB, &why);
    if (r != 0 || !why || !strstr(why, cases[i].why))
      fail_msg("case %zu: r=%d why='%s', want '%s'", i, r, why ? why : "(null)", cases[i].why);
  }
}

static void test_mbr_refused(void **state) {
  (void)state;
  static uint8_t head[VM_PTABLE_HEAD_BYTES];
  static vm_ptable_grow g;
  const char *why = NULL;
  /* an extended partition */
  make_disk("ext.raw", 64, "label: dos\\nstart=2048, size=4096, type=83\\nstart=8192, type=5\\n",
            head);
  assert_int_equal(vm_ptable_plan_grow(&g, head, sizeof head, 64ull * MIB, 128ull * MIB, &why), 0);
  assert_non_null(strstr(why, "extended"));
  /* swap last */
  make_disk("swap.raw", 64, "label: dos\\nstart=2048, size=4096, type=83\\nstart=8192, type=82\\n",
            head);
  assert_int_equal(vm_ptable_plan_grow(&g, head, sizeof head, 64ull * MIB, 128ull * MIB, &why), 0);
  assert_non_null(strstr(why, "not a Linux one"));
  /* overlapping entries, and one past the disk */
  make_disk("ovl.raw", 64, "label: dos\\nstart=2048, size=4096, type=83\\nstart=8192, type=83\\n",
            head);
  uint8_t *e2 = head + 446 + 16;
  le32(e2 + 8, 3000);
  assert_int_equal(vm_ptable_plan_grow(&g, head, sizeof head, 64ull * MIB, 128ull * MIB, &why), 0);
  assert_non_null(strstr(why, "overlap"));
  le32(e2 + 8, 8192);
  le32(e2 + 12, 0xfffffff0u);
  assert_int_equal(vm_ptable_plan_grow(&g, head, sizeof head, 64ull * MIB, 128ull * MIB, &why), 0);
  assert_non_null(strstr(why, "leaves the disk"));
  /* nothing to grow into; sizes that are not whole sectors */
  make_disk("full.raw", 64, "label: dos\\nstart=2048, type=83\\n", head);
  assert_int_equal(vm_ptable_plan_grow(&g, head, sizeof head, 64ull * MIB, 64ull * MIB, &why), 0);
  assert_int_equal(vm_ptable_plan_grow(&g, head, sizeof head, 64ull * MIB, 128ull * MIB + 1, &why),
                   0);
  assert_non_null(strstr(why, "whole sectors"));
  /* 8 KiB more is less than the 33 sectors growpart keeps free */
  assert_int_equal(
      vm_ptable_plan_grow(&g, head, sizeof head, 64ull * MIB, 64ull * MIB + 8192, &why), 0);
  assert_non_null(strstr(why, "already ends"));
  /* a short read */
  assert_int_equal(vm_ptable_plan_grow(&g, head, 100, 64ull * MIB, 128ull * MIB, &why), 0);
}

/* A GPT whose usable area was not grown yet but whose header is read short
 * (only the MBR and header came back): never read past the buffer. */
static void test_gpt_short(void **state) {
  (void)state;
  static uint8_t head[VM_PTABLE_HEAD_BYTES];
  static vm_ptable_grow g;
  make_disk("short.raw", 64, gpt_script, head);
  const char *why = NULL;
  for (size_t len = 512; len < sizeof head; len += 512) {
    uint8_t *copy = malloc(len);
    memcpy(copy, head, len);
    assert_int_equal(vm_ptable_plan_grow(&g, copy, len, 64ull * MIB, 128ull * MIB, &why), 0);
    free(copy);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crc32),       cmocka_unit_test(test_mbr),
      cmocka_unit_test(test_gpt),         cmocka_unit_test(test_gpt_round_trip),
      cmocka_unit_test(test_gpt_refused), cmocka_unit_test(test_mbr_refused),
      cmocka_unit_test(test_gpt_short),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
