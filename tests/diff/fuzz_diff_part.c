/* SPDX-License-Identifier: MIT */
/* The MBR/GPT parse on guest-written bytes: the input is the start of a
 * disk (its first 64 KiB; the disk's size is the input's size times 512,
 * so that tables can point past what was given). Never crashes, never
 * reads out of bounds, and a partition it returns lies within the disk. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "diff/part.h"

typedef struct input {
  const uint8_t *b;
  size_t n;
} input;

/* Bytes past the input read as zeros, up to the disk's size. */
static int fuzz_read(void *ctx, void *buf, uint32_t len, uint64_t off) {
  const input *in = ctx;
  memset(buf, 0, len);
  if (off < in->n) memcpy(buf, in->b + off, in->n - off < len ? in->n - off : len);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536) size = 65536;
  input in = {data, size};
  uint64_t disk = (uint64_t)size * 512;
  diff_part p;
  qvm_error *err = NULL;
  if (diff_part_find_ext(&p, fuzz_read, &in, disk, &err) == 0) {
    if (p.offset > disk || p.size > disk - p.offset) abort();
  }
  qvm_error_free(err);
  return 0;
}
