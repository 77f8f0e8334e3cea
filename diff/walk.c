/* SPDX-License-Identifier: MIT */
#include "diff/walk.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

#include <openssl/evp.h>

#include "image/hash.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/strbuf.h"

/* ino -> index+1 in a table of hashes, or a visited mark (open addressing). */
typedef struct ino_map {
  uint32_t *keys;
  uint32_t *vals;
  size_t cap, n;
} ino_map;

typedef struct hash_val {
  uint8_t sha[32];
  bool unhashable;
} hash_val;

struct diff_fs {
  ext2_filsys fs;
  diff_disk *disk;
  uint64_t part_off, part_size;
  ino_map hashes; /* ino -> index in hv + 1 */
  hash_val *hv;
  size_t n_hv, cap_hv;
  uint64_t bytes_hashed;
  uint8_t *buf; /* HASH_BUF bytes, for every file */
};

#define HASH_BUF (1u << 20)

static int oom(qvm_error **err) { return qvm_error_set_errno(err, ENOMEM, "out of memory"); }

static bool map_grow(ino_map *m) {
  size_t cap = m->cap ? m->cap * 2 : 1024;
  uint32_t *k = calloc(cap, sizeof *k), *v = calloc(cap, sizeof *v);
  if (!k || !v) {
    free(k);
    free(v);
    return false;
  }
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->keys[i]) continue;
    size_t j = (m->keys[i] * 2654435761u) & (cap - 1);
    while (k[j]) j = (j + 1) & (cap - 1);
    k[j] = m->keys[i];
    v[j] = m->vals[i];
  }
  free(m->keys);
  free(m->vals);
  m->keys = k, m->vals = v, m->cap = cap;
  return true;
}

/* The slot of ino (its key 0 if absent). NULL: out of memory. */
static uint32_t *map_slot(ino_map *m, uint32_t ino, bool insert) {
  if (insert && (m->n + 1) * 2 > m->cap && !map_grow(m)) return NULL;
  if (!m->cap) return NULL;
  size_t j = (ino * 2654435761u) & (m->cap - 1);
  while (m->keys[j] && m->keys[j] != ino) j = (j + 1) & (m->cap - 1);
  if (insert && !m->keys[j]) {
    m->keys[j] = ino;
    m->n++;
  }
  return &m->vals[j];
}

static bool map_has(const ino_map *m, uint32_t ino) {
  if (!m->cap) return false;
  size_t j = (ino * 2654435761u) & (m->cap - 1);
  while (m->keys[j] && m->keys[j] != ino) j = (j + 1) & (m->cap - 1);
  return m->keys[j] == ino;
}

static void map_free(ino_map *m) {
  free(m->keys);
  free(m->vals);
  *m = (ino_map){0};
}

/* libext2fs opens a device by name: ours is the diff_disk set just before
 * ext2fs_open2() in this thread. */
static __thread diff_fs *opening;

typedef struct chan_data {
  diff_fs *fs;
} chan_data;

static struct struct_io_manager nbd_io_manager;

static errcode_t chan_open(const char *name, int flags, io_channel *out) {
  if (!opening || (flags & IO_FLAG_RW)) return EXT2_ET_BAD_DEVICE_NAME;
  io_channel ch = calloc(1, sizeof *ch);
  chan_data *cd = calloc(1, sizeof *cd);
  char *nm = strdup(name);
  if (!ch || !cd || !nm) {
    free(ch), free(cd), free(nm);
    return EXT2_ET_NO_MEMORY;
  }
  cd->fs = opening;
  ch->magic = EXT2_ET_MAGIC_IO_CHANNEL;
  ch->manager = &nbd_io_manager;
  ch->name = nm;
  ch->block_size = 1024;
  ch->refcount = 1;
  ch->private_data = cd;
  *out = ch;
  return 0;
}

static errcode_t chan_close(io_channel ch) {
  if (--ch->refcount > 0) return 0;
  free(ch->private_data);
  free(ch->name);
  free(ch);
  return 0;
}

static errcode_t chan_set_blksize(io_channel ch, int size) {
  if (size <= 0 || size > 65536) return EXT2_ET_INVALID_ARGUMENT;
  ch->block_size = size;
  return 0;
}

static errcode_t chan_read64(io_channel ch, unsigned long long block, int count, void *data) {
  diff_fs *fs = ((chan_data *)ch->private_data)->fs;
  /* count < 0: -count bytes, not blocks */
  uint64_t len =
      count < 0 ? (uint64_t) - (int64_t)count : (uint64_t)count * (uint64_t)ch->block_size;
  uint64_t off = (uint64_t)block * (uint64_t)ch->block_size;
  if (len > (1u << 30) || block > fs->part_size / (uint64_t)ch->block_size || off > fs->part_size ||
      len > fs->part_size - off)
    return EXT2_ET_SHORT_READ;
  if (diff_disk_read(fs->disk, data, (uint32_t)len, fs->part_off + off) < 0)
    return EXT2_ET_SHORT_READ;
  return 0;
}

static errcode_t chan_read(io_channel ch, unsigned long block, int count, void *data) {
  return chan_read64(ch, block, count, data);
}

static errcode_t chan_write(io_channel ch, unsigned long block, int count, const void *data) {
  (void)ch, (void)block, (void)count, (void)data;
  return EXT2_ET_RO_FILSYS;
}
static errcode_t chan_write64(io_channel ch, unsigned long long block, int count,
                              const void *data) {
  (void)ch, (void)block, (void)count, (void)data;
  return EXT2_ET_RO_FILSYS;
}
static errcode_t chan_flush(io_channel ch) {
  (void)ch;
  return 0;
}
static errcode_t chan_set_option(io_channel ch, const char *opt, const char *arg) {
  (void)ch, (void)opt, (void)arg;
  return EXT2_ET_INVALID_ARGUMENT;
}

static struct struct_io_manager nbd_io_manager = {
    .magic = EXT2_ET_MAGIC_IO_MANAGER,
    .name = "qvm nbd",
    .open = chan_open,
    .close = chan_close,
    .set_blksize = chan_set_blksize,
    .read_blk = chan_read,
    .write_blk = chan_write,
    .flush = chan_flush,
    .set_option = chan_set_option,
    .read_blk64 = chan_read64,
    .write_blk64 = chan_write64,
};

int diff_fs_open(diff_fs **out, diff_disk *disk, const diff_part *part, qvm_error **err) {
  diff_fs *fs = calloc(1, sizeof *fs);
  if (!fs) return oom(err);
  fs->disk = disk;
  fs->part_off = part->offset;
  fs->part_size = part->size;
  opening = fs;
  errcode_t e = ext2fs_open2("qvm-diff", NULL, EXT2_FLAG_64BITS, 0, 0, &nbd_io_manager, &fs->fs);
  opening = NULL;
  if (e) {
    free(fs);
    const char *why = diff_disk_error(disk)[0] ? diff_disk_error(disk) : error_message(e);
    return qvm_error_set(err, QVM_EINVAL,
                         "cannot open the ext2/3/4 file system of partition %d: %s", part->index,
                         why);
  }
  *out = fs;
  return 0;
}

void diff_fs_close(diff_fs *fs) {
  if (!fs) return;
  if (fs->fs) ext2fs_close_free(&fs->fs);
  map_free(&fs->hashes);
  free(fs->hv);
  free(fs->buf);
  free(fs);
}

uint64_t diff_fs_bytes_hashed(const diff_fs *fs) { return fs->bytes_hashed; }

bool diff_fs_journal_pending(const diff_fs *fs) {
  return fs->fs && ext2fs_has_feature_journal_needs_recovery(fs->fs->super);
}

bool diff_ignored(const char *path, const char *const *globs, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (globs[i] && fnmatch(globs[i], path, FNM_PATHNAME) == 0) return true;
  return false;
}

void diff_tree_clear(diff_tree *t) {
  for (size_t i = 0; i < t->n; i++) {
    free(t->e[i].path);
    free(t->e[i].target);
  }
  free(t->e);
  *t = (diff_tree){0};
}

typedef struct walk {
  diff_fs *fs;
  diff_tree *t;
  const char *const *globs;
  size_t n_globs;
  ino_map dirs; /* directories entered: a second visit is a loop */
  qvm_error **err;
} walk;

static int fs_error(walk *w, errcode_t e, const char *what, const char *path) {
  const char *why =
      diff_disk_error(w->fs->disk)[0] ? diff_disk_error(w->fs->disk) : error_message(e);
  return qvm_error_set(w->err, QVM_EINVAL, "cannot %s '%s': %s (is the file system corrupt?)", what,
                       path, why);
}

static char type_of(uint16_t mode) {
  switch (mode & LINUX_S_IFMT) {
  case LINUX_S_IFREG: return 'f';
  case LINUX_S_IFDIR: return 'd';
  case LINUX_S_IFLNK: return 'l';
  case LINUX_S_IFCHR: return 'c';
  case LINUX_S_IFBLK: return 'b';
  case LINUX_S_IFIFO: return 'p';
  case LINUX_S_IFSOCK: return 's';
  default: return '?';
  }
}

static int read_target(walk *w, diff_entry *e, struct ext2_inode_large *in) {
  uint64_t size = EXT2_I_SIZE((struct ext2_inode *)in);
  if (size == 0 || size > DIFF_MAX_TARGET)
    return qvm_error_set(w->err, QVM_EINVAL, "symlink '%s' has a target of %llu bytes (1 to %d)",
                         e->path, (unsigned long long)size, DIFF_MAX_TARGET);
  e->target = malloc(size + 1);
  if (!e->target) return oom(w->err);
  if (!(in->i_flags & EXT4_INLINE_DATA_FL) && ext2fs_is_fast_symlink((struct ext2_inode *)in)) {
    if (size >= sizeof in->i_block)
      return fs_error(w, EXT2_ET_INVALID_ARGUMENT, "read symlink", e->path);
    memcpy(e->target, in->i_block, size);
  } else {
    ext2_file_t f = NULL;
    unsigned int got = 0;
    errcode_t x = ext2fs_file_open2(w->fs->fs, e->ino, (struct ext2_inode *)in, 0, &f);
    if (!x) x = ext2fs_file_read(f, e->target, (unsigned)size, &got);
    if (f) ext2fs_file_close(f);
    if (x || got != size) return fs_error(w, x ? x : EXT2_ET_SHORT_READ, "read symlink", e->path);
  }
  e->target[size] = '\0';
  e->target_len = (uint32_t)size;
  return 0;
}

static int add_entry(walk *w, const char *path, size_t len, uint32_t ino, diff_entry **out) {
  diff_tree *t = w->t;
  if (t->n >= DIFF_MAX_ENTRIES)
    return qvm_error_set(w->err, QVM_EINVAL, "the file system has more than %u entries",
                         DIFF_MAX_ENTRIES);
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 4096;
    diff_entry *e = realloc(t->e, cap * sizeof *e);
    if (!e) return oom(w->err);
    t->e = e, t->cap = cap;
  }
  struct ext2_inode_large in;
  memset(&in, 0, sizeof in);
  errcode_t x = ext2fs_read_inode_full(w->fs->fs, ino, (struct ext2_inode *)&in, sizeof in);
  if (x) return fs_error(w, x, "read the inode of", path);
  diff_entry *e = &t->e[t->n];
  *e = (diff_entry){.path = qvm_strndup(path, len), .path_len = (uint32_t)len, .ino = ino};
  if (!e->path) return oom(w->err);
  t->n++;
  e->type = type_of(in.i_mode);
  e->mode = in.i_mode & 07777;
  e->uid = inode_uid(in);
  e->gid = inode_gid(in);
  e->size = EXT2_I_SIZE((struct ext2_inode *)&in);
  if (e->type == 'c' || e->type == 'b') e->rdev = in.i_block[0] ? in.i_block[0] : in.i_block[1];
  if (e->type == 'l') {
    int r = read_target(w, e, &in);
    if (r < 0) return r;
  }
  *out = e;
  return 0;
}

typedef struct child {
  char *name;
  uint32_t len, ino;
} child;

typedef struct children {
  child *c;
  size_t n, cap;
  bool bad_name, oom, too_many;
} children;

static int collect(ext2_ino_t dir, int entry, struct ext2_dir_entry *de, int offset, int blocksize,
                   char *buf, void *priv) {
  (void)dir, (void)entry, (void)offset, (void)blocksize, (void)buf;
  children *cs = priv;
  unsigned len = ext2fs_dirent_name_len(de);
  const char *name = de->name;
  if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.')) return 0;
  if (!len || memchr(name, '/', len) || memchr(name, '\0', len)) {
    cs->bad_name = true;
    return DIRENT_ABORT;
  }
  if (cs->n >= DIFF_MAX_ENTRIES) {
    cs->too_many = true;
    return DIRENT_ABORT;
  }
  if (cs->n == cs->cap) {
    size_t cap = cs->cap ? cs->cap * 2 : 64;
    child *c = realloc(cs->c, cap * sizeof *c);
    if (!c) {
      cs->oom = true;
      return DIRENT_ABORT;
    }
    cs->c = c, cs->cap = cap;
  }
  char *copy = qvm_strndup(name, len);
  if (!copy) {
    cs->oom = true;
    return DIRENT_ABORT;
  }
  cs->c[cs->n++] = (child){.name = copy, .len = len, .ino = de->inode};
  return 0;
}

static void children_free(children *cs) {
  for (size_t i = 0; i < cs->n; i++) free(cs->c[i].name);
  free(cs->c);
}

static int walk_dir(walk *w, uint32_t ino, char *path, size_t len, int depth);

static int walk_child(walk *w, const child *c, char *path, size_t len, int depth) {
  size_t at = len == 1 ? 0 : len; /* "/" + name, not "//name" */
  if (at + 1 + c->len >= DIFF_MAX_PATH) {
    path[len] = '\0';
    return qvm_error_set(w->err, QVM_EINVAL, "a path in '%s' is longer than %d bytes", path,
                         DIFF_MAX_PATH);
  }
  path[at] = '/';
  memcpy(path + at + 1, c->name, c->len);
  size_t n = at + 1 + c->len;
  path[n] = '\0';
  if (diff_ignored(path, w->globs, w->n_globs)) return 0;
  if (!c->ino || c->ino > w->fs->fs->super->s_inodes_count)
    return qvm_error_set(w->err, QVM_EINVAL, "'%s' names inode %u, which does not exist", path,
                         c->ino);
  diff_entry *e = NULL;
  int r = add_entry(w, path, n, c->ino, &e);
  if (r < 0 || e->type != 'd') return r;
  return walk_dir(w, c->ino, path, n, depth + 1);
}

static int walk_dir(walk *w, uint32_t ino, char *path, size_t len, int depth) {
  if (depth > DIFF_MAX_DEPTH)
    return qvm_error_set(w->err, QVM_EINVAL, "'%s' is nested deeper than %d directories", path,
                         DIFF_MAX_DEPTH);
  if (map_has(&w->dirs, ino))
    return qvm_error_set(w->err, QVM_EINVAL,
                         "directory loop: '%s' is directory inode %u, seen before on the walk "
                         "(the file system is corrupt)",
                         path, ino);
  uint32_t *slot = map_slot(&w->dirs, ino, true);
  if (!slot) return oom(w->err);
  children cs = {0};
  errcode_t x = ext2fs_dir_iterate2(w->fs->fs, ino, 0, NULL, collect, &cs);
  int r = 0;
  if (cs.oom)
    r = oom(w->err);
  else if (cs.too_many)
    r = qvm_error_set(w->err, QVM_EINVAL, "directory '%s' has more than %u entries", path,
                      DIFF_MAX_ENTRIES);
  else if (cs.bad_name)
    r = qvm_error_set(w->err, QVM_EINVAL, "a name in directory '%s' holds '/' or NUL (corrupt)",
                      path);
  else if (x)
    r = fs_error(w, x, "read directory", path);
  for (size_t i = 0; r >= 0 && i < cs.n; i++) r = walk_child(w, &cs.c[i], path, len, depth);
  path[len] = '\0';
  children_free(&cs);
  return r;
}

static int by_path(const void *a, const void *b) {
  const diff_entry *x = a, *y = b;
  size_t n = x->path_len < y->path_len ? x->path_len : y->path_len;
  int c = memcmp(x->path, y->path, n);
  return c ? c : (x->path_len > y->path_len) - (x->path_len < y->path_len);
}

int diff_fs_walk(diff_tree *out, diff_fs *fs, const char *const *globs, size_t n_globs,
                 qvm_error **err) {
  diff_tree t = {0};
  walk w = {.fs = fs, .t = &t, .globs = globs, .n_globs = n_globs, .err = err};
  _cleanup_free_ char *path = malloc(DIFF_MAX_PATH + 1);
  if (!path) return oom(err);
  strcpy(path, "/");
  diff_entry *root = NULL;
  int r = add_entry(&w, "/", 1, EXT2_ROOT_INO, &root);
  if (r >= 0 && root->type != 'd')
    r = qvm_error_set(err, QVM_EINVAL, "the root inode is not a directory (corrupt)");
  if (r >= 0) r = walk_dir(&w, EXT2_ROOT_INO, path, 1, 0);
  map_free(&w.dirs);
  if (r < 0) {
    diff_tree_clear(&t);
    return r;
  }
  qsort(t.e, t.n, sizeof *t.e, by_path);
  for (size_t i = 1; i < t.n; i++)
    if (!by_path(&t.e[i - 1], &t.e[i])) {
      r = qvm_error_set(err, QVM_EINVAL, "'%s' is in its directory twice (corrupt)", t.e[i].path);
      diff_tree_clear(&t);
      return r;
    }
  *out = t;
  return 0;
}

static int hash_inode(diff_fs *fs, diff_entry *e, hash_val *hv, qvm_error **err) {
  if (e->size > fs->part_size) { /* sparse: hashing its holes could take hours */
    hv->unhashable = true;
    return 0;
  }
  ext2_file_t f = NULL;
  errcode_t x = ext2fs_file_open(fs->fs, e->ino, 0, &f);
  if (x) return qvm_error_set(err, QVM_EINVAL, "cannot open '%s': %s", e->path, error_message(x));
  if (!fs->buf && !(fs->buf = malloc(HASH_BUF))) {
    ext2fs_file_close(f);
    return oom(err);
  }
  uint8_t *buf = fs->buf;
  img_hash h = {0};
  if (!img_hash_begin(&h, false)) {
    ext2fs_file_close(f);
    img_hash_free(&h);
    return oom(err);
  }
  uint64_t left = e->size;
  int r = 0;
  while (left && r >= 0) {
    unsigned int want = left < HASH_BUF ? (unsigned)left : HASH_BUF, got = 0;
    x = ext2fs_file_read(f, buf, want, &got);
    if (x || got == 0) {
      const char *why = diff_disk_error(fs->disk)[0] ? diff_disk_error(fs->disk)
                        : x                          ? error_message(x)
                                                     : "it ends early";
      r = qvm_error_set(err, QVM_EINVAL, "cannot read '%s': %s", e->path, why);
      break;
    }
    img_hash_update(&h, buf, got);
    left -= got;
    fs->bytes_hashed += got;
  }
  ext2fs_file_close(f);
  if (r >= 0) {
    uint8_t md[IMG_HASH_MAX];
    img_hash_final(&h, md);
    memcpy(hv->sha, md, 32);
  }
  img_hash_free(&h);
  return r;
}

int diff_fs_hash(diff_fs *fs, diff_entry *e, qvm_error **err) {
  if (e->type != 'f' || e->hashed || e->unhashable) return 0;
  uint32_t *slot = map_slot(&fs->hashes, e->ino, true);
  if (!slot) return oom(err);
  if (!*slot) {
    if (fs->n_hv == fs->cap_hv) {
      size_t cap = fs->cap_hv ? fs->cap_hv * 2 : 256;
      hash_val *v = realloc(fs->hv, cap * sizeof *v);
      if (!v) return oom(err);
      fs->hv = v, fs->cap_hv = cap;
    }
    hash_val hv = {0};
    int r = hash_inode(fs, e, &hv, err);
    if (r < 0) return r;
    fs->hv[fs->n_hv++] = hv;
    slot = map_slot(&fs->hashes, e->ino, false);
    *slot = (uint32_t)fs->n_hv;
  }
  const hash_val *hv = &fs->hv[*slot - 1];
  e->unhashable = hv->unhashable;
  e->hashed = !hv->unhashable;
  memcpy(e->sha, hv->sha, 32);
  return 0;
}

int diff_fs_copy(diff_fs *fs, const diff_entry *e, int fd, uint64_t max, const char *cap_what,
                 uint8_t sha[32], uint8_t md5[16], qvm_error **err) {
  if (e->type != 'f') return qvm_error_set(err, QVM_EINVAL, "'%s' is not a regular file", e->path);
  if (e->size > max || e->size > fs->part_size)
    return qvm_error_set(err, QVM_EINVAL, "'%s' is %llu bytes, over the %s of %llu bytes", e->path,
                         (unsigned long long)e->size, cap_what, (unsigned long long)max);
  ext2_file_t f = NULL;
  errcode_t x = ext2fs_file_open(fs->fs, e->ino, 0, &f);
  if (x) return qvm_error_set(err, QVM_EINVAL, "cannot open '%s': %s", e->path, error_message(x));
  if (!fs->buf && !(fs->buf = malloc(HASH_BUF))) {
    ext2fs_file_close(f);
    return oom(err);
  }
  img_hash h = {0};
  EVP_MD_CTX *m = EVP_MD_CTX_new();
  int r = 0;
  if (!m || !img_hash_begin(&h, false) || !EVP_DigestInit_ex(m, EVP_md5(), NULL)) r = oom(err);
  for (uint64_t left = e->size; left && r >= 0;) {
    unsigned int want = left < HASH_BUF ? (unsigned)left : HASH_BUF, got = 0;
    x = ext2fs_file_read(f, fs->buf, want, &got);
    if (x || got == 0) {
      const char *why = diff_disk_error(fs->disk)[0] ? diff_disk_error(fs->disk)
                        : x                          ? error_message(x)
                                                     : "it ends early";
      r = qvm_error_set(err, QVM_EINVAL, "cannot read '%s': %s", e->path, why);
    } else if (fd >= 0 && qvm_write_all(fd, fs->buf, got) < 0) {
      r = qvm_error_set_errno(err, errno, "cannot write the content of '%s'", e->path);
    } else {
      img_hash_update(&h, fs->buf, got);
      EVP_DigestUpdate(m, fs->buf, got);
      left -= got;
    }
  }
  ext2fs_file_close(f);
  if (r >= 0) {
    uint8_t md[IMG_HASH_MAX];
    img_hash_final(&h, md);
    memcpy(sha, md, 32);
    EVP_DigestFinal_ex(m, md5, NULL);
  }
  img_hash_free(&h);
  EVP_MD_CTX_free(m);
  return r;
}

int diff_fs_read_path(diff_fs *fs, const char *path, size_t max, char **out, size_t *out_len,
                      qvm_error **err) {
  ext2_ino_t ino = 0;
  if (path[0] != '/' || ext2fs_namei(fs->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path + 1, &ino) || !ino)
    return qvm_error_set(err, QVM_ENOTFOUND, "no '%s'", path);
  struct ext2_inode in;
  if (ext2fs_read_inode(fs->fs, ino, &in))
    return qvm_error_set(err, QVM_EINVAL, "cannot read the inode of '%s'", path);
  if (!LINUX_S_ISREG(in.i_mode)) return qvm_error_set(err, QVM_ENOTFOUND, "'%s' is no file", path);
  uint64_t size = EXT2_I_SIZE(&in);
  if (size > max)
    return qvm_error_set(err, QVM_EINVAL, "'%s' is %llu bytes, more than the %zu read", path,
                         (unsigned long long)size, max);
  _cleanup_free_ char *buf = malloc(size + 1);
  if (!buf) return oom(err);
  ext2_file_t f = NULL;
  unsigned int got = 0;
  errcode_t x = ext2fs_file_open(fs->fs, ino, 0, &f);
  if (!x) x = ext2fs_file_read(f, buf, (unsigned)size, &got);
  if (f) ext2fs_file_close(f);
  if (x || got != size)
    return qvm_error_set(err, QVM_EINVAL, "cannot read '%s': %s", path,
                         x ? error_message(x) : "it ends early");
  buf[size] = '\0';
  *out = TAKE_PTR(buf);
  *out_len = size;
  return 0;
}
