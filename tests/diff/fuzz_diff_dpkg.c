/* SPDX-License-Identifier: MIT */
/* dpkg's status file as read from a guest's disk: never crashes, never
 * reads out of bounds, and what it returns is sorted, unique and within
 * the parser's bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "diff/dpkg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dpkg_db db = {0};
  qvm_error *err = NULL;
  if (dpkg_status_parse(&db, (const char *)data, size, &err) == 0) {
    for (size_t i = 0; i < db.n; i++) {
      const dpkg_pkg *p = &db.p[i];
      if (!dpkg_name_valid(p->name) || !dpkg_version_valid(p->version)) abort();
      if (i && strcmp(db.p[i - 1].name, p->name) > 0) abort();
      if (dpkg_find(&db, p->name, p->arch) == NULL) abort();
      for (size_t k = 0; k < p->n_conf; k++)
        if (p->conf[k].path[0] != '/' || strlen(p->conf[k].md5) > 32) abort();
    }
  } else if (!err || db.n) {
    abort();
  }
  qvm_error_free(err);
  dpkg_db_clear(&db);
  return 0;
}
