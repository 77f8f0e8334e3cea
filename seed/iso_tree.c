/* SPDX-License-Identifier: MIT */
/*
 * The ISO9660 writer's file tree: validating the names a caller gives,
 * deriving each entry's primary (d-character 8.3) and Joliet (UCS-2)
 * identifiers, and the sort orders ECMA-119 9.3 and Joliet require.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "seed/iso.h"
#include "util/cleanup.h"
#include "util/error.h"

void iso_node_free(iso_node *n) {
  if (!n) return;
  for (size_t i = 0; i < n->n_kids; i++) iso_node_free(n->kids[TREE_PRIMARY][i]);
  free(n->kids[TREE_PRIMARY]);
  free(n->kids[TREE_JOLIET]);
  free(n->name);
  free(n->data);
  free(n->host_path);
  free(n);
}

void qvm_seed_iso_free(qvm_seed_iso *iso) {
  if (!iso) return;
  iso_node_free(iso->root);
  free(iso->dirs[TREE_PRIMARY]);
  free(iso->dirs[TREE_JOLIET]);
  free(iso->files);
  free(iso);
}

QVM_DEFINE_CLEANUP(iso_node, iso_node_free)

static iso_node *node_new(const char *name, size_t len, bool is_dir) {
  iso_node *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  n->name = strndup(name, len);
  if (!n->name) {
    free(n);
    return NULL;
  }
  n->is_dir = is_dir;
  return n;
}

int qvm_seed_iso_new(qvm_seed_iso **out, const qvm_seed_iso_options *opts, qvm_error **err) {
  qvm_seed_iso_options def = QVM_SEED_ISO_OPTIONS_INIT;
  if (!opts) opts = &def;
  int rc = QVM_OPTIONS_CHECK(opts, qvm_seed_iso_options, QVM_SEED_ISO_OPTIONS_VERSION, err);
  if (rc < 0) return rc;
  const char *vid = opts->volume_id ? opts->volume_id : "cidata";
  size_t vlen = strlen(vid);
  if (vlen == 0 || vlen > 16)
    return qvm_error_set(err, QVM_EINVAL, "volume id '%s' must have 1 to 16 characters", vid);
  for (size_t i = 0; i < vlen; i++)
    if ((unsigned char)vid[i] < 0x20 || (unsigned char)vid[i] > 0x7e)
      return qvm_error_set(err, QVM_EINVAL, "volume id '%s' must be printable ascii", vid);
  /* Directory records store the year as an offset from 1900 in one byte. */
  if (opts->epoch < 0 || opts->epoch > INT64_C(5869633535)) /* 2155-12-31 */
    return qvm_error_set(err, QVM_EINVAL, "epoch %lld is outside 1970..2155",
                         (long long)opts->epoch);
  qvm_seed_iso *iso = calloc(1, sizeof *iso);
  if (!iso || !(iso->root = node_new("", 0, true))) {
    free(iso);
    return qvm_error_set_errno(err, ENOMEM, "cannot allocate iso");
  }
  iso->root->depth = 1;
  memcpy(iso->volume_id, vid, vlen);
  iso->epoch = opts->epoch;
  *out = iso;
  return 0;
}

static int kid_append(iso_node *dir, iso_node *kid) {
  if (dir->n_kids == dir->cap_kids) {
    size_t cap = dir->cap_kids ? dir->cap_kids * 2 : 8;
    iso_node **k = reallocarray(dir->kids[TREE_PRIMARY], cap, sizeof *k);
    if (!k) return -ENOMEM;
    dir->kids[TREE_PRIMARY] = k;
    dir->cap_kids = cap;
  }
  dir->kids[TREE_PRIMARY][dir->n_kids++] = kid;
  kid->parent = dir;
  kid->depth = dir->depth + 1;
  return 0;
}

static iso_node *kid_find(const iso_node *dir, const char *name, size_t len) {
  for (size_t i = 0; i < dir->n_kids; i++) {
    iso_node *k = dir->kids[TREE_PRIMARY][i];
    if (strlen(k->name) == len && memcmp(k->name, name, len) == 0) return k;
  }
  return NULL;
}

static int check_component(const char *path, const char *c, size_t len, qvm_error **err) {
  if (len == 0) return qvm_error_set(err, QVM_EINVAL, "path '%s' has an empty component", path);
  if (len > ISO_MAX_NAME)
    return qvm_error_set(err, QVM_EINVAL, "name in '%s' is longer than %u bytes", path,
                         ISO_MAX_NAME);
  if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
    return qvm_error_set(err, QVM_EINVAL, "path '%s' contains '.' or '..'", path);
  return 0;
}

/* Walks path to its parent directory, creating missing directories; *leaf
 * and *leaf_len name the last component. */
static int walk_parent(iso_node **out, const char **leaf, size_t *leaf_len, qvm_seed_iso *iso,
                       const char *path, qvm_error **err) {
  iso_node *dir = iso->root;
  const char *p = path;
  if (!path || !*path) return qvm_error_set(err, QVM_EINVAL, "path in the image is empty");
  for (;;) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    int r = check_component(path, p, len, err);
    if (r < 0) return r;
    if (!slash) break;
    iso_node *next = kid_find(dir, p, len);
    if (next && !next->is_dir)
      return qvm_error_set(err, QVM_EEXISTS, "'%.*s' in '%s' is a file, not a directory", (int)len,
                           p, path);
    if (!next) {
      if (dir->depth + 1 > ISO_MAX_DEPTH)
        return qvm_error_set(err, QVM_EINVAL, "path '%s' is deeper than %d directory levels", path,
                             ISO_MAX_DEPTH);
      if (!(next = node_new(p, len, true)) || kid_append(dir, next) < 0) {
        iso_node_free(next);
        return qvm_error_set_errno(err, ENOMEM, "cannot add '%s'", path);
      }
    }
    dir = next;
    p = slash + 1;
  }
  *out = dir;
  *leaf = p;
  *leaf_len = strlen(p);
  return 0;
}

static int add_node(iso_node **out, qvm_seed_iso *iso, const char *path, bool is_dir,
                    qvm_error **err) {
  if (path && strlen(path) > 4096)
    return qvm_error_set(err, QVM_EINVAL, "path '%.64s...' is too long", path);
  iso_node *dir = NULL;
  const char *leaf = NULL;
  size_t leaf_len = 0;
  int r = walk_parent(&dir, &leaf, &leaf_len, iso, path, err);
  if (r < 0) return r;
  iso_node *old = kid_find(dir, leaf, leaf_len);
  if (old) {
    if (is_dir && old->is_dir) {
      *out = old;
      return 0;
    }
    return qvm_error_set(err, QVM_EEXISTS, "'%s' is already in the image", path);
  }
  if (is_dir && dir->depth + 1 > ISO_MAX_DEPTH)
    return qvm_error_set(err, QVM_EINVAL, "path '%s' is deeper than %d directory levels", path,
                         ISO_MAX_DEPTH);
  _cleanup_(iso_node_freep) iso_node *n = node_new(leaf, leaf_len, is_dir);
  if (!n || kid_append(dir, n) < 0)
    return qvm_error_set_errno(err, ENOMEM, "cannot add '%s'", path);
  *out = TAKE_PTR(n);
  return 0;
}

int qvm_seed_iso_add_dir(qvm_seed_iso *iso, const char *path, qvm_error **err) {
  iso_node *n = NULL;
  return add_node(&n, iso, path, true, err);
}

int qvm_seed_iso_add_data(qvm_seed_iso *iso, const char *path, const void *data, size_t len,
                          qvm_error **err) {
  if ((uint64_t)len > UINT32_MAX)
    return qvm_error_set(err, QVM_EINVAL, "file '%s' is 4 GiB or larger", path);
  _cleanup_free_ uint8_t *copy = malloc(len ? len : 1);
  if (!copy) return qvm_error_set_errno(err, ENOMEM, "cannot copy '%s'", path);
  if (len) memcpy(copy, data, len);
  iso_node *n = NULL;
  int r = add_node(&n, iso, path, false, err);
  if (r < 0) return r;
  n->data = TAKE_PTR(copy);
  n->size = len;
  return 0;
}

int qvm_seed_iso_add_file(qvm_seed_iso *iso, const char *path, const char *host_path,
                          qvm_error **err) {
  struct stat st;
  if (stat(host_path, &st) < 0)
    return qvm_error_set_code_errno(err, errno == ENOENT ? QVM_ENOTFOUND : QVM_ESYS, errno,
                                    "cannot read '%s'", host_path);
  if (!S_ISREG(st.st_mode))
    return qvm_error_set(err, QVM_EINVAL, "'%s' is not a regular file", host_path);
  if ((uint64_t)st.st_size > UINT32_MAX)
    return qvm_error_set(err, QVM_EINVAL,
                         "file '%s' is 4 GiB or larger (multi-extent files are not supported)",
                         host_path);
  _cleanup_free_ char *copy = strdup(host_path);
  if (!copy) return qvm_error_set_errno(err, ENOMEM, "cannot add '%s'", path);
  iso_node *n = NULL;
  int r = add_node(&n, iso, path, false, err);
  if (r < 0) return r;
  n->host_path = TAKE_PTR(copy);
  n->size = (uint64_t)st.st_size;
  return 0;
}

/* ---- identifiers ---- */

static char d_char(unsigned char c) {
  if (c >= 'a' && c <= 'z') return (char)(c - 'a' + 'A');
  if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_') return (char)c;
  return '_';
}

static size_t d_string(char *out, const char *in, size_t len, size_t max) {
  size_t n = 0;
  for (size_t i = 0; i < len && n < max; i++) out[n++] = d_char((unsigned char)in[i]);
  return n;
}

/* base (<= 8) + optional counter suffix, "." ext (<= 3), ";1" for files. */
static void primary_id(iso_node *n, unsigned counter) {
  char base[9] = {0}, ext[4] = {0};
  const char *dot = n->is_dir ? NULL : strrchr(n->name, '.');
  size_t name_len = dot ? (size_t)(dot - n->name) : strlen(n->name);
  size_t blen = d_string(base, n->name, name_len, 8);
  size_t elen = dot ? d_string(ext, dot + 1, strlen(dot + 1), 3) : 0;
  if (blen == 0) base[blen++] = '_';
  if (counter) {
    char num[12];
    int nl = snprintf(num, sizeof num, "%u", counter);
    if (blen + (size_t)nl > 8) blen = 8 - (size_t)nl;
    memcpy(base + blen, num, (size_t)nl);
    blen += (size_t)nl;
  }
  int len = n->is_dir
                ? snprintf(n->id, sizeof n->id, "%.*s", (int)blen, base)
                : snprintf(n->id, sizeof n->id, "%.*s.%.*s;1", (int)blen, base, (int)elen, ext);
  n->id_len = (uint8_t)len;
}

/* Decodes one UTF-8 sequence; invalid input gives U+FFFD and consumes 1 byte. */
static uint32_t utf8_next(const unsigned char **p, const unsigned char *end) {
  const unsigned char *s = *p;
  uint32_t c = s[0];
  size_t need = c < 0x80             ? 0
                : (c & 0xe0) == 0xc0 ? 1
                : (c & 0xf0) == 0xe0 ? 2
                : (c & 0xf8) == 0xf0 ? 3
                                     : 4;
  if (need == 4 || (size_t)(end - s) <= need) goto bad;
  if (need) c &= 0x3f >> need;
  for (size_t i = 1; i <= need; i++) {
    if ((s[i] & 0xc0) != 0x80) goto bad;
    c = (c << 6) | (s[i] & 0x3f);
  }
  static const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
  if (c < min[need] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) goto bad;
  *p = s + need + 1;
  return c;
bad:
  *p = s + 1;
  return 0xfffd;
}

static void put_unit(iso_node *n, size_t *units, uint16_t u) {
  n->jid[2 * *units] = (uint8_t)(u >> 8);
  n->jid[2 * *units + 1] = (uint8_t)u;
  (*units)++;
}

/* UTF-16BE of the name, at most 64 units; characters Joliet forbids become
 * '_'. A counter replaces the tail to make a truncated name unique. */
static void joliet_id(iso_node *n, unsigned counter) {
  char num[16] = "";
  if (counter) snprintf(num, sizeof num, "~%u", counter);
  size_t limit = ISO_JOLIET_MAX_UNITS - strlen(num), units = 0;
  const unsigned char *p = (const unsigned char *)n->name, *end = p + strlen(n->name);
  while (p < end) {
    uint32_t c = utf8_next(&p, end);
    if (c < 0x20 || strchr("*/:;?\\", (int)c)) c = '_';
    if (c >= 0x10000) {
      if (units + 2 > limit) break;
      c -= 0x10000;
      put_unit(n, &units, (uint16_t)(0xd800 | (c >> 10)));
      put_unit(n, &units, (uint16_t)(0xdc00 | (c & 0x3ff)));
    } else {
      if (units + 1 > limit) break;
      put_unit(n, &units, (uint16_t)c);
    }
  }
  for (const char *s = num; *s; s++) put_unit(n, &units, (uint16_t)*s);
  n->jid_len = (uint8_t)(2 * units);
}

/* ECMA-119 9.3: compare the name part, then the extension, each padded with
 * spaces, then the version. d-characters all sort above the space. */
static int cmp_padded(const char *a, size_t al, const char *b, size_t bl) {
  size_t n = al > bl ? al : bl;
  for (size_t i = 0; i < n; i++) {
    unsigned char ca = i < al ? (unsigned char)a[i] : ' ';
    unsigned char cb = i < bl ? (unsigned char)b[i] : ' ';
    if (ca != cb) return ca < cb ? -1 : 1;
  }
  return 0;
}

static void split_id(const iso_node *n, size_t *name_len, const char **ext, size_t *ext_len) {
  const char *dot = memchr(n->id, '.', n->id_len);
  const char *semi = memchr(n->id, ';', n->id_len);
  const char *end = semi ? semi : n->id + n->id_len;
  *name_len = dot ? (size_t)(dot - n->id) : (size_t)(end - n->id);
  *ext = dot ? dot + 1 : end;
  *ext_len = (size_t)(end - *ext);
}

static int cmp_primary(const void *a, const void *b) {
  const iso_node *x = *(iso_node *const *)a, *y = *(iso_node *const *)b;
  size_t xn, xe, yn, ye;
  const char *xext, *yext;
  split_id(x, &xn, &xext, &xe);
  split_id(y, &yn, &yext, &ye);
  int c = cmp_padded(x->id, xn, y->id, yn);
  return c ? c : cmp_padded(xext, xe, yext, ye);
}

static int cmp_joliet(const void *a, const void *b) {
  const iso_node *x = *(iso_node *const *)a, *y = *(iso_node *const *)b;
  size_t n = x->jid_len < y->jid_len ? x->jid_len : y->jid_len;
  int c = memcmp(x->jid, y->jid, n);
  return c ? c : (int)x->jid_len - (int)y->jid_len;
}

static int cmp_real_name(const void *a, const void *b) {
  return strcmp((*(iso_node *const *)a)->name, (*(iso_node *const *)b)->name);
}

static bool id_taken(iso_node *const *kids, size_t n, const iso_node *self, bool joliet) {
  for (size_t i = 0; i < n; i++) {
    const iso_node *k = kids[i];
    if (k == self) continue;
    if (joliet ? (k->jid_len == self->jid_len && !memcmp(k->jid, self->jid, k->jid_len))
               : (k->id_len == self->id_len && !memcmp(k->id, self->id, k->id_len)))
      return true;
  }
  return false;
}

/* Names the children in real-name order, so the result does not depend on
 * the order they were added in. */
static void name_children(iso_node *dir) {
  iso_node **kids = dir->kids[TREE_PRIMARY];
  qsort(kids, dir->n_kids, sizeof *kids, cmp_real_name);
  for (size_t i = 0; i < dir->n_kids; i++) {
    unsigned c = 0;
    do primary_id(kids[i], c++);
    while (id_taken(kids, i, kids[i], false));
    c = 0;
    do joliet_id(kids[i], c++);
    while (id_taken(kids, i, kids[i], true));
  }
}

static int finish_dir(iso_node *dir, qvm_error **err) {
  free(dir->kids[TREE_JOLIET]);
  dir->kids[TREE_JOLIET] = NULL;
  if (dir->n_kids == 0) return 0;
  name_children(dir);
  dir->kids[TREE_JOLIET] = calloc(dir->n_kids, sizeof(iso_node *));
  if (!dir->kids[TREE_JOLIET]) return qvm_error_set_errno(err, ENOMEM, "cannot sort directory");
  memcpy(dir->kids[TREE_JOLIET], dir->kids[TREE_PRIMARY], dir->n_kids * sizeof(iso_node *));
  qsort(dir->kids[TREE_PRIMARY], dir->n_kids, sizeof(iso_node *), cmp_primary);
  qsort(dir->kids[TREE_JOLIET], dir->n_kids, sizeof(iso_node *), cmp_joliet);
  for (size_t i = 0; i < dir->n_kids; i++) {
    iso_node *k = dir->kids[TREE_PRIMARY][i];
    if (k->is_dir) {
      int r = finish_dir(k, err);
      if (r < 0) return r;
    }
  }
  return 0;
}

int iso_tree_finish(qvm_seed_iso *iso, qvm_error **err) { return finish_dir(iso->root, err); }
