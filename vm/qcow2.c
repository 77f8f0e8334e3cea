/* SPDX-License-Identifier: MIT */
#include "vm/qcow2.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <qvm/text.h>

#include "util/cleanup.h"

#define QCOW2_V2_HEADER 72u
#define QCOW2_V3_HEADER 104u
#define EXT_END 0x00000000u
#define EXT_BACKING_FORMAT 0xe2792acau
#define EXT_DATA_FILE 0x44415441u
/* dirty, corrupt, external data file, compression type, extended L2 */
#define INCOMPAT_DATA_FILE (1u << 2)
#define INCOMPAT_KNOWN 0x1full

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

bool vm_qcow2_magic(const uint8_t *buf, size_t len) {
  return len >= 4 && !memcmp(buf, "QFI\xfb", 4);
}

/* A name from the header into dst (cap bytes with its NUL). */
static int copy_name(char *dst, size_t cap, const uint8_t *src, size_t n, const char *what,
                     qvm_error **err) {
  if (n >= cap) return qvm_error_set(err, QVM_EINVAL, "qcow2 %s name is too long", what);
  if (memchr(src, '\0', n)) return qvm_error_set(err, QVM_EINVAL, "qcow2 %s name has a nul", what);
  memcpy(dst, src, n);
  dst[n] = '\0';
  return 0;
}

/* The header extensions between `at` and `end`: QEMU reads them up to the
 * backing file's name (or the end of the first cluster), and running into
 * that end without an end marker is fine for it. `complete`: end is where
 * QEMU stops too (not merely where qvm's read stopped). */
static int parse_extensions(vm_qcow2_header *h, const uint8_t *buf, size_t at, size_t end,
                            bool complete, qvm_error **err) {
  while (at < end) {
    if (end - at < 8)
      return qvm_error_set(err, QVM_EINVAL, "qcow2 header extension at %zu is truncated", at);
    uint32_t type = be32(buf + at), n = be32(buf + at + 4);
    at += 8;
    if (n > end - at)
      return qvm_error_set(err, QVM_EINVAL, "qcow2 header extension 0x%08x runs out of range",
                           type);
    if (type == EXT_END) return 0;
    int r = 0;
    if (type == EXT_BACKING_FORMAT) {
      h->has_backing_format = true;
      r = copy_name(h->backing_format, sizeof h->backing_format, buf + at, n, "backing format",
                    err);
    } else if (type == EXT_DATA_FILE) {
      h->has_data_file = true;
      r = copy_name(h->data_file, sizeof h->data_file, buf + at, n, "data file", err);
    }
    if (r < 0) return r;
    size_t padded = ((size_t)n + 7) & ~(size_t)7;
    at += padded < end - at ? padded : end - at;
  }
  if (complete) return 0;
  /* No end marker in range: QEMU would go on reading what qvm did not. */
  return qvm_error_set(err, QVM_EINVAL,
                       "qcow2 header extensions have no end in the first %zu bytes", end);
}

static int parse_fixed(vm_qcow2_header *h, size_t *hdr_len, const uint8_t *buf, size_t len,
                       qvm_error **err) {
  if (!vm_qcow2_magic(buf, len)) return qvm_error_set(err, QVM_EINVAL, "not a qcow2 image");
  if (len < QCOW2_V2_HEADER) return qvm_error_set(err, QVM_EINVAL, "qcow2 header is truncated");
  h->version = be32(buf + 4);
  h->cluster_bits = be32(buf + 20);
  h->size = be64(buf + 24);
  if (h->version != 2 && h->version != 3)
    return qvm_error_set(err, QVM_EINVAL, "qcow2 version %u is unknown", h->version);
  if (h->cluster_bits < 9 || h->cluster_bits > 21)
    return qvm_error_set(err, QVM_EINVAL, "qcow2 cluster bits %u are out of range",
                         h->cluster_bits);
  *hdr_len = QCOW2_V2_HEADER;
  if (h->version == 2) return 0;
  if (len < QCOW2_V3_HEADER) return qvm_error_set(err, QVM_EINVAL, "qcow2 header is truncated");
  h->incompatible = be64(buf + 72);
  uint32_t hl = be32(buf + 100);
  if (hl < QCOW2_V3_HEADER || hl % 8 || hl > len || hl > (1u << h->cluster_bits))
    return qvm_error_set(err, QVM_EINVAL, "qcow2 header length %u is out of range", hl);
  if (h->incompatible & ~INCOMPAT_KNOWN)
    return qvm_error_set(err, QVM_EINVAL, "qcow2 incompatible features 0x%llx are unknown",
                         (unsigned long long)(h->incompatible & ~INCOMPAT_KNOWN));
  h->has_data_file = h->incompatible & INCOMPAT_DATA_FILE;
  *hdr_len = hl;
  return 0;
}

int vm_qcow2_parse(vm_qcow2_header *out, const uint8_t *buf, size_t len, qvm_error **err) {
  vm_qcow2_header *h = calloc(1, sizeof *h);
  if (!h) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  size_t hdr_len = 0;
  int r = parse_fixed(h, &hdr_len, buf, len, err);
  uint64_t cluster = (uint64_t)1 << (r < 0 ? 9 : h->cluster_bits);
  uint64_t boff = r < 0 ? 0 : be64(buf + 8);
  uint32_t bsize = r < 0 ? 0 : be32(buf + 16);
  size_t limit = len < cluster ? len : (size_t)cluster;
  if (r >= 0 && boff && (boff < hdr_len || boff > limit || bsize > limit - boff))
    r = qvm_error_set(err, QVM_EINVAL,
                      "qcow2 backing file name (offset %llu, %u bytes) is out of "
                      "range",
                      (unsigned long long)boff, bsize);
  if (r >= 0)
    r = parse_extensions(h, buf, hdr_len, boff ? (size_t)boff : limit, boff || len >= cluster, err);
  if (r >= 0 && boff && bsize) {
    h->has_backing = true;
    r = copy_name(h->backing, sizeof h->backing, buf + boff, bsize, "backing file", err);
  }
  if (r >= 0) *out = *h;
  free(h);
  return r;
}

static char *shown(const char *s) { return qvm_text_for_terminal(s, strlen(s), 0); }

static int refuse_data_file(const vm_qcow2_header *h, const char *path, const vm_qcow2_policy *p,
                            qvm_error **err) {
  _cleanup_free_ char *name = shown(h->data_file[0] ? h->data_file : "(none named)");
  return qvm_error_set(err, QVM_EINVAL,
                       "%s '%s': its qcow2 header names an external data file '%s', which qemu "
                       "would open for the guest; qvm never starts qemu on such a header%s",
                       p->what, path, name ? name : "?", p->why ? p->why : "");
}

static int refuse_backing(const vm_qcow2_header *h, const char *path, const vm_qcow2_policy *p,
                          qvm_error **err) {
  _cleanup_free_ char *name = shown(h->has_backing ? h->backing : "(none)");
  _cleanup_free_ char *fmt = shown(h->has_backing_format ? h->backing_format : "(none)");
  if (!p->backing)
    return qvm_error_set(err, QVM_EINVAL,
                         "%s '%s': its qcow2 header names a backing file '%s' (format %s), "
                         "which qemu would open for the guest%s",
                         p->what, path, name ? name : "?", fmt ? fmt : "?", p->why ? p->why : "");
  return qvm_error_set(err, QVM_EINVAL,
                       "%s '%s': its qcow2 header names the backing file '%s' (format %s), not "
                       "the vm's image '%s' (format %s)%s",
                       p->what, path, name ? name : "?", fmt ? fmt : "?", p->backing,
                       p->backing_format ? p->backing_format : "?", p->why ? p->why : "");
}

int vm_qcow2_check(const vm_qcow2_header *h, const char *path, const vm_qcow2_policy *p,
                   qvm_error **err) {
  if (h->has_data_file) return refuse_data_file(h, path, p, err);
  if (p->backing) {
    bool same = h->has_backing && !strcmp(h->backing, p->backing) && h->has_backing_format &&
                p->backing_format && !strcmp(h->backing_format, p->backing_format);
    return same ? 0 : refuse_backing(h, path, p, err);
  }
  if (h->has_backing && !p->allow_backing) return refuse_backing(h, path, p, err);
  return 0;
}

int vm_qcow2_read_fd(vm_qcow2_header *out, int fd, const char *path, qvm_error **err) {
  struct stat st;
  if (fstat(fd, &st) < 0) return qvm_error_set_errno(err, errno, "cannot stat '%s'", path);
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
    return qvm_error_set(err, QVM_EINVAL, "'%s' is not a file or a block device", path);
  _cleanup_free_ uint8_t *buf = malloc(VM_QCOW2_HEAD);
  if (!buf) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  size_t len = 0;
  while (len < VM_QCOW2_HEAD) {
    ssize_t n = pread(fd, buf + len, VM_QCOW2_HEAD - len, (off_t)len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return qvm_error_set_errno(err, errno, "cannot read '%s'", path);
    if (n == 0) break;
    len += (size_t)n;
  }
  int r = vm_qcow2_parse(out, buf, len, err);
  if (r < 0) qvm_error_prefix(err, "'%s'", path);
  return r;
}

int vm_qcow2_check_file(const char *path, const vm_qcow2_policy *policy, qvm_error **err) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open %s '%s'", policy->what, path);
  vm_qcow2_header *h = calloc(1, sizeof *h);
  if (!h) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  int r = vm_qcow2_read_fd(h, fd, path, err);
  if (r < 0) qvm_error_prefix(err, "%s", policy->what);
  if (r >= 0) r = vm_qcow2_check(h, path, policy, err);
  free(h);
  return r;
}
