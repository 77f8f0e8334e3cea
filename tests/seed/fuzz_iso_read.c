/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the seed image reader (seed/iso_read.c). The first byte
 * picks how the rest is used: even, the rest is the image itself; odd, the
 * rest is split at its first NUL into a file's content and a list of
 * patches (offset, 2 bytes little-endian, then a byte to XOR there) applied
 * to a valid image holding that file, so that the replay corpus reaches the
 * directory records with a few bytes per case. A file the reader returns
 * must lie inside the image.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "seed/iso.h"
#include <qvm/seed.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *img, size_t len) {
  qvm_seed_file *f = NULL;
  size_t n = 0;
  qvm_error *err = NULL;
  if (iso_read_buffer(&f, &n, img, len, "fuzz.iso", &err) < 0) {
    if (!err || !qvm_error_message(err)[0]) abort(); /* an error always says why */
    qvm_error_free(err);
    return;
  }
  for (size_t i = 0; i < n; i++)
    if (f[i].len > len || !f[i].name || !f[i].name[0]) abort();
  qvm_seed_files_free(f, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!size) return 0;
  if (!(data[0] & 1)) {
    check(data + 1, size - 1);
    return 0;
  }
  const uint8_t *rest = data + 1, *nul = memchr(rest, 0, size - 1);
  size_t content_len = nul ? (size_t)(nul - rest) : size - 1;
  qvm_seed_file file = {"user-data", rest, content_len};
  qvm_seed_iso *iso = NULL;
  qvm_error *err = NULL;
  uint8_t *img = NULL;
  size_t len = 0;
  if (qvm_seed_iso_new(&iso, NULL, &err) < 0 ||
      qvm_seed_iso_add_data(iso, file.name, file.data, file.len, &err) < 0 ||
      qvm_seed_iso_add_data(iso, "meta-data", "instance-id: f\n", 15, &err) < 0 ||
      qvm_seed_iso_write_buffer(&img, &len, iso, &err) < 0)
    abort(); /* a valid image must build */
  qvm_seed_iso_free(iso);
  if (nul)
    for (const uint8_t *p = nul + 1; p + 3 <= data + size; p += 3) {
      size_t off = (size_t)p[0] | (size_t)p[1] << 8;
      /* patches land in the descriptors and the root directory (blocks 16-25) */
      off = 16 * 2048 + off % (10 * 2048);
      if (off < len) img[off] ^= p[2];
    }
  check(img, len);
  free(img);
  return 0;
}
