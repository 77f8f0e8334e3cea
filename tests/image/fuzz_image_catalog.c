/* SPDX-License-Identifier: MIT */
/* The user catalog is a file a user writes: load arbitrary bytes as one.
 * Every failure has a message naming the file; every entry loaded has a
 * valid alias, a url and exactly one checksum. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/catalog.h"
#include "image/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char path[64];
  if (!path[0]) snprintf(path, sizeof path, "/tmp/qvm-fuzz-catalog-%d.yaml", (int)getpid());
  FILE *f = fopen(path, "w");
  if (!f) return 0;
  fwrite(data, 1, size, f);
  fclose(f);
  img_catalog c = {0};
  qvm_error *err = NULL;
  if (img_catalog_load(&c, path, &err) == 0) {
    for (size_t i = 0; i < c.n; i++) {
      const img_catalog_entry *e = &c.entries[i];
      if (!img_name_valid(e->alias) || !e->url || !!e->checksums + !!e->sha256 + !!e->sha512 != 1)
        abort();
    }
    img_catalog_clear(&c);
  } else if (!err || !strstr(qvm_error_message(err), path)) {
    abort();
  }
  qvm_error_free(err);
  unlink(path);
  return 0;
}
