/* SPDX-License-Identifier: MIT */
#ifndef QVM_DIFF_COMPARE_H
#define QVM_DIFF_COMPARE_H

/* Two walked trees to a list of changes; pure but for the hash callback. */
#include <stddef.h>

#include <qvm/diff.h>

#include "diff/walk.h"

typedef struct diff_change {
  qvm_diff_kind kind;
  unsigned what;
  diff_entry *from, *to; /* NULL where absent */
  bool kept;             /* to's content is in the diff's content dir */
  bool have_md5;         /* md5 is known: kept, or a conffile's content read */
  uint8_t md5[16];       /* of to's content, when have_md5 */
} diff_change;

/* Hashes e (side 0: from, 1: to) with diff_fs_hash() or a test's stand-in. */
typedef int diff_hash_fn(void *ctx, int side, diff_entry *e, qvm_error **err);

/* Regular files are hashed only where that decides something: both sides
 * of a file whose size did not change, and the new side of an added or
 * changed file (its sha256 is part of the output). */
int diff_compare(diff_change **out, size_t *out_n, diff_tree *from, diff_tree *to,
                 diff_hash_fn *hash, void *ctx, qvm_error **err);

#endif
