/* SPDX-License-Identifier: MIT */
#include "diff/part.h"

#include <stdbool.h>
#include <string.h>

#define SECTOR 512u
#define EXT_MAGIC 0xEF53

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

/* An ext2/3/4 superblock at off: magic, and a block size it can have. */
static bool has_ext(diff_read_fn *read, void *ctx, uint64_t off, uint64_t size) {
  uint8_t sb[1024];
  if (size < 2048 || read(ctx, sb, sizeof sb, off + 1024) < 0) return false;
  uint16_t magic = (uint16_t)(sb[56] | sb[57] << 8);
  return magic == EXT_MAGIC && le32(sb + 24) <= 6; /* s_log_block_size: 1 KiB..64 KiB */
}

typedef struct cands {
  diff_part p[DIFF_MAX_PARTS];
  int n;
} cands;

static int add(cands *c, uint64_t start_lba, uint64_t n_lba, int index, uint64_t disk_size,
               qvm_error **err) {
  if (!n_lba) return 0;
  if (start_lba > disk_size / SECTOR || n_lba > disk_size / SECTOR - start_lba)
    return qvm_error_set(err, QVM_EINVAL,
                         "partition %d (sectors %llu+%llu) lies outside the disk (%llu bytes)",
                         index, (unsigned long long)start_lba, (unsigned long long)n_lba,
                         (unsigned long long)disk_size);
  if (c->n < DIFF_MAX_PARTS)
    c->p[c->n++] =
        (diff_part){.offset = start_lba * SECTOR, .size = n_lba * SECTOR, .index = index};
  return 0;
}

static int parse_gpt(cands *c, diff_read_fn *read, void *ctx, uint64_t disk_size, qvm_error **err) {
  uint8_t h[SECTOR];
  if (read(ctx, h, sizeof h, SECTOR) < 0)
    return qvm_error_set(err, QVM_EINVAL, "cannot read the gpt header");
  if (memcmp(h, "EFI PART", 8)) return qvm_error_set(err, QVM_EINVAL, "no gpt header");
  uint64_t lba = le64(h + 72);
  uint32_t n = le32(h + 80), esize = le32(h + 84);
  if (esize < 128 || esize > 4096 || esize % 8)
    return qvm_error_set(err, QVM_EINVAL, "gpt entry size %u is invalid", esize);
  if (n > DIFF_MAX_PARTS) n = DIFF_MAX_PARTS;
  if (lba < 2 || lba > disk_size / SECTOR || (uint64_t)n * esize > disk_size - lba * SECTOR)
    return qvm_error_set(err, QVM_EINVAL, "the gpt entries lie outside the disk");
  uint8_t e[4096];
  static const uint8_t unused[16] = {0};
  for (uint32_t i = 0; i < n; i++) {
    if (read(ctx, e, esize, lba * SECTOR + (uint64_t)i * esize) < 0)
      return qvm_error_set(err, QVM_EINVAL, "cannot read gpt entry %u", i + 1);
    if (!memcmp(e, unused, 16)) continue;
    uint64_t first = le64(e + 32), last = le64(e + 40);
    if (last < first)
      return qvm_error_set(err, QVM_EINVAL, "gpt entry %u ends before it starts", i + 1);
    int r = add(c, first, last - first + 1, (int)i + 1, disk_size, err);
    if (r < 0) return r;
  }
  return 0;
}

static int parse_table(cands *c, diff_read_fn *read, void *ctx, uint64_t disk_size,
                       qvm_error **err) {
  uint8_t mbr[SECTOR];
  if (disk_size < SECTOR || read(ctx, mbr, sizeof mbr, 0) < 0) return 0;
  if (mbr[510] != 0x55 || mbr[511] != 0xAA) return 0;
  for (int i = 0; i < 4; i++) {
    const uint8_t *e = mbr + 446 + 16 * i;
    if (e[4] == 0xEE) return parse_gpt(c, read, ctx, disk_size, err);
  }
  /* Primary partitions only: extended (logical) ones are not followed. */
  for (int i = 0; i < 4; i++) {
    const uint8_t *e = mbr + 446 + 16 * i;
    uint8_t type = e[4];
    if (!type || type == 0x05 || type == 0x0f || type == 0x85) continue;
    int r = add(c, le32(e + 8), le32(e + 12), i + 1, disk_size, err);
    if (r < 0) return r;
  }
  return 0;
}

int diff_part_find_ext(diff_part *out, diff_read_fn *read, void *ctx, uint64_t disk_size,
                       qvm_error **err) {
  if (has_ext(read, ctx, 0, disk_size)) {
    *out = (diff_part){.offset = 0, .size = disk_size, .index = 0};
    return 0;
  }
  cands c = {.n = 0};
  int r = parse_table(&c, read, ctx, disk_size, err);
  if (r < 0) return r;
  int best = -1;
  for (int i = 0; i < c.n; i++)
    if (has_ext(read, ctx, c.p[i].offset, c.p[i].size) &&
        (best < 0 || c.p[i].size > c.p[best].size))
      best = i;
  if (best < 0)
    return qvm_error_set(err, QVM_EINVAL,
                         "no ext2/3/4 file system found on the disk (%d partitions looked at)",
                         c.n);
  *out = c.p[best];
  return 0;
}
