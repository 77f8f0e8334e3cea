/* SPDX-License-Identifier: MIT */
/* /etc/passwd and /etc/group as read from a guest's disk (the first byte
 * picks which): never crashes, never reads out of bounds, and every name
 * it returns is a valid account name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "diff/accounts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  acct_db db = {0};
  qvm_error *err = NULL;
  const char *text = (const char *)data + 1;
  int r = data[0] & 1 ? acct_group_parse(&db, text, size - 1, &err)
                      : acct_passwd_parse(&db, text, size - 1, &err);
  if (r == 0) {
    for (size_t i = 0; i < db.n_u; i++)
      if (!acct_name_valid(db.u[i].name, strlen(db.u[i].name)) ||
          acct_find_user(&db, db.u[i].name) != &db.u[i])
        abort();
    for (size_t i = 0; i < db.n_g; i++) {
      if (!acct_name_valid(db.g[i].name, strlen(db.g[i].name))) abort();
      for (size_t k = 0; k < db.g[i].n_members; k++)
        if (!acct_name_valid(db.g[i].members[k], strlen(db.g[i].members[k]))) abort();
    }
  } else if (!err) {
    abort();
  }
  qvm_error_free(err);
  acct_db_clear(&db);
  return 0;
}
