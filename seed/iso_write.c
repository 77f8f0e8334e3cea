/* SPDX-License-Identifier: MIT */
/*
 * The ISO9660 writer's layout and output: volume descriptors (primary,
 * Joliet, terminator), L and M path tables for both trees, directory records
 * with Rock Ridge (SUSP SP/CE/ER, RRIP PX/TF/NM), and file data streamed in
 * order. Everything is computed first (layout), then written front to back,
 * so the output can go to a pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>

#include "seed/iso.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/strbuf.h"

#define SYSTEM_AREA_BLOCKS 16u
#define FIRST_PATH_TABLE_LBA 19u /* after PVD, Joliet SVD, terminator */
#define JOLIET_FILE_VERSION 0    /* no ";1" after Joliet names: isoinfo -J matches them as given */

#define RRIP_ID "RRIP_1991A"
#define RRIP_DES                                                                                   \
  "THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS"
#define RRIP_SRC                                                                                   \
  "PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN "          \
  "PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION."

enum rec_kind { REC_DOT, REC_DOTDOT, REC_NAMED };

/* ---- byte helpers ---- */

static void le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }
static void le32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void be32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * (3 - i)));
}
static void both16(uint8_t *p, uint16_t v) { le16(p, v), be16(p + 2, v); }
static void both32(uint8_t *p, uint32_t v) { le32(p, v), be32(p + 4, v); }

static uint32_t blocks(uint64_t bytes) { return (uint32_t)((bytes + ISO_BLOCK - 1) / ISO_BLOCK); }

/* ---- output ---- */

typedef struct sink {
  int fd;         /* >= 0: write here */
  qvm_strbuf *sb; /* else: append here */
  uint64_t pos;
} sink;

static int sink_write(sink *s, const void *data, size_t len, qvm_error **err) {
  if (s->fd >= 0) {
    ssize_t n = qvm_write_all(s->fd, data, len);
    if (n < 0) return qvm_error_set_errno(err, (int)-n, "cannot write iso image");
  } else {
    qvm_strbuf_append(s->sb, data, len);
    if (s->sb->oom) return qvm_error_set_errno(err, ENOMEM, "cannot write iso image");
  }
  s->pos += len;
  return 0;
}

static int sink_pad_to(sink *s, uint64_t pos, qvm_error **err) {
  static const uint8_t zero[ISO_BLOCK];
  while (s->pos < pos) {
    uint64_t n = pos - s->pos;
    int r = sink_write(s, zero, n > sizeof zero ? sizeof zero : (size_t)n, err);
    if (r < 0) return r;
  }
  return 0;
}

/* ---- dates ---- */

static void dir_date(uint8_t out[7], int64_t epoch) {
  time_t t = (time_t)epoch;
  struct tm tm;
  gmtime_r(&t, &tm);
  out[0] = (uint8_t)tm.tm_year, out[1] = (uint8_t)(tm.tm_mon + 1), out[2] = (uint8_t)tm.tm_mday;
  out[3] = (uint8_t)tm.tm_hour, out[4] = (uint8_t)tm.tm_min, out[5] = (uint8_t)tm.tm_sec;
  out[6] = 0; /* GMT */
}

static void vd_date(uint8_t out[17], int64_t epoch) {
  time_t t = (time_t)epoch;
  struct tm tm;
  char buf[64];
  gmtime_r(&t, &tm);
  snprintf(buf, sizeof buf, "%04d%02d%02d%02d%02d%02d00", (tm.tm_year + 1900) % 10000,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  memcpy(out, buf, 16);
  out[16] = 0;
}

/* ---- system use (Rock Ridge) ---- */

typedef struct su_area {
  uint8_t in[256]; /* inside the directory record */
  size_t in_len;
  uint8_t ce[768]; /* in the continuation area */
  size_t ce_len;
} su_area;

static size_t su_px(uint8_t *p, const iso_node *n) {
  uint32_t mode = n->is_dir ? 040755 : 0100644, links = 1;
  if (n->is_dir) {
    links = 2;
    for (size_t i = 0; i < n->n_kids; i++) links += n->kids[TREE_PRIMARY][i]->is_dir;
  }
  p[0] = 'P', p[1] = 'X', p[2] = 36, p[3] = 1;
  both32(p + 4, mode), both32(p + 12, links), both32(p + 20, 0), both32(p + 28, 0);
  return 36;
}

static size_t su_tf(uint8_t *p, int64_t epoch) {
  p[0] = 'T', p[1] = 'F', p[2] = 26, p[3] = 1, p[4] = 0x0e; /* modify, access, attributes */
  for (int i = 0; i < 3; i++) dir_date(p + 5 + 7 * i, epoch);
  return 26;
}

static size_t su_nm(uint8_t *p, const char *name) {
  size_t len = strlen(name), off = 0;
  do {
    size_t chunk = len > 250 ? 250 : len;
    p[off] = 'N', p[off + 1] = 'M', p[off + 2] = (uint8_t)(5 + chunk), p[off + 3] = 1;
    p[off + 4] = len > chunk ? 1 : 0; /* CONTINUE */
    memcpy(p + off + 5, name, chunk);
    off += 5 + chunk, name += chunk, len -= chunk;
  } while (len > 0);
  return off;
}

static size_t su_er(uint8_t *p) {
  size_t li = strlen(RRIP_ID), ld = strlen(RRIP_DES), ls = strlen(RRIP_SRC);
  p[0] = 'E', p[1] = 'R', p[2] = (uint8_t)(8 + li + ld + ls), p[3] = 1;
  p[4] = (uint8_t)li, p[5] = (uint8_t)ld, p[6] = (uint8_t)ls, p[7] = 1;
  memcpy(p + 8, RRIP_ID, li);
  memcpy(p + 8 + li, RRIP_DES, ld);
  memcpy(p + 8 + li + ld, RRIP_SRC, ls);
  return 8 + li + ld + ls;
}

static size_t su_ce(uint8_t *p, uint32_t lba, uint32_t off, uint32_t len) {
  p[0] = 'C', p[1] = 'E', p[2] = 28, p[3] = 1;
  both32(p + 4, lba), both32(p + 12, off), both32(p + 20, len);
  return 28;
}

/* Builds the system use field of a record whose fixed part is base_len
 * bytes. What does not fit in 255 bytes moves to the continuation area at
 * (ce_lba, ce_off), which layout reserved. */
static void su_build(su_area *su, const qvm_seed_iso *iso, const iso_node *n, enum rec_kind kind,
                     size_t base_len, uint32_t ce_lba, uint32_t ce_off) {
  bool root_dot = kind == REC_DOT && n == iso->root;
  size_t len = 0;
  su->in_len = su->ce_len = 0;
  if (root_dot) {
    static const uint8_t sp[7] = {'S', 'P', 7, 1, 0xbe, 0xef, 0};
    memcpy(su->in, sp, sizeof sp);
    len = sizeof sp;
  }
  len += su_px(su->in + len, n);
  len += su_tf(su->in + len, iso->epoch);
  size_t tail = 0;
  if (kind == REC_NAMED) tail = su_nm(su->ce, n->name);
  if (root_dot) tail = su_er(su->ce);
  if (!root_dot && base_len + len + tail <= 254) {
    memcpy(su->in + len, su->ce, tail);
    su->in_len = len + tail;
    return;
  }
  su->ce_len = tail;
  su->in_len = len + su_ce(su->in + len, ce_lba, ce_off, (uint32_t)tail);
}

/* ---- directory records ---- */

static size_t rec_base(size_t id_len) { return 33 + id_len + (id_len % 2 == 0); }

static void rec_id(const iso_node *n, int tree, enum rec_kind kind, uint8_t *id, size_t *id_len) {
  if (kind != REC_NAMED) {
    id[0] = kind == REC_DOT ? 0 : 1;
    *id_len = 1;
  } else if (tree == TREE_PRIMARY) {
    memcpy(id, n->id, n->id_len);
    *id_len = n->id_len;
  } else {
    memcpy(id, n->jid, n->jid_len);
    *id_len = n->jid_len;
    if (JOLIET_FILE_VERSION && !n->is_dir) {
      static const uint8_t ver[4] = {0, ';', 0, '1'};
      memcpy(id + *id_len, ver, sizeof ver);
      *id_len += sizeof ver;
    }
  }
}

/* Encodes one record into out (<= 256 bytes) and returns its length; with
 * out NULL only measures. `n` is the entry described: the directory itself
 * for ".", its parent for "..". */
static size_t rec_encode(uint8_t *out, const qvm_seed_iso *iso, const iso_node *n, int tree,
                         enum rec_kind kind, su_area *su, uint32_t ce_lba, uint32_t ce_off) {
  uint8_t id[2 * ISO_JOLIET_MAX_UNITS + 8];
  size_t id_len;
  rec_id(n, tree, kind, id, &id_len);
  size_t base = rec_base(id_len);
  su->in_len = su->ce_len = 0;
  if (tree == TREE_PRIMARY) su_build(su, iso, n, kind, base, ce_lba, ce_off);
  size_t len = base + su->in_len;
  len += len % 2;
  if (!out) return len;
  memset(out, 0, len);
  out[0] = (uint8_t)len;
  both32(out + 2, n->is_dir ? n->dir_lba[tree] : n->lba);
  both32(out + 10, n->is_dir ? n->dir_size[tree] : (uint32_t)n->size);
  dir_date(out + 18, iso->epoch);
  out[25] = n->is_dir ? 2 : 0;
  both16(out + 28, 1);
  out[32] = (uint8_t)id_len;
  memcpy(out + 33, id, id_len);
  memcpy(out + base, su->in, su->in_len);
  return len;
}

typedef int (*rec_visit)(void *ctx, const iso_node *n, enum rec_kind kind, size_t len,
                         uint32_t block, uint32_t off, qvm_error **err);

/* Visits the records of dir in order with their block (relative to the
 * extent) and offset: a record never crosses a block boundary. Returns the
 * extent's size in bytes. */
static int64_t dir_walk(const qvm_seed_iso *iso, const iso_node *dir, int tree, rec_visit visit,
                        void *ctx, qvm_error **err) {
  uint32_t block = 0, off = 0;
  su_area su;
  for (size_t i = 0; i < dir->n_kids + 2; i++) {
    enum rec_kind kind = i == 0 ? REC_DOT : i == 1 ? REC_DOTDOT : REC_NAMED;
    const iso_node *n = i == 0   ? dir
                        : i == 1 ? (dir->parent ? dir->parent : dir)
                                 : dir->kids[tree][i - 2];
    size_t len = rec_encode(NULL, iso, n, tree, kind, &su, 0, 0);
    if (off + len > ISO_BLOCK) block++, off = 0;
    if (visit) {
      int r = visit(ctx, n, kind, len, block, off, err);
      if (r < 0) return r;
    }
    off += (uint32_t)len;
  }
  return (int64_t)(block + 1) * ISO_BLOCK;
}

/* ---- layout ---- */

static size_t path_table_size(const qvm_seed_iso *iso, int tree) {
  size_t size = 0;
  for (size_t i = 0; i < iso->n_dirs; i++) {
    const iso_node *d = iso->dirs[tree][i];
    size_t id_len = d == iso->root ? 1 : tree == TREE_PRIMARY ? d->id_len : d->jid_len;
    size += 8 + id_len + id_len % 2;
  }
  return size;
}

static int collect_dirs(qvm_seed_iso *iso, qvm_error **err) {
  size_t cap = 16;
  for (int t = 0; t < TREE_COUNT; t++) {
    free(iso->dirs[t]);
    if (!(iso->dirs[t] = malloc(cap * sizeof(iso_node *))))
      return qvm_error_set_errno(err, ENOMEM, "cannot lay out iso");
    size_t n = 0;
    iso->dirs[t][n++] = iso->root;
    for (size_t i = 0; i < n; i++) {
      iso_node *d = iso->dirs[t][i];
      if (n + 1 > UINT16_MAX)
        return qvm_error_set(err, QVM_EINVAL, "more than %d directories", UINT16_MAX - 1);
      d->dir_num[t] = (uint16_t)(i + 1);
      for (size_t k = 0; k < d->n_kids; k++) {
        if (!d->kids[t][k]->is_dir) continue;
        if (n == cap) {
          iso_node **p = reallocarray(iso->dirs[t], cap *= 2, sizeof *p);
          if (!p) return qvm_error_set_errno(err, ENOMEM, "cannot lay out iso");
          iso->dirs[t] = p;
        }
        iso->dirs[t][n++] = d->kids[t][k];
      }
    }
    iso->n_dirs = n;
  }
  return 0;
}

static int collect_files(qvm_seed_iso *iso, qvm_error **err) {
  size_t cap = 16, n = 0;
  free(iso->files);
  if (!(iso->files = malloc(cap * sizeof(iso_node *))))
    return qvm_error_set_errno(err, ENOMEM, "cannot lay out iso");
  for (size_t i = 0; i < iso->n_dirs; i++) {
    const iso_node *d = iso->dirs[TREE_PRIMARY][i];
    for (size_t k = 0; k < d->n_kids; k++) {
      if (d->kids[TREE_PRIMARY][k]->is_dir) continue;
      if (n == cap) {
        iso_node **p = reallocarray(iso->files, cap *= 2, sizeof *p);
        if (!p) return qvm_error_set_errno(err, ENOMEM, "cannot lay out iso");
        iso->files = p;
      }
      iso->files[n++] = d->kids[TREE_PRIMARY][k];
    }
  }
  iso->n_files = n;
  return 0;
}

typedef struct ce_cursor {
  qvm_seed_iso *iso;
  uint32_t lba, off;
} ce_cursor;

static void ce_reserve(ce_cursor *c, uint32_t len, uint32_t *lba, uint32_t *off) {
  if (c->off + len > ISO_BLOCK) c->lba++, c->off = 0;
  *lba = c->lba, *off = c->off;
  c->off += len;
}

static int ce_visit(void *ctx, const iso_node *n, enum rec_kind kind, size_t len, uint32_t block,
                    uint32_t off, qvm_error **err) {
  (void)len, (void)block, (void)off, (void)err;
  ce_cursor *c = ctx;
  if (kind != REC_NAMED) return 0;
  su_area su;
  rec_encode(NULL, c->iso, n, TREE_PRIMARY, kind, &su, 0, 0);
  iso_node *w = (iso_node *)n;
  w->ce_len = (uint32_t)su.ce_len;
  if (su.ce_len) ce_reserve(c, w->ce_len, &w->ce_lba, &w->ce_off);
  return 0;
}

/* Reserves the continuation areas of dir's records in the blocks right
 * after its extent: libarchive reads a CE only when it comes next after the
 * directory that refers to it. Returns the first block after them. */
static int64_t reserve_continuations(qvm_seed_iso *iso, iso_node *dir, uint32_t lba,
                                     qvm_error **err) {
  ce_cursor c = {iso, lba, 0};
  if (dir == iso->root) {
    su_area su;
    rec_encode(NULL, iso, iso->root, TREE_PRIMARY, REC_DOT, &su, 0, 0);
    iso->root_ce_len = (uint32_t)su.ce_len;
    ce_reserve(&c, iso->root_ce_len, &iso->root_ce_lba, &iso->root_ce_off);
  }
  int64_t r = dir_walk(iso, dir, TREE_PRIMARY, ce_visit, &c, err);
  if (r < 0) return r;
  return (int64_t)c.lba + (c.off > 0);
}

/* Assigns every extent; returns the volume size in blocks. */
static int64_t layout(qvm_seed_iso *iso, qvm_error **err) {
  int r;
  if ((r = iso_tree_finish(iso, err)) < 0 || (r = collect_dirs(iso, err)) < 0 ||
      (r = collect_files(iso, err)) < 0)
    return r;
  uint64_t next = FIRST_PATH_TABLE_LBA;
  for (int t = 0; t < TREE_COUNT; t++) next += 2 * blocks(path_table_size(iso, t));
  for (int t = 0; t < TREE_COUNT; t++)
    for (size_t i = 0; i < iso->n_dirs; i++) {
      iso_node *d = iso->dirs[t][i];
      int64_t size = dir_walk(iso, d, t, NULL, NULL, err);
      if (size < 0) return size;
      d->dir_lba[t] = (uint32_t)next, d->dir_size[t] = (uint32_t)size;
      next += blocks((uint64_t)size);
      if (t == TREE_PRIMARY) {
        int64_t end = reserve_continuations(iso, d, (uint32_t)next, err);
        if (end < 0) return end;
        next = (uint64_t)end;
      }
    }
  for (size_t i = 0; i < iso->n_files; i++) {
    iso_node *f = iso->files[i];
    f->lba = f->size ? (uint32_t)next : 0;
    next += blocks(f->size);
    if (next > UINT32_MAX) return qvm_error_set(err, QVM_EINVAL, "iso image would be too large");
  }
  return (int64_t)next;
}

/* ---- output: descriptors and path tables ---- */

static void put_a(uint8_t *p, size_t width, const char *s) {
  memset(p, ' ', width);
  memcpy(p, s, strnlen(s, width));
}

static void put_ucs2(uint8_t *p, size_t width, const char *ascii) {
  for (size_t i = 0; i + 1 < width; i += 2) {
    char c = *ascii ? *ascii++ : ' ';
    p[i] = 0, p[i + 1] = (uint8_t)c;
  }
}

static void volume_descriptor(uint8_t *vd, const qvm_seed_iso *iso, int tree,
                              uint32_t volume_blocks, uint32_t pt_lba) {
  memset(vd, 0, ISO_BLOCK);
  vd[0] = tree == TREE_PRIMARY ? 1 : 2;
  memcpy(vd + 1, "CD001", 5);
  vd[6] = 1;
  void (*put)(uint8_t *, size_t, const char *) = tree == TREE_PRIMARY ? put_a : put_ucs2;
  put(vd + 8, 32, "LINUX");
  put(vd + 40, 32, iso->volume_id);
  both32(vd + 80, volume_blocks);
  if (tree == TREE_JOLIET) memcpy(vd + 88, "%/E", 3); /* UCS-2 level 3 */
  both16(vd + 120, 1);
  both16(vd + 124, 1);
  both16(vd + 128, ISO_BLOCK);
  uint32_t pt_size = (uint32_t)path_table_size(iso, tree);
  both32(vd + 132, pt_size);
  le32(vd + 140, pt_lba);
  be32(vd + 148, pt_lba + blocks(pt_size));
  su_area su;
  iso_node *root = iso->root;
  uint8_t rec[256];
  rec_encode(rec, iso, root, tree, REC_DOT, &su, 0, 0);
  memcpy(vd + 156, rec, 33); /* no system use in the descriptor's copy */
  vd[156] = 34;
  vd[156 + 33] = 0;
  put(vd + 190, 128, "");
  put(vd + 318, 128, "");
  put(vd + 446, 128, "");
  put(vd + 574, 128, "QVM");
  put(vd + 702, 37, "");
  put(vd + 739, 37, "");
  put(vd + 776, 37, "");
  vd_date(vd + 813, iso->epoch);
  vd_date(vd + 830, iso->epoch);
  memset(vd + 847, '0', 16); /* never expires */
  vd_date(vd + 864, iso->epoch);
  vd[881] = 1;
}

static int write_path_table(sink *s, const qvm_seed_iso *iso, int tree, bool msb, qvm_error **err) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  for (size_t i = 0; i < iso->n_dirs; i++) {
    const iso_node *d = iso->dirs[tree][i];
    uint8_t e[8 + 2 * ISO_JOLIET_MAX_UNITS + 2] = {0};
    size_t id_len = 1;
    if (d != iso->root) {
      id_len = tree == TREE_PRIMARY ? d->id_len : d->jid_len;
      memcpy(e + 8, tree == TREE_PRIMARY ? (const uint8_t *)d->id : d->jid, id_len);
    }
    e[0] = (uint8_t)id_len;
    uint16_t parent = d->parent ? d->parent->dir_num[tree] : 1;
    (msb ? be32 : le32)(e + 2, d->dir_lba[tree]);
    (msb ? be16 : le16)(e + 6, parent);
    qvm_strbuf_append(&sb, e, 8 + id_len + id_len % 2);
  }
  int r = sb.oom ? qvm_error_set_errno(err, ENOMEM, "cannot write path table")
                 : sink_write(s, sb.buf, sb.len, err);
  qvm_strbuf_free(&sb);
  if (r < 0) return r;
  return sink_pad_to(s, (s->pos + ISO_BLOCK - 1) / ISO_BLOCK * ISO_BLOCK, err);
}

/* ---- output: directories, continuation area, data ---- */

typedef struct dir_out {
  const qvm_seed_iso *iso;
  int tree;
  uint8_t *extent;
} dir_out;

static int dir_out_visit(void *ctx, const iso_node *n, enum rec_kind kind, size_t len,
                         uint32_t block, uint32_t off, qvm_error **err) {
  (void)len, (void)err;
  dir_out *o = ctx;
  uint32_t ce_lba = kind == REC_DOT && n == o->iso->root ? o->iso->root_ce_lba : n->ce_lba;
  uint32_t ce_off = kind == REC_DOT && n == o->iso->root ? o->iso->root_ce_off : n->ce_off;
  su_area su;
  rec_encode(o->extent + block * ISO_BLOCK + off, o->iso, n, o->tree, kind, &su, ce_lba, ce_off);
  return 0;
}

static int write_ce_entry(sink *s, const qvm_seed_iso *iso, const iso_node *n, enum rec_kind kind,
                          uint32_t lba, uint32_t off, qvm_error **err) {
  su_area su;
  rec_encode(NULL, iso, n, TREE_PRIMARY, kind, &su, 0, 0);
  if (!su.ce_len) return 0;
  int r = sink_pad_to(s, (uint64_t)lba * ISO_BLOCK + off, err);
  return r < 0 ? r : sink_write(s, su.ce, su.ce_len, err);
}

/* The continuation areas of dir's records, in the order layout() reserved
 * them. */
static int write_continuations(sink *s, const qvm_seed_iso *iso, const iso_node *dir,
                               qvm_error **err) {
  int r = 0;
  if (dir == iso->root)
    r = write_ce_entry(s, iso, iso->root, REC_DOT, iso->root_ce_lba, iso->root_ce_off, err);
  for (size_t k = 0; r >= 0 && k < dir->n_kids; k++) {
    const iso_node *n = dir->kids[TREE_PRIMARY][k];
    if (n->ce_len) r = write_ce_entry(s, iso, n, REC_NAMED, n->ce_lba, n->ce_off, err);
  }
  return r < 0 ? r : sink_pad_to(s, (s->pos + ISO_BLOCK - 1) / ISO_BLOCK * ISO_BLOCK, err);
}

static int write_dirs(sink *s, const qvm_seed_iso *iso, int tree, qvm_error **err) {
  for (size_t i = 0; i < iso->n_dirs; i++) {
    const iso_node *d = iso->dirs[tree][i];
    _cleanup_free_ uint8_t *extent = calloc(1, d->dir_size[tree]);
    if (!extent) return qvm_error_set_errno(err, ENOMEM, "cannot write directory");
    dir_out o = {iso, tree, extent};
    int64_t r = dir_walk(iso, d, tree, dir_out_visit, &o, err);
    if (r < 0) return (int)r;
    int w = sink_write(s, extent, d->dir_size[tree], err);
    if (w >= 0 && tree == TREE_PRIMARY) w = write_continuations(s, iso, d, err);
    if (w < 0) return w;
  }
  return 0;
}

static int stream_file(sink *s, const iso_node *f, qvm_error **err) {
  _cleanup_close_ int fd = open(f->host_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open '%s'", f->host_path);
  _cleanup_free_ uint8_t *buf = malloc(1u << 20);
  if (!buf) return qvm_error_set_errno(err, ENOMEM, "cannot read '%s'", f->host_path);
  uint64_t done = 0;
  for (;;) {
    ssize_t n = qvm_read_all(fd, buf, 1u << 20);
    if (n < 0) return qvm_error_set_errno(err, (int)-n, "cannot read '%s'", f->host_path);
    if (n == 0) break;
    if (done + (uint64_t)n > f->size) break;
    int r = sink_write(s, buf, (size_t)n, err);
    if (r < 0) return r;
    done += (uint64_t)n;
  }
  if (done != f->size)
    return qvm_error_set(err, QVM_EINVAL, "file '%s' changed size while the image was written",
                         f->host_path);
  return 0;
}

static int write_data(sink *s, const qvm_seed_iso *iso, qvm_error **err) {
  for (size_t i = 0; i < iso->n_files; i++) {
    const iso_node *f = iso->files[i];
    if (!f->size) continue;
    int r = sink_pad_to(s, (uint64_t)f->lba * ISO_BLOCK, err);
    if (r < 0) return r;
    r = f->host_path ? stream_file(s, f, err) : sink_write(s, f->data, (size_t)f->size, err);
    if (r < 0) return r;
  }
  return 0;
}

static int write_image(sink *s, qvm_seed_iso *iso, qvm_error **err) {
  int64_t total = layout(iso, err);
  if (total < 0) return (int)total;
  uint8_t vd[ISO_BLOCK];
  uint32_t pt_lba[TREE_COUNT];
  pt_lba[TREE_PRIMARY] = FIRST_PATH_TABLE_LBA;
  pt_lba[TREE_JOLIET] = FIRST_PATH_TABLE_LBA + 2 * blocks(path_table_size(iso, TREE_PRIMARY));
  int r = sink_pad_to(s, SYSTEM_AREA_BLOCKS * ISO_BLOCK, err);
  for (int t = 0; r >= 0 && t < TREE_COUNT; t++) {
    volume_descriptor(vd, iso, t, (uint32_t)total, pt_lba[t]);
    r = sink_write(s, vd, sizeof vd, err);
  }
  if (r < 0) return r;
  memset(vd, 0, sizeof vd);
  vd[0] = 255;
  memcpy(vd + 1, "CD001", 5);
  vd[6] = 1;
  if ((r = sink_write(s, vd, sizeof vd, err)) < 0) return r;
  for (int t = 0; r >= 0 && t < TREE_COUNT; t++) {
    r = write_path_table(s, iso, t, false, err);
    if (r >= 0) r = write_path_table(s, iso, t, true, err);
  }
  for (int t = 0; r >= 0 && t < TREE_COUNT; t++) r = write_dirs(s, iso, t, err);
  if (r >= 0) r = write_data(s, iso, err);
  if (r >= 0) r = sink_pad_to(s, (uint64_t)total * ISO_BLOCK, err);
  return r;
}

int qvm_seed_iso_write_fd(qvm_seed_iso *iso, int fd, qvm_error **err) {
  sink s = {.fd = fd};
  return write_image(&s, iso, err);
}

int qvm_seed_iso_write_buffer(uint8_t **out, size_t *out_len, qvm_seed_iso *iso, qvm_error **err) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  sink s = {.fd = -1, .sb = &sb};
  int r = write_image(&s, iso, err);
  if (r < 0) {
    qvm_strbuf_free(&sb);
    return r;
  }
  *out_len = sb.len;
  *out = (uint8_t *)qvm_strbuf_steal(&sb);
  if (!*out) return qvm_error_set_errno(err, ENOMEM, "cannot write iso image");
  return 0;
}
