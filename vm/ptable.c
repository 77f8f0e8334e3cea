/* SPDX-License-Identifier: MIT */
/*
 * The last partition grown on the host, before the first boot (issue 20):
 * cloud-init's growpart spent 3 s of the cloud guest's init stage, ahead of
 * sshd, on what is a few bytes in the partition table. See vm/ptable.h and
 * docs/ARCHITECTURE.md ("qvm up").
 *
 * The bytes come from an image, which may be anyone's: every offset, size
 * and count is checked against the buffer and the disk before it is used;
 * the GPT's CRCs must match; partitions may not overlap or leave the disk.
 */
#include "vm/ptable.h"

#include <stdbool.h>
#include <string.h>

#define SECTOR VM_PTABLE_SECTOR
#define MBR_ENTRIES 446u
#define GPT_HEADER_MIN 92u
#define GPT_ENTRY_MIN 128u
/* Sectors growpart leaves free after an MBR partition (room for a GPT's
 * backup, should the disk be converted). */
#define MBR_SPARE 33u

/* Linux file system data and the x86-64 root (Discoverable Partitions),
 * as stored on disk (the first three fields little-endian). */
static const uint8_t linux_data[16] = {0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47,
                                       0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4};
static const uint8_t linux_root_x86_64[16] = {0xe3, 0xbc, 0x68, 0x4f, 0xcd, 0xe8, 0xb1, 0x4d,
                                              0x96, 0xe7, 0xfb, 0xca, 0xf9, 0x84, 0xb7, 0x09};

uint32_t vm_ptable_crc32(const void *data, size_t len) {
  const uint8_t *p = data;
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < len; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v) {
  put32(p, (uint32_t)v);
  put32(p + 4, (uint32_t)(v >> 32));
}

static int nothing(const char **why, const char *reason) {
  *why = reason;
  return 0;
}

/* ---- MBR ---- */

static bool mbr_extended(uint8_t type) { return type == 0x05 || type == 0x0f || type == 0x85; }

/* CHS of an LBA on the 255-head, 63-sector geometry; FE FF FF past it. */
static void put_chs(uint8_t *p, uint64_t lba) {
  uint64_t c = lba / (255 * 63), h = (lba / 63) % 255, s = lba % 63 + 1;
  if (c > 1023) {
    p[0] = 0xfe, p[1] = 0xff, p[2] = 0xff;
    return;
  }
  p[0] = (uint8_t)h;
  p[1] = (uint8_t)(s | ((c >> 2) & 0xc0));
  p[2] = (uint8_t)c;
}

static int plan_mbr(vm_ptable_grow *g, const uint8_t *head, uint64_t old_sectors,
                    uint64_t new_sectors, const char **why) {
  uint64_t start[4], end[4]; /* end exclusive */
  int last = -1;
  for (int i = 0; i < 4; i++) {
    const uint8_t *e = head + MBR_ENTRIES + 16 * i;
    start[i] = end[i] = 0;
    if (!e[4]) continue;
    if (mbr_extended(e[4])) return nothing(why, "the MBR has an extended partition");
    start[i] = le32(e + 8);
    end[i] = start[i] + le32(e + 12);
    if (!start[i] || end[i] <= start[i] || end[i] > old_sectors)
      return nothing(why, "an MBR partition leaves the disk or is empty");
    for (int j = 0; j < i; j++)
      if (end[j] && start[i] < end[j] && start[j] < end[i])
        return nothing(why, "MBR partitions overlap");
    if (last < 0 || end[i] > end[last]) last = i;
  }
  if (last < 0) return nothing(why, "the MBR has no partition");
  const uint8_t *e = head + MBR_ENTRIES + 16 * last;
  if (e[4] != 0x83) return nothing(why, "the last MBR partition is not a Linux one (0x83)");
  if (new_sectors <= MBR_SPARE) return nothing(why, "the disk is too small");
  uint64_t new_end = new_sectors - MBR_SPARE;
  if (new_end > 0xffffffffu) new_end = 0xffffffffu; /* 32-bit fields: 2 TiB */
  if (new_end <= end[last]) return nothing(why, "the last partition already ends there");
  memset(g, 0, sizeof *g);
  g->kind = VM_PTABLE_MBR;
  g->number = (unsigned)last + 1;
  g->first = start[last];
  g->old_last = end[last] - 1;
  g->new_last = new_end - 1;
  memcpy(g->head, head, SECTOR);
  uint8_t *w = g->head + MBR_ENTRIES + 16 * last;
  put32(w + 12, (uint32_t)(new_end - start[last]));
  put_chs(w + 5, new_end - 1);
  g->head_len = SECTOR;
  return 1;
}

/* ---- GPT ---- */

static bool zero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i]) return false;
  return true;
}

static uint32_t header_crc(const uint8_t *h, uint32_t size) {
  uint8_t copy[SECTOR];
  memcpy(copy, h, size);
  memset(copy + 16, 0, 4);
  return vm_ptable_crc32(copy, size);
}

/* The protective MBR: one 0xEE partition from LBA 1, nothing else (a hybrid
 * MBR would need its own entries kept in step). */
static bool protective_only(const uint8_t *head, int *ee) {
  *ee = -1;
  for (int i = 0; i < 4; i++) {
    const uint8_t *e = head + MBR_ENTRIES + 16 * i;
    if (!e[4]) continue;
    if (e[4] != 0xee || *ee >= 0 || le32(e + 8) != 1) return false;
    *ee = i;
  }
  return *ee >= 0;
}

static int plan_gpt(vm_ptable_grow *g, const uint8_t *head, size_t len, uint64_t old_sectors,
                    uint64_t new_sectors, const char **why) {
  int ee;
  if (len > VM_PTABLE_HEAD_BYTES) len = VM_PTABLE_HEAD_BYTES; /* what g->head holds */
  if (!protective_only(head, &ee)) return nothing(why, "the MBR is a hybrid, not a protective one");
  if (len < VM_PTABLE_HEAD_BYTES) return nothing(why, "too few sectors were read");
  const uint8_t *h = head + SECTOR;
  if (memcmp(h, "EFI PART", 8)) return nothing(why, "no GPT header at LBA 1");
  uint32_t hsize = le32(h + 12);
  if (hsize < GPT_HEADER_MIN || hsize > SECTOR) return nothing(why, "the GPT header's size is odd");
  if (le32(h + 16) != header_crc(h, hsize)) return nothing(why, "the GPT header's CRC is wrong");
  /* Old size unknown (0, a later start): the backup header says where the
   * disk ended when the table was written. */
  if (!old_sectors) {
    if (le64(h + 32) >= new_sectors) return nothing(why, "the GPT's backup is past the disk's end");
    old_sectors = le64(h + 32) + 1;
  }
  if (old_sectors < VM_PTABLE_HEAD_SECTORS * 2 + 1) return nothing(why, "the disk is too small");
  if (le64(h + 24) != 1 || le64(h + 32) != old_sectors - 1)
    return nothing(why, "the GPT's backup is not at the disk's end");
  uint64_t first_usable = le64(h + 40), last_usable = le64(h + 48), entries_lba = le64(h + 72);
  uint32_t count = le32(h + 80), esize = le32(h + 84);
  if (esize < GPT_ENTRY_MIN || esize > SECTOR || esize % 8 || !count || count > len / esize)
    return nothing(why, "the GPT's entry array is odd");
  uint64_t ebytes = (uint64_t)count * esize, esectors = (ebytes + SECTOR - 1) / SECTOR;
  if (entries_lba < 2 || entries_lba > VM_PTABLE_HEAD_SECTORS ||
      entries_lba * SECTOR + esectors * SECTOR > len)
    return nothing(why, "the GPT's entries are not where they can be read");
  const uint8_t *ents = head + entries_lba * SECTOR;
  if (le32(h + 88) != vm_ptable_crc32(ents, ebytes))
    return nothing(why, "the GPT entries' CRC is wrong");
  /* The backup's entries and header follow the usable area (old_sectors
   * >= 69 and esectors <= 32: no wrap). */
  if (first_usable < entries_lba + esectors || last_usable < first_usable ||
      last_usable > old_sectors - 2 - esectors)
    return nothing(why, "the GPT's usable area is odd");
  int64_t last = -1;
  for (uint32_t i = 0; i < count; i++) {
    const uint8_t *e = ents + (size_t)i * esize;
    if (zero(e, 16)) continue;
    uint64_t a = le64(e + 32), b = le64(e + 40);
    if (a > b || a < first_usable || b > last_usable)
      return nothing(why, "a GPT partition leaves the usable area");
    for (uint32_t j = 0; j < i; j++) {
      const uint8_t *f = ents + (size_t)j * esize;
      if (!zero(f, 16) && a <= le64(f + 40) && le64(f + 32) <= b)
        return nothing(why, "GPT partitions overlap");
    }
    if (last < 0 || b > le64(ents + (size_t)last * esize + 40)) last = i;
  }
  if (last < 0) return nothing(why, "the GPT has no partition");
  const uint8_t *le = ents + (size_t)last * esize;
  if (memcmp(le, linux_data, 16) && memcmp(le, linux_root_x86_64, 16))
    return nothing(why, "the last GPT partition is not a Linux file system one");
  if (new_sectors < esectors + 2 + first_usable) return nothing(why, "the disk is too small");
  uint64_t alt = new_sectors - 1, backup_lba = alt - esectors, new_usable = backup_lba - 1;
  uint64_t old_last = le64(le + 40);
  if (new_usable <= old_last) return nothing(why, "the last partition already ends there");

  memset(g, 0, sizeof *g);
  g->kind = VM_PTABLE_GPT;
  g->number = (unsigned)last + 1;
  g->first = le64(le + 32);
  g->old_last = old_last;
  g->new_last = new_usable;
  g->head_len = (size_t)(entries_lba + esectors) * SECTOR;
  memcpy(g->head, head, g->head_len);
  uint8_t *we = g->head + entries_lba * SECTOR;
  put64(we + (size_t)last * esize + 40, new_usable);
  uint32_t ecrc = vm_ptable_crc32(we, ebytes);
  uint8_t *wh = g->head + SECTOR;
  put64(wh + 32, alt);
  put64(wh + 48, new_usable);
  put32(wh + 88, ecrc);
  put32(wh + 16, header_crc(wh, hsize));
  uint8_t *pm = g->head + MBR_ENTRIES + 16 * ee;
  put32(pm + 12, (uint32_t)(alt > 0xffffffffu ? 0xffffffffu : alt));
  put_chs(pm + 5, alt);

  /* The backup: the entries, then the header that points at them. */
  g->tail_len = (size_t)(esectors + 1) * SECTOR;
  g->tail_offset = backup_lba * SECTOR;
  memcpy(g->tail, we, esectors * SECTOR);
  uint8_t *bh = g->tail + esectors * SECTOR;
  memcpy(bh, wh, SECTOR);
  put64(bh + 24, alt);
  put64(bh + 32, 1);
  put64(bh + 72, backup_lba);
  put32(bh + 16, header_crc(bh, hsize));
  return 1;
}

int vm_ptable_plan_grow(vm_ptable_grow *g, const uint8_t *head, size_t len, uint64_t old_bytes,
                        uint64_t new_bytes, const char **why) {
  if (old_bytes % SECTOR || new_bytes % SECTOR)
    return nothing(why, "the disk size is not whole sectors");
  if (old_bytes && new_bytes <= old_bytes) return nothing(why, "the disk did not grow");
  if (len < SECTOR || head[510] != 0x55 || head[511] != 0xaa)
    return nothing(why, "no partition table (no MBR signature)");
  uint64_t old_sectors = old_bytes / SECTOR, new_sectors = new_bytes / SECTOR;
  if (old_bytes && old_sectors < VM_PTABLE_HEAD_SECTORS * 2 + 1)
    return nothing(why, "the disk is too small");
  for (int i = 0; i < 4; i++)
    if (head[MBR_ENTRIES + 16 * i + 4] == 0xee)
      return plan_gpt(g, head, len, old_sectors, new_sectors, why);
  /* An MBR's partitions must lie within the disk as it was; unknown, within
   * the disk as it is. */
  return plan_mbr(g, head, old_sectors ? old_sectors : new_sectors, new_sectors, why);
}
