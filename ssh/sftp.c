/* SPDX-License-Identifier: MIT */
/*
 * File copy over SFTP, both ways, recursive, preserving mode and mtime.
 *
 * Throughput comes from libssh2's own pipelining: given a large buffer,
 * libssh2_sftp_write() keeps many WRITE requests in flight and
 * libssh2_sftp_read() many READ requests, so each call moves COPY_CHUNK bytes
 * with about one round trip of latency instead of one per 32 KiB.
 */
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "ssh/ssh_internal.h"
#include "util/fs.h"
#include "util/time.h"

#define COPY_CHUNK (4u << 20)
#define MAX_DEPTH 64
#define MAX_PATH_LEN 4096

typedef struct copy {
  qvm_ssh *ssh;
  int64_t deadline;
  bool recursive, preserve;
  uint64_t bytes;
  char *buf;
} copy;

#define SFTP_WAIT(c, what)                                                                         \
  do {                                                                                             \
    int _w_ = ssh_wait_socket((c)->ssh, (c)->deadline, what, err);                                 \
    if (_w_ < 0) return _w_;                                                                       \
  } while (0)

static int sftp_error(copy *c, const char *what, const char *path, qvm_error **err) {
  int rc = libssh2_session_last_errno(c->ssh->session);
  if (rc == LIBSSH2_ERROR_SFTP_PROTOCOL) {
    unsigned long st = libssh2_sftp_last_error(c->ssh->sftp);
    int code =
        st == LIBSSH2_FX_NO_SUCH_FILE || st == LIBSSH2_FX_NO_SUCH_PATH ? QVM_ENOTFOUND : QVM_EPROTO;
    return qvm_error_set(err, code, "cannot %s '%s' on the guest: sftp status %lu", what, path, st);
  }
  return ssh_session_error(c->ssh, rc, what, err);
}

static int sftp_ready(copy *c, qvm_error **err) {
  while (!c->ssh->sftp) {
    c->ssh->sftp = libssh2_sftp_init(c->ssh->session);
    if (c->ssh->sftp) break;
    int rc = libssh2_session_last_errno(c->ssh->session);
    if (rc != LIBSSH2_ERROR_EAGAIN) return ssh_session_error(c->ssh, rc, "cannot start sftp", err);
    SFTP_WAIT(c, "starting sftp");
  }
  return 0;
}

static int remote_stat(copy *c, LIBSSH2_SFTP_ATTRIBUTES *attrs, const char *path, bool *exists,
                       qvm_error **err) {
  int rc;
  while ((rc = libssh2_sftp_stat_ex(c->ssh->sftp, path, (unsigned)strlen(path), LIBSSH2_SFTP_STAT,
                                    attrs)) == LIBSSH2_ERROR_EAGAIN)
    SFTP_WAIT(c, "reading remote file attributes");
  *exists = rc == 0;
  if (rc == 0 || (rc == LIBSSH2_ERROR_SFTP_PROTOCOL &&
                  libssh2_sftp_last_error(c->ssh->sftp) == LIBSSH2_FX_NO_SUCH_FILE))
    return 0;
  return sftp_error(c, "stat", path, err);
}

static int remote_close(copy *c, LIBSSH2_SFTP_HANDLE *h, qvm_error **err) {
  while (libssh2_sftp_close_handle(h) == LIBSSH2_ERROR_EAGAIN) SFTP_WAIT(c, "closing a file");
  return 0;
}

static void attrs_from_stat(LIBSSH2_SFTP_ATTRIBUTES *a, const struct stat *st) {
  *a = (LIBSSH2_SFTP_ATTRIBUTES){.flags =
                                     LIBSSH2_SFTP_ATTR_PERMISSIONS | LIBSSH2_SFTP_ATTR_ACMODTIME,
                                 .permissions = st->st_mode & 07777,
                                 .atime = (unsigned long)st->st_atim.tv_sec,
                                 .mtime = (unsigned long)st->st_mtim.tv_sec};
}

static int remote_setstat(copy *c, const char *path, const struct stat *st, qvm_error **err) {
  LIBSSH2_SFTP_ATTRIBUTES a;
  int rc;
  attrs_from_stat(&a, st);
  while ((rc = libssh2_sftp_stat_ex(c->ssh->sftp, path, (unsigned)strlen(path),
                                    LIBSSH2_SFTP_SETSTAT, &a)) == LIBSSH2_ERROR_EAGAIN)
    SFTP_WAIT(c, "setting remote attributes");
  return rc < 0 ? sftp_error(c, "set attributes of", path, err) : 0;
}

static int upload_data(copy *c, int fd, LIBSSH2_SFTP_HANDLE *h, const char *local,
                       const char *remote, qvm_error **err) {
  for (;;) {
    ssize_t n = read(fd, c->buf, COPY_CHUNK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return qvm_error_set_errno(err, errno, "cannot read '%s'", local);
    if (n == 0) return 0;
    for (const char *p = c->buf; n > 0;) {
      ssize_t w = libssh2_sftp_write(h, p, (size_t)n);
      if (w == LIBSSH2_ERROR_EAGAIN) {
        SFTP_WAIT(c, "uploading");
        continue;
      }
      if (w < 0) return sftp_error(c, "write", remote, err);
      p += w;
      n -= w;
      c->bytes += (uint64_t)w;
    }
  }
}

static int upload_file(copy *c, const char *local, const char *remote, const struct stat *st,
                       qvm_error **err) {
  _cleanup_close_ int fd = open(local, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  LIBSSH2_SFTP_HANDLE *h = NULL;
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open '%s'", local);
  while (!(h = libssh2_sftp_open_ex(c->ssh->sftp, remote, (unsigned)strlen(remote),
                                    LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC,
                                    (long)(st->st_mode & 0777), LIBSSH2_SFTP_OPENFILE))) {
    if (libssh2_session_last_errno(c->ssh->session) != LIBSSH2_ERROR_EAGAIN)
      return sftp_error(c, "create", remote, err);
    SFTP_WAIT(c, "opening a remote file");
  }
  int r = upload_data(c, fd, h, local, remote, err);
  if (r >= 0 && c->preserve) {
    LIBSSH2_SFTP_ATTRIBUTES a;
    attrs_from_stat(&a, st);
    int rc;
    while ((rc = libssh2_sftp_fsetstat(h, &a)) == LIBSSH2_ERROR_EAGAIN)
      SFTP_WAIT(c, "setting remote attributes");
    if (rc < 0) r = sftp_error(c, "set attributes of", remote, err);
  }
  int rc = remote_close(c, h, err);
  return r < 0 ? r : rc;
}

static int upload_tree(copy *c, const char *local, const char *remote, int depth, qvm_error **err);

static int upload_dir(copy *c, const char *local, const char *remote, const struct stat *st,
                      int depth, qvm_error **err) {
  LIBSSH2_SFTP_ATTRIBUTES a;
  bool exists = false;
  int rc, r = remote_stat(c, &a, remote, &exists, err);
  if (r < 0) return r;
  if (!exists) {
    while ((rc = libssh2_sftp_mkdir_ex(c->ssh->sftp, remote, (unsigned)strlen(remote),
                                       (long)((st->st_mode & 0777) | 0700))) ==
           LIBSSH2_ERROR_EAGAIN)
      SFTP_WAIT(c, "creating a remote directory");
    if (rc < 0) return sftp_error(c, "create directory", remote, err);
  }
  DIR *d = opendir(local);
  if (!d) return qvm_error_set_errno(err, errno, "cannot open directory '%s'", local);
  struct dirent *e;
  while (r >= 0 && (e = readdir(d))) {
    _cleanup_free_ char *l = NULL, *rm = NULL;
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (asprintf(&l, "%s/%s", local, e->d_name) < 0 ||
        asprintf(&rm, "%s/%s", remote, e->d_name) < 0)
      r = qvm_error_set(err, QVM_ESYS, "out of memory");
    else
      r = upload_tree(c, l, rm, depth + 1, err);
  }
  closedir(d);
  if (r >= 0 && c->preserve) r = remote_setstat(c, remote, st, err);
  return r;
}

static int upload_tree(copy *c, const char *local, const char *remote, int depth, qvm_error **err) {
  struct stat st;
  if ((depth == 0 ? stat(local, &st) : lstat(local, &st)) < 0)
    return qvm_error_set_errno(err, errno, "cannot stat '%s'", local);
  if (depth > MAX_DEPTH || strlen(remote) > MAX_PATH_LEN)
    return qvm_error_set(err, QVM_EINVAL, "'%s' is nested too deeply", local);
  if (S_ISREG(st.st_mode)) return upload_file(c, local, remote, &st, err);
  if (S_ISDIR(st.st_mode) && c->recursive) return upload_dir(c, local, remote, &st, depth, err);
  if (S_ISDIR(st.st_mode))
    return qvm_error_set(err, QVM_EINVAL, "'%s' is a directory (copy recursively)", local);
  return qvm_error_set(err, QVM_EINVAL, "'%s' is not a regular file or directory", local);
}

/* cp semantics: into an existing directory, under the source's base name. */
static char *target_path(const char *dest, bool dest_is_dir, const char *src) {
  char *out = NULL;
  if (!dest_is_dir) return strdup(dest);
  size_t n = strlen(src);
  while (n > 1 && src[n - 1] == '/') n--;
  const char *base = memrchr(src, '/', n);
  base = base ? base + 1 : src;
  if (asprintf(&out, "%s/%.*s", dest, (int)(src + n - base), base) < 0) return NULL;
  return out;
}

static int copy_begin(copy *c, qvm_ssh *ssh, const qvm_ssh_copy_options *opts, qvm_error **err) {
  qvm_ssh_copy_options defaults = QVM_SSH_COPY_OPTIONS_INIT;
  if (!opts) opts = &defaults;
  *c = (copy){.ssh = ssh,
              .deadline = ssh_deadline(opts->timeout_ms),
              .recursive = opts->recursive,
              .preserve = opts->preserve,
              .buf = malloc(COPY_CHUNK)};
  if (!c->buf) return qvm_error_set(err, QVM_ESYS, "out of memory");
  return sftp_ready(c, err);
}

static int copy_end(copy *c, const qvm_ssh_copy_options *opts, int r) {
  free(c->buf);
  if (opts && opts->out_bytes) *opts->out_bytes = c->bytes;
  return r;
}

int qvm_ssh_upload(qvm_ssh *ssh, const char *local, const char *remote,
                   const qvm_ssh_copy_options *opts, qvm_error **err) {
  copy c;
  LIBSSH2_SFTP_ATTRIBUTES a;
  bool exists = false;
  int r = copy_begin(&c, ssh, opts, err);
  if (r >= 0) r = remote_stat(&c, &a, remote, &exists, err);
  if (r >= 0) {
    bool is_dir =
        exists && (a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) && LIBSSH2_SFTP_S_ISDIR(a.permissions);
    _cleanup_free_ char *target = target_path(remote, is_dir, local);
    r = target ? upload_tree(&c, local, target, 0, err)
               : qvm_error_set(err, QVM_ESYS, "out of memory");
  }
  if (r < 0) qvm_error_prefix(err, "cannot upload '%s' to '%s'", local, remote);
  return copy_end(&c, opts, r);
}

/* ---- download ---- */

static int download_data(copy *c, LIBSSH2_SFTP_HANDLE *h, int fd, const char *remote,
                         const char *local, qvm_error **err) {
  for (;;) {
    ssize_t n = libssh2_sftp_read(h, c->buf, COPY_CHUNK);
    if (n == LIBSSH2_ERROR_EAGAIN) {
      SFTP_WAIT(c, "downloading");
      continue;
    }
    if (n < 0) return sftp_error(c, "read", remote, err);
    if (n == 0) return 0;
    if (qvm_write_all(fd, c->buf, (size_t)n) < 0)
      return qvm_error_set_errno(err, errno, "cannot write '%s'", local);
    c->bytes += (uint64_t)n;
  }
}

static int local_set_attrs(copy *c, int fd, const char *local, const LIBSSH2_SFTP_ATTRIBUTES *a,
                           qvm_error **err) {
  if (!c->preserve) return 0;
  if ((a->flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) && fchmod(fd, a->permissions & 07777) < 0)
    return qvm_error_set_errno(err, errno, "cannot set the mode of '%s'", local);
  if (a->flags & LIBSSH2_SFTP_ATTR_ACMODTIME) {
    struct timespec ts[2] = {{.tv_sec = (time_t)a->atime}, {.tv_sec = (time_t)a->mtime}};
    if (futimens(fd, ts) < 0)
      return qvm_error_set_errno(err, errno, "cannot set the times of '%s'", local);
  }
  return 0;
}

static int download_file(copy *c, const char *remote, const char *local,
                         const LIBSSH2_SFTP_ATTRIBUTES *a, qvm_error **err) {
  LIBSSH2_SFTP_HANDLE *h = NULL;
  while (!(h = libssh2_sftp_open_ex(c->ssh->sftp, remote, (unsigned)strlen(remote),
                                    LIBSSH2_FXF_READ, 0, LIBSSH2_SFTP_OPENFILE))) {
    if (libssh2_session_last_errno(c->ssh->session) != LIBSSH2_ERROR_EAGAIN)
      return sftp_error(c, "open", remote, err);
    SFTP_WAIT(c, "opening a remote file");
  }
  _cleanup_close_ int fd = open(local, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  int r = fd < 0 ? qvm_error_set_errno(err, errno, "cannot create '%s'", local)
                 : download_data(c, h, fd, remote, local, err);
  if (r >= 0) r = local_set_attrs(c, fd, local, a, err);
  int rc = remote_close(c, h, err);
  return r < 0 ? r : rc;
}

static int download_tree(copy *c, const char *remote, const char *local,
                         const LIBSSH2_SFTP_ATTRIBUTES *a, int depth, qvm_error **err);

/* Names come from the guest: no '/', no "." or "..", bounded. */
static bool remote_name_ok(const char *name, size_t len) {
  return len > 0 && len < 256 && !memchr(name, '/', len) && !memchr(name, 0, len) &&
         !(len == 1 && name[0] == '.') && !(len == 2 && name[0] == '.' && name[1] == '.');
}

static int download_entries(copy *c, LIBSSH2_SFTP_HANDLE *dir, const char *remote,
                            const char *local, int depth, qvm_error **err) {
  char name[512];
  for (;;) {
    LIBSSH2_SFTP_ATTRIBUTES a;
    int n = libssh2_sftp_readdir_ex(dir, name, sizeof(name), NULL, 0, &a);
    if (n == LIBSSH2_ERROR_EAGAIN) {
      SFTP_WAIT(c, "listing a remote directory");
      continue;
    }
    if (n < 0) return sftp_error(c, "list", remote, err);
    if (n == 0) return 0;
    if (!remote_name_ok(name, (size_t)n)) {
      if ((n == 1 && name[0] == '.') || (n == 2 && !memcmp(name, "..", 2))) continue;
      return qvm_error_set(err, QVM_EPROTO, "guest sent a bad file name in '%s'", remote);
    }
    _cleanup_free_ char *rm = NULL, *l = NULL;
    if (asprintf(&rm, "%s/%.*s", remote, n, name) < 0 ||
        asprintf(&l, "%s/%.*s", local, n, name) < 0)
      return qvm_error_set(err, QVM_ESYS, "out of memory");
    int r = download_tree(c, rm, l, &a, depth + 1, err);
    if (r < 0) return r;
  }
}

static int download_dir(copy *c, const char *remote, const char *local,
                        const LIBSSH2_SFTP_ATTRIBUTES *a, int depth, qvm_error **err) {
  LIBSSH2_SFTP_HANDLE *dir = NULL;
  if (mkdir(local, 0700) < 0 && errno != EEXIST)
    return qvm_error_set_errno(err, errno, "cannot create directory '%s'", local);
  while (!(dir = libssh2_sftp_open_ex(c->ssh->sftp, remote, (unsigned)strlen(remote), 0, 0,
                                      LIBSSH2_SFTP_OPENDIR))) {
    if (libssh2_session_last_errno(c->ssh->session) != LIBSSH2_ERROR_EAGAIN)
      return sftp_error(c, "open directory", remote, err);
    SFTP_WAIT(c, "opening a remote directory");
  }
  int r = download_entries(c, dir, remote, local, depth, err);
  int rc = remote_close(c, dir, err);
  if (r < 0 || rc < 0) return r < 0 ? r : rc;
  _cleanup_close_ int fd = open(local, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open directory '%s'", local);
  return local_set_attrs(c, fd, local, a, err);
}

static int download_tree(copy *c, const char *remote, const char *local,
                         const LIBSSH2_SFTP_ATTRIBUTES *a, int depth, qvm_error **err) {
  if (depth > MAX_DEPTH || strlen(local) > MAX_PATH_LEN)
    return qvm_error_set(err, QVM_EINVAL, "'%s' is nested too deeply", remote);
  if (!(a->flags & LIBSSH2_SFTP_ATTR_PERMISSIONS))
    return qvm_error_set(err, QVM_EPROTO, "guest sent no file type for '%s'", remote);
  if (LIBSSH2_SFTP_S_ISREG(a->permissions)) return download_file(c, remote, local, a, err);
  if (LIBSSH2_SFTP_S_ISDIR(a->permissions) && c->recursive)
    return download_dir(c, remote, local, a, depth, err);
  if (LIBSSH2_SFTP_S_ISDIR(a->permissions))
    return qvm_error_set(err, QVM_EINVAL, "'%s' is a directory (copy recursively)", remote);
  return qvm_error_set(err, QVM_EINVAL, "'%s' is not a regular file or directory", remote);
}

int qvm_ssh_download(qvm_ssh *ssh, const char *remote, const char *local,
                     const qvm_ssh_copy_options *opts, qvm_error **err) {
  copy c;
  LIBSSH2_SFTP_ATTRIBUTES a;
  bool exists = false;
  int r = copy_begin(&c, ssh, opts, err);
  if (r >= 0) r = remote_stat(&c, &a, remote, &exists, err);
  if (r >= 0 && !exists) r = qvm_error_set(err, QVM_ENOTFOUND, "'%s' does not exist", remote);
  if (r >= 0) {
    struct stat st;
    _cleanup_free_ char *target =
        target_path(local, stat(local, &st) == 0 && S_ISDIR(st.st_mode), remote);
    r = target ? download_tree(&c, remote, target, &a, 0, err)
               : qvm_error_set(err, QVM_ESYS, "out of memory");
  }
  if (r < 0) qvm_error_prefix(err, "cannot download '%s' to '%s'", remote, local);
  return copy_end(&c, opts, r);
}
