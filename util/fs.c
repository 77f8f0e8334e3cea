/* SPDX-License-Identifier: MIT */
#include "util/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"

ssize_t qvm_write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, p + done, len - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    done += (size_t)n;
  }
  return (ssize_t)done;
}

ssize_t qvm_read_all(int fd, void *buf, size_t len) {
  char *p = buf;
  size_t done = 0;
  while (done < len) {
    ssize_t n = read(fd, p + done, len - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) break;
    done += (size_t)n;
  }
  return (ssize_t)done;
}

static int fsync_parent(const char *path) {
  _cleanup_free_ char *copy = strdup(path);
  if (!copy) return -ENOMEM;
  _cleanup_close_ int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return -errno;
  return fsync(dfd) < 0 ? -errno : 0;
}

int qvm_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                          qvm_error **err) {
  _cleanup_free_ char *tmp = NULL;
  if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0)
    return qvm_error_set_errno(err, ENOMEM, "cannot write '%s'", path);
  int fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot create temp file for '%s'", path);
  int r = 0;
  const char *what = NULL;
  if (fchmod(fd, mode) < 0) {
    r = -errno;
    what = "chmod";
  } else if ((r = (int)qvm_write_all(fd, data, len)) < 0) {
    what = "write";
  } else if (fsync(fd) < 0) {
    r = -errno;
    what = "fsync";
  }
  if (close(fd) < 0 && !what) {
    r = -errno;
    what = "close";
  }
  if (!what && rename(tmp, path) < 0) {
    r = -errno;
    what = "rename";
  }
  if (what) {
    unlink(tmp);
    return qvm_error_set_errno(err, -r, "cannot write '%s' (%s)", path, what);
  }
  r = fsync_parent(path);
  if (r < 0) return qvm_error_set_errno(err, -r, "cannot sync directory of '%s'", path);
  return 0;
}

int qvm_read_file(char **out, size_t *out_len, const char *path, size_t max, qvm_error **err) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    if (errno == ENOENT) return qvm_error_set(err, QVM_ENOTFOUND, "file '%s' not found", path);
    return qvm_error_set_errno(err, errno, "cannot open '%s'", path);
  }
  struct stat st;
  if (fstat(fd, &st) < 0) return qvm_error_set_errno(err, errno, "cannot stat '%s'", path);
  if (S_ISDIR(st.st_mode)) return qvm_error_set(err, QVM_EINVAL, "'%s' is a directory", path);
  size_t cap = 4096, len = 0;
  _cleanup_free_ char *buf = malloc(cap + 1);
  if (!buf) return qvm_error_set_errno(err, ENOMEM, "cannot read '%s'", path);
  for (;;) {
    if (len == cap) {
      if (cap >= max + 1) break;
      size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
      char *p = realloc(buf, ncap + 1);
      if (!p) return qvm_error_set_errno(err, ENOMEM, "cannot read '%s'", path);
      buf = p;
      cap = ncap;
    }
    ssize_t n = read(fd, buf + len, cap - len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return qvm_error_set_errno(err, errno, "cannot read '%s'", path);
    }
    if (n == 0) break;
    len += (size_t)n;
  }
  if (len > max)
    return qvm_error_set(err, QVM_EINVAL, "file '%s' is larger than %zu bytes", path, max);
  buf[len] = '\0';
  if (out_len) *out_len = len;
  *out = TAKE_PTR(buf);
  return 0;
}

int qvm_mkdir_p(const char *path, mode_t mode, qvm_error **err) {
  _cleanup_free_ char *p = strdup(path);
  if (!p) return qvm_error_set_errno(err, ENOMEM, "cannot create '%s'", path);
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s != '\0') continue;
    char saved = *s;
    *s = '\0';
    if (mkdir(p, mode) < 0 && errno != EEXIST)
      return qvm_error_set_errno(err, errno, "cannot create directory '%s'", p);
    *s = saved;
    if (!saved) break;
  }
  struct stat st;
  if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
    return qvm_error_set(err, QVM_EINVAL, "'%s' exists and is not a directory", path);
  return 0;
}

static int rm_one(const char *fpath, const struct stat *sb, int typeflag, struct FTW *ftw) {
  (void)sb;
  (void)ftw;
  int r = typeflag == FTW_DP ? rmdir(fpath) : unlink(fpath);
  return r < 0 && errno != ENOENT ? -1 : 0;
}

int qvm_rm_rf(const char *path, qvm_error **err) {
  if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 && errno != ENOENT)
    return qvm_error_set_errno(err, errno, "cannot remove '%s'", path);
  return 0;
}

int qvm_fd_set_nonblock(int fd, bool on) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return -errno;
  fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
  return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

int qvm_fd_set_cloexec(int fd, bool on) {
  int fl = fcntl(fd, F_GETFD);
  if (fl < 0) return -errno;
  fl = on ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC;
  return fcntl(fd, F_SETFD, fl) < 0 ? -errno : 0;
}
