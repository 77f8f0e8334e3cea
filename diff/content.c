/* SPDX-License-Identifier: MIT */
/* keep_content: the new content of added and changed files, copied out of
 * the "to" file system into a private directory, once per sha256, bounded
 * by a per-file and a total cap (docs/ARCHITECTURE.md, "Diff"). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "diff/internal.h"
#include "util/cleanup.h"

static int oom(qvm_error **err) { return qvm_error_set_errno(err, ENOMEM, "out of memory"); }

bool diff_change_needs_content(const diff_change *c) {
  return c->to && c->to->type == 'f' &&
         (c->kind == QVM_DIFF_ADDED || (c->what & (QVM_DIFF_CONTENT | QVM_DIFF_TYPE)));
}

void diff_sha_hex(char out[65], const uint8_t sha[32]) {
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    out[2 * i] = hex[sha[i] >> 4];
    out[2 * i + 1] = hex[sha[i] & 15];
  }
  out[64] = '\0';
}

static int by_sha(const void *a, const void *b, void *base) {
  const diff_change *cs = base;
  const diff_change *x = &cs[*(const size_t *)a], *y = &cs[*(const size_t *)b];
  int c = memcmp(x->to->sha, y->to->sha, 32);
  return c ? c
           : (*(const size_t *)a > *(const size_t *)b) - (*(const size_t *)a < *(const size_t *)b);
}

static int make_dir(char **out, qvm_error **err) {
  const char *t = getenv("TMPDIR");
  if (!t || t[0] != '/' || strlen(t) > 1024) t = "/var/tmp";
  _cleanup_free_ char *dir = NULL;
  if (asprintf(&dir, "%s/qvm-diff-content-XXXXXX", t) < 0) return oom(err);
  if (!mkdtemp(dir)) /* mode 0700 */
    return qvm_error_set_errno(err, errno, "cannot create a directory in '%s' for the contents", t);
  *out = TAKE_PTR(dir);
  return 0;
}

/* One content, copied from change c into dfd/<sha>. */
static int keep_one(diff_change *c, diff_fs *fs, int dfd, uint64_t max_file, qvm_error **err) {
  char hex[65], tmp[80];
  diff_sha_hex(hex, c->to->sha);
  snprintf(tmp, sizeof tmp, "%s.part", hex);
  _cleanup_close_ int fd =
      openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot create a content file");
  uint8_t sha[32];
  int r = diff_fs_copy(fs, c->to, fd, max_file, "per-file content cap (content_max_file)", sha,
                       c->md5, err);
  if (r >= 0 && memcmp(sha, c->to->sha, 32))
    r = qvm_error_set(err, QVM_EINVAL, "'%s' read differently twice (is the disk changing?)",
                      c->to->path);
  if (r >= 0 && renameat(dfd, tmp, dfd, hex) < 0)
    r = qvm_error_set_errno(err, errno, "cannot keep the content of '%s'", c->to->path);
  if (r < 0) unlinkat(dfd, tmp, 0);
  return r;
}

static int keep_all(qvm_diff *d, diff_fs *fs, int dfd, size_t *idx, size_t n, uint64_t max_file,
                    uint64_t max_total, qvm_error **err) {
  uint64_t total = 0;
  for (size_t k = 0; k < n; k++) {
    diff_change *c = &d->c[idx[k]];
    if (!c->to->hashed)
      return qvm_error_set(err, QVM_EINVAL, "'%s' is too sparse to copy (%llu bytes)", c->to->path,
                           (unsigned long long)c->to->size);
    if (k && !memcmp(d->c[idx[k - 1]].to->sha, c->to->sha, 32)) { /* the same content */
      memcpy(c->md5, d->c[idx[k - 1]].md5, 16);
      c->kept = c->have_md5 = true;
      continue;
    }
    if (c->to->size > max_total - total)
      return qvm_error_set(err, QVM_EINVAL,
                           "the new contents are more than the total content cap of %llu bytes "
                           "(content_max_total), at '%s'",
                           (unsigned long long)max_total, c->to->path);
    int r = keep_one(c, fs, dfd, max_file, err);
    if (r < 0) return r;
    total += c->to->size;
    c->kept = c->have_md5 = true;
  }
  return 0;
}

int diff_content_keep(qvm_diff *d, diff_fs *fs, uint64_t max_file, uint64_t max_total,
                      qvm_error **err) {
  _cleanup_free_ size_t *idx = calloc(d->n ? d->n : 1, sizeof *idx);
  if (!idx) return oom(err);
  size_t n = 0;
  for (size_t i = 0; i < d->n; i++)
    if (diff_change_needs_content(&d->c[i])) idx[n++] = i;
  if (n) qsort_r(idx, n, sizeof *idx, by_sha, d->c);
  int r = make_dir(&d->content_dir, err);
  if (r < 0) return r;
  _cleanup_close_ int dfd = open(d->content_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) return qvm_error_set_errno(err, errno, "cannot open '%s'", d->content_dir);
  r = keep_all(d, fs, dfd, idx, n, max_file, max_total, err);
  if (r < 0 && err) qvm_error_neutralize(*err); /* it quotes guest file names */
  return r;
}

int diff_conffile_md5s(qvm_diff *d, diff_fs *fs, uint64_t max_file, qvm_error **err) {
  for (size_t i = 0; i < d->n; i++) {
    diff_change *c = &d->c[i];
    /* one over the cap stays unknown (shown as a change), not an error */
    if (c->have_md5 || !diff_change_needs_content(c) || !c->to->hashed || c->to->size > max_file ||
        !diff_system_conffile(&d->sys, c->to->path))
      continue;
    uint8_t sha[32];
    int r = diff_fs_copy(fs, c->to, -1, max_file, "per-file content cap (content_max_file)", sha,
                         c->md5, err);
    if (r >= 0 && memcmp(sha, c->to->sha, 32))
      r = qvm_error_set(err, QVM_EINVAL, "'%s' read differently twice (is the disk changing?)",
                        c->to->path);
    if (r < 0) {
      if (err) qvm_error_neutralize(*err); /* it quotes a guest file name */
      return r;
    }
    c->have_md5 = true;
  }
  return 0;
}

bool diff_change_by_package(const qvm_diff *d, const diff_change *c) {
  if (c->kind == QVM_DIFF_DELETED) return diff_system_apt_removes(&d->sys, c->from->path);
  if (!diff_system_ships(&d->sys, c->to->path)) return false;
  const dpkg_conffile *cf = diff_system_conffile(&d->sys, c->to->path);
  if (!cf || !diff_change_needs_content(c)) return true;
  if (!c->have_md5) return false; /* unknown: shown as a change of its own */
  char hex[33];
  for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", c->md5[i]);
  return !strcmp(hex, cf->md5);
}
