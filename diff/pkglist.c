/* SPDX-License-Identifier: MIT */
/* The file lists of the packages that changed (/var/lib/dpkg/info/PKG.list),
 * so that the playbook leaves to apt what apt makes and removes. dpkg names
 * paths as the package ships them (/lib/modules/...); on a merged-/usr
 * system the walk sees them under /usr/lib: each path is resolved through
 * the symlinked directories of its side's walked tree. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diff/system.h"
#include "util/cleanup.h"
#include "util/strbuf.h"

#define LIST_MAX (16u << 20)
#define MAX_LINKS 8

static int oom(qvm_error **err) { return qvm_error_set_errno(err, ENOMEM, "out of memory"); }

static int path_cmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const diff_entry *tree_find(const diff_tree *t, const char *p, size_t n) {
  size_t lo = 0, hi = t->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const diff_entry *e = &t->e[mid];
    size_t m = e->path_len < n ? e->path_len : n;
    int c = memcmp(e->path, p, m);
    if (!c) c = (e->path_len > n) - (e->path_len < n);
    if (!c) return e;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

/* "/a/./b/../c" -> "/a/c", in place; ".." at the root stays at the root. */
static void normalize(char *p) {
  char *out = p;
  for (const char *in = p; *in;) {
    while (*in == '/') in++;
    const char *end = strchrnul(in, '/');
    size_t n = (size_t)(end - in);
    if (n == 0 || (n == 1 && in[0] == '.')) {
    } else if (n == 2 && in[0] == '.' && in[1] == '.') {
      while (out > p && *--out != '/') {
      }
    } else {
      *out++ = '/';
      memmove(out, in, n);
      out += n;
    }
    in = end;
  }
  if (out == p) *out++ = '/';
  *out = '\0';
}

/* The first directory prefix of p that is a symlink in t, replaced. */
static char *resolve_once(const diff_tree *t, const char *p, size_t len, bool *changed) {
  *changed = false;
  for (size_t i = 1; i < len; i++) {
    if (p[i] != '/') continue;
    const diff_entry *e = tree_find(t, p, i);
    if (!e || e->type != 'l') continue;
    char *out = NULL;
    /* a relative target is relative to the link's directory */
    const char *dir_end = memrchr(p, '/', i);
    int dl = e->target[0] == '/' ? 0 : (int)(dir_end - p);
    if (asprintf(&out, "%.*s/%s/%s", dl, p, e->target, p + i + 1) < 0) return NULL;
    normalize(out);
    *changed = true;
    return out;
  }
  return qvm_strndup(p, len);
}

char *diff_canonical_path(const diff_tree *t, const char *path, size_t len) {
  char *cur = qvm_strndup(path, len);
  for (int hop = 0; cur && hop < MAX_LINKS; hop++) {
    bool changed = false;
    char *next = resolve_once(t, cur, strlen(cur), &changed);
    free(cur);
    cur = next;
    if (!changed) break;
  }
  if (cur && strlen(cur) >= DIFF_MAX_PATH) {
    free(cur);
    cur = qvm_strndup(path, len);
  }
  return cur;
}

static int add_list(diff_path_list *l, const diff_tree *t, const char *text, size_t len,
                    const char *pkg, qvm_error **err) {
  for (size_t at = 0; at < len;) {
    const char *p = text + at, *nl = memchr(p, '\n', len - at);
    size_t n = nl ? (size_t)(nl - p) : len - at;
    at += n + 1;
    if (n == 0 || (n == 2 && !memcmp(p, "/.", 2))) continue;
    if (p[0] != '/' || n >= DIFF_MAX_PATH || memchr(p, '\0', n))
      return qvm_error_set(err, QVM_EINVAL, "the file list of package '%s' has a bad line", pkg);
    if (l->n >= DIFF_MAX_ENTRIES)
      return qvm_error_set(err, QVM_EINVAL, "the packages' file lists are too long");
    if (l->n == l->cap) {
      size_t cap = l->cap ? l->cap * 2 : 1024;
      char **v = realloc(l->v, cap * sizeof *v);
      if (!v) return oom(err);
      l->v = v, l->cap = cap;
    }
    if (!(l->v[l->n] = diff_canonical_path(t, p, n))) return oom(err);
    l->n++;
  }
  return 0;
}

static int read_list(diff_path_list *l, diff_fs *fs, const diff_tree *t, const dpkg_pkg *p,
                     qvm_error **err) {
  _cleanup_free_ char *text = NULL, *path = NULL;
  size_t len = 0;
  if (asprintf(&path, "/var/lib/dpkg/info/%s:%s.list", p->name, p->arch) < 0) return oom(err);
  int r = diff_read_optional(&text, &len, fs, path, LIST_MAX, err);
  if (r >= 0 && !text) {
    free(path);
    if (asprintf(&path, "/var/lib/dpkg/info/%s.list", p->name) < 0) return oom(err);
    r = diff_read_optional(&text, &len, fs, path, LIST_MAX, err);
  }
  if (r >= 0 && text) r = add_list(l, t, text, len, p->name, err);
  return r;
}

int diff_system_read_lists(diff_system *s, int side, diff_fs *fs, const diff_tree *t,
                           qvm_error **err) {
  diff_path_list *l = &s->lists[side];
  int r = 0;
  for (size_t i = 0; r >= 0 && i < s->n_pkgs; i++) {
    const diff_package *dp = &s->pkgs[i];
    /* side 0: removed or upgraded, the old version; side 1: the new one */
    const dpkg_pkg *p = side ? dp->to : (dp->kind != QVM_DIFF_ADDED ? dp->from : NULL);
    if (p) r = read_list(l, fs, t, p, err);
  }
  if (r >= 0 && l->n) qsort(l->v, l->n, sizeof *l->v, path_cmp);
  return r;
}

static bool in_list(const diff_path_list *l, const char *path) {
  return l->n && bsearch(&path, l->v, l->n, sizeof *l->v, path_cmp);
}

bool diff_system_ships(const diff_system *s, const char *path) {
  return in_list(&s->lists[1], path);
}

bool diff_system_apt_removes(const diff_system *s, const char *path) {
  return in_list(&s->lists[0], path) && !in_list(&s->lists[1], path);
}
