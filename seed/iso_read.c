/* SPDX-License-Identifier: MIT */
/*
 * Reading back a seed image: the regular files in the root of its Joliet
 * tree (the writer's names, exactly), for a caller that rebuilds the image
 * with one file changed (a key added to a stopped VM's seed). Everything is
 * bounded: the image, the root directory, the number of files and each
 * file's extent must lie inside what was read; anything else is an error
 * naming what is wrong, never a read out of bounds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "seed/iso.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fs.h"

#define READ_IMAGE_MAX (32u << 20)
#define READ_DIR_MAX (64u << 10)
#define JOLIET_VD_LBA 17u

static uint32_t get_le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void qvm_seed_files_free(qvm_seed_file *files, size_t n_files) {
  for (size_t i = 0; files && i < n_files; i++) {
    free((char *)files[i].name);
    free((void *)files[i].data);
  }
  free(files);
}

/* A Joliet identifier (UCS-2BE, printable ASCII only) as a C string. */
static int joliet_name(char *out, size_t out_size, const uint8_t *id, size_t len) {
  /* ISO_JOLIET_MAX_UNITS units may be a longer name the writer cut */
  if (!len || len % 2 || len / 2 >= out_size || len / 2 >= ISO_JOLIET_MAX_UNITS) return -1;
  for (size_t i = 0; i < len / 2; i++) {
    if (id[2 * i] || id[2 * i + 1] < 0x21 || id[2 * i + 1] > 0x7e || id[2 * i + 1] == '/')
      return -1;
    out[i] = (char)id[2 * i + 1];
  }
  out[len / 2] = '\0';
  return 0;
}

static int bad(qvm_error **err, const char *path, const char *what) {
  return qvm_error_set(err, QVM_EINVAL, "'%s' is not a seed image qvm can read: %s", path, what);
}

int iso_read_buffer(qvm_seed_file **out, size_t *n_out, const uint8_t *b, size_t len,
                    const char *path, qvm_error **err) {
  *out = NULL, *n_out = 0;
  int r = 0;
  if (len < (JOLIET_VD_LBA + 1) * (size_t)ISO_BLOCK) return bad(err, path, "too short");
  const uint8_t *vd = b + JOLIET_VD_LBA * (size_t)ISO_BLOCK;
  if (vd[0] != 2 || memcmp(vd + 1, "CD001", 5) || vd[88] != '%' || vd[89] != '/')
    return bad(err, path, "no Joliet descriptor");
  const uint8_t *root = vd + 156;
  uint32_t dir_lba = get_le32(root + 2), dir_len = get_le32(root + 10);
  if (dir_len > READ_DIR_MAX || dir_lba > len / ISO_BLOCK ||
      dir_len > len - (size_t)dir_lba * ISO_BLOCK)
    return bad(err, path, "root directory out of bounds");
  qvm_seed_file *files = NULL;
  size_t n = 0, total = 0;
  const uint8_t *dir = b + (size_t)dir_lba * ISO_BLOCK;
  for (size_t off = 0; off < dir_len && r >= 0;) {
    size_t rec_len = dir[off];
    if (!rec_len) { /* records do not cross blocks: skip to the next one */
      off = (off / ISO_BLOCK + 1) * ISO_BLOCK;
      continue;
    }
    if (rec_len < 34 || rec_len > dir_len - off || dir[off + 32] > rec_len - 33) {
      r = bad(err, path, "a malformed directory record");
      break;
    }
    const uint8_t *rec = dir + off;
    off += rec_len;
    uint8_t id_len = rec[32], flags = rec[25];
    if (id_len == 1 && rec[33] <= 1) continue; /* "." and ".." */
    if (flags & 0x02) { /* qvm's seeds have none: a rewrite would lose what is in it */
      r = bad(err, path, "a directory (qvm reads back flat seeds only)");
      break;
    }
    char name[ISO_JOLIET_MAX_UNITS + 1];
    uint32_t lba = get_le32(rec + 2), size = get_le32(rec + 10);
    if (flags & 0x80 || joliet_name(name, sizeof name, rec + 33, id_len) < 0)
      r = bad(err, path, "a file name or extent qvm does not write");
    else if (lba > len / ISO_BLOCK || size > len - (size_t)lba * ISO_BLOCK)
      r = bad(err, path, "a file out of bounds");
    else if (n == QVM_SEED_READ_FILES_MAX)
      r = bad(err, path, "too many files");
    else if ((total += size) > len)
      r = bad(err, path, "files that overlap"); /* else 64 copies of one big extent */
    if (r < 0) break;
    qvm_seed_file *v = reallocarray(files, n + 1, sizeof *v);
    if (!v) {
      r = qvm_error_set_errno(err, ENOMEM, "out of memory");
      break;
    }
    files = v;
    char *data = malloc(size ? size : 1), *name_copy = strdup(name);
    if (!data || !name_copy) {
      free(data), free(name_copy);
      r = qvm_error_set_errno(err, ENOMEM, "out of memory");
      break;
    }
    memcpy(data, b + (size_t)lba * ISO_BLOCK, size);
    files[n++] = (qvm_seed_file){name_copy, data, size};
  }
  if (r < 0) {
    qvm_seed_files_free(files, n);
    return r;
  }
  *out = files, *n_out = n;
  return 0;
}

int qvm_seed_read_iso(qvm_seed_file **out, size_t *n_out, const char *path, qvm_error **err) {
  *out = NULL, *n_out = 0;
  _cleanup_free_ char *img = NULL;
  size_t len = 0;
  int r = qvm_read_file(&img, &len, path, READ_IMAGE_MAX, err);
  if (r < 0) return r;
  return iso_read_buffer(out, n_out, (const uint8_t *)img, len, path, err);
}
