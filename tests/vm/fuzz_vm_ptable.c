/* SPDX-License-Identifier: MIT */
/*
 * A partition table from an image anyone may have made: the input is the
 * disk's old and new size in sectors (two little-endian uint32s; the top
 * bit of the first asks the harness to make the GPT's CRCs match, so that
 * the fuzzer gets past them) and then its first sectors.
 * vm_ptable_plan_grow may not crash or read past the input; a plan must stay inside its buffers and
 * the new disk, grow the partition, and (GPT) be a table it accepts again for a further grow.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm/ptable.h"

#define FAIL() (fprintf(stderr, "fuzz_vm_ptable: check at line %d failed\n", __LINE__), abort())

static uint64_t le32(const uint8_t *p) {
  return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* The entries' CRC (entries at LBA 2, as far as the input goes) and the
 * header's, as a table maker would write them. */
static void fix_crcs(uint8_t *head, size_t len) {
  if (len < 1024) return;
  uint8_t *h = head + 512;
  uint64_t bytes = le32(h + 80) * le32(h + 84), hsize = le32(h + 12);
  if (bytes <= len - 1024) put32(h + 88, vm_ptable_crc32(head + 1024, bytes));
  if (hsize > 512) hsize = 512;
  put32(h + 16, 0);
  put32(h + 16, vm_ptable_crc32(h, hsize));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 8) return 0;
  bool fix = data[3] & 0x80;
  uint64_t old_bytes = (le32(data) & 0x7fffffffu) * VM_PTABLE_SECTOR;
  uint64_t new_bytes = le32(data + 4) * VM_PTABLE_SECTOR;
  size_t len = size - 8;
  /* A copy of exactly len bytes: ASan sees a read past the table. */
  uint8_t *head = malloc(len ? len : 1);
  if (!head) FAIL();
  memcpy(head, data + 8, len);
  if (fix) fix_crcs(head, len);
  static vm_ptable_grow g, again;
  const char *why = NULL;
  int r = vm_ptable_plan_grow(&g, head, len, old_bytes, new_bytes, &why);
  if (r == 0 && !why) FAIL();
  if (r == 1) {
    uint64_t sectors = new_bytes / VM_PTABLE_SECTOR;
    if (g.new_last <= g.old_last || g.new_last >= sectors || g.first > g.old_last) FAIL();
    if (g.head_len > sizeof g.head || g.tail_len > sizeof g.tail || g.head_len > len) FAIL();
    if (g.tail_len && g.tail_offset + g.tail_len != new_bytes) FAIL();
    if (g.kind == VM_PTABLE_GPT && len >= VM_PTABLE_HEAD_BYTES) {
      static uint8_t grown[VM_PTABLE_HEAD_BYTES];
      memcpy(grown, head, VM_PTABLE_HEAD_BYTES);
      memcpy(grown, g.head, g.head_len);
      if (vm_ptable_plan_grow(&again, grown, sizeof grown, new_bytes,
                              new_bytes + 64 * VM_PTABLE_SECTOR, &why) != 1)
        FAIL();
      if (again.number != g.number || again.old_last != g.new_last) FAIL();
    }
  }
  free(head);
  return 0;
}
