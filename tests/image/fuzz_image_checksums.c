/* SPDX-License-Identifier: MIT */
/* A checksum file comes from a server: parse arbitrary bytes as one, for a
 * few names; the first line of the input (up to 64 bytes) is also tried as
 * the name. A digest found is 64 or 128 lowercase hex digits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/catalog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *text, size_t len, const char *name) {
  char hex[129];
  const char *alg = NULL;
  qvm_error *err = NULL;
  int r = img_checksums_find(hex, &alg, text, len, name, &err);
  if (r == 0) {
    size_t n = strlen(hex);
    if (n != (strcmp(alg, "sha256") ? 128u : 64u)) abort();
    for (size_t i = 0; i < n; i++)
      if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'))) abort();
  } else if (!err || !qvm_error_message(err)[0] || (r != QVM_ENOTFOUND && r != QVM_EINVAL)) {
    abort();
  }
  qvm_error_free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  check(text, size, "disk.img");
  check(text, size, "debian-12-generic-amd64.qcow2");
  char name[65];
  size_t n = strcspn(text, "\n");
  n = n < 64 ? n : 64;
  memcpy(name, text, n);
  name[n] = '\0';
  check(text, size, name);
  free(text);
  return 0;
}
