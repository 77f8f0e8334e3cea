/* SPDX-License-Identifier: MIT */
#ifndef QVM_DIFF_PART_H
#define QVM_DIFF_PART_H

/* The partition that holds a disk's root ext2/3/4 file system, from its MBR
 * or GPT, parsed here with bounds on every field (a guest wrote it). */
#include <stdint.h>

#include "util/error.h"

/* Reads len bytes at off; 0 or -1. */
typedef int diff_read_fn(void *ctx, void *buf, uint32_t len, uint64_t off);

typedef struct diff_part {
  uint64_t offset, size; /* bytes */
  int index;             /* 1-based partition number; 0: the whole disk */
} diff_part;

#define DIFF_MAX_PARTS 128

/* The largest partition (or the whole disk, when it has no table) that
 * starts with an ext2/3/4 superblock. QVM_EINVAL: none, or a table that
 * points outside the disk. */
int diff_part_find_ext(diff_part *out, diff_read_fn *read, void *ctx, uint64_t disk_size,
                       qvm_error **err);

#endif
