/* SPDX-License-Identifier: MIT */
#include "diff/compare.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int cmp_path(const diff_entry *x, const diff_entry *y) {
  size_t n = x->path_len < y->path_len ? x->path_len : y->path_len;
  int c = memcmp(x->path, y->path, n);
  return c ? c : (x->path_len > y->path_len) - (x->path_len < y->path_len);
}

typedef struct list {
  diff_change *c;
  size_t n, cap;
} list;

static int push(list *l, qvm_diff_kind kind, unsigned what, diff_entry *from, diff_entry *to,
                qvm_error **err) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    diff_change *c = realloc(l->c, cap * sizeof *c);
    if (!c) return qvm_error_set_errno(err, ENOMEM, "out of memory");
    l->c = c, l->cap = cap;
  }
  l->c[l->n++] = (diff_change){.kind = kind, .what = what, .from = from, .to = to};
  return 0;
}

static int changed(unsigned *what, diff_entry *a, diff_entry *b, diff_hash_fn *hash, void *ctx,
                   qvm_error **err) {
  unsigned w = 0;
  int r = 0;
  if (a->type != b->type) w |= QVM_DIFF_TYPE;
  if (a->mode != b->mode) w |= QVM_DIFF_MODE;
  if (a->uid != b->uid || a->gid != b->gid) w |= QVM_DIFF_OWNER;
  if (a->type == b->type && a->type == 'l' &&
      (a->target_len != b->target_len || memcmp(a->target, b->target, a->target_len)))
    w |= QVM_DIFF_TARGET;
  if (a->type == b->type && (a->type == 'c' || a->type == 'b') && a->rdev != b->rdev)
    w |= QVM_DIFF_DEVICE;
  if (a->type == 'f' && b->type == 'f') {
    if (a->size != b->size) {
      w |= QVM_DIFF_CONTENT;
    } else if ((r = hash(ctx, 0, a, err)) >= 0 && (r = hash(ctx, 1, b, err)) >= 0) {
      /* A file too sparse to hash cannot be shown equal: changed. */
      if (a->unhashable || b->unhashable || memcmp(a->sha, b->sha, 32)) w |= QVM_DIFF_CONTENT;
    }
  }
  if (r >= 0 && b->type == 'f' && (w & (QVM_DIFF_CONTENT | QVM_DIFF_TYPE)))
    r = hash(ctx, 1, b, err);
  *what = w;
  return r;
}

int diff_compare(diff_change **out, size_t *out_n, diff_tree *from, diff_tree *to,
                 diff_hash_fn *hash, void *ctx, qvm_error **err) {
  list l = {0};
  size_t i = 0, j = 0;
  int r = 0;
  while (r >= 0 && (i < from->n || j < to->n)) {
    int c = i == from->n ? 1 : j == to->n ? -1 : cmp_path(&from->e[i], &to->e[j]);
    if (c < 0) {
      r = push(&l, QVM_DIFF_DELETED, 0, &from->e[i++], NULL, err);
    } else if (c > 0) {
      diff_entry *b = &to->e[j++];
      r = b->type == 'f' ? hash(ctx, 1, b, err) : 0;
      if (r >= 0) r = push(&l, QVM_DIFF_ADDED, 0, NULL, b, err);
    } else {
      unsigned what = 0;
      diff_entry *a = &from->e[i++], *b = &to->e[j++];
      r = changed(&what, a, b, hash, ctx, err);
      if (r >= 0 && what) r = push(&l, QVM_DIFF_MODIFIED, what, a, b, err);
    }
  }
  if (r < 0) {
    free(l.c);
    return r;
  }
  *out = l.c;
  *out_n = l.n;
  return 0;
}
