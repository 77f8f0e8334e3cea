/* SPDX-License-Identifier: MIT */
/*
 * File copy over SFTP, both ways, recursive, preserving mode and mtime.
 *
 * Throughput comes from libssh2's own pipelining: given a large buffer,
 * libssh2_sftp_write() keeps many WRITE requests in flight and
 * libssh2_sftp_read() many READ requests, so each call moves COPY_CHUNK bytes
 * with about one round trip of latency instead of one per 32 KiB.
 *
 * The guest is hostile (docs/SECURITY.md): every name, mode and byte a
 * download receives is checked or bounded before it reaches the host's file
 * system, and guest text reaches error messages only through
 * qvm_text_for_terminal().
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <qvm/text.h>

#include "ssh/ssh_internal.h"
#include "util/fs.h"
#include "util/time.h"

#define COPY_CHUNK (4u << 20)
#define MAX_DEPTH 64
#define MAX_PATH_LEN 4096
#define CLOSE_GRACE_MS 10000

/* Slots for guest text shown in one message (see shown()). */
enum { SHOW_REMOTE, SHOW_LOCAL, SHOW_NAME, SHOW_SLOTS };

typedef struct copy {
  qvm_ssh *ssh;
  int64_t deadline;
  int timeout_ms;
  bool recursive, preserve;
  bool broken;     /* a CLOSE went unanswered: close no more handles */
  bool top_chosen; /* the first level is the user's choice: DEST itself
                      (a merge) or where the user's own symlink leads */
  uint64_t bytes, max_bytes;
  uint64_t entries, max_files;
  mode_t umask;
  char *buf;
  char *shown[SHOW_SLOTS];
  void *recv_saved; /* the session's recv callback before the copy */
} copy;

/* A guest whose sshd floods the connection (SSH_MSG_IGNORE, as fast as it
 * is read) keeps libssh2 inside its own read loop, which returns to us only
 * when the socket has nothing more: no clock check of ours would run. While
 * a copy runs, the session reads through copy_recv(), which answers "nothing
 * yet" once recv_deadline (the copy's limit plus the close grace) has
 * passed, so libssh2 gives control back and the copy ends. (What libssh2
 * already buffered it still processes: a flood of stray SFTP replies costs
 * it time quadratic in their number, up to the channel window.) One copy
 * runs at a time per thread. */
static _Thread_local int64_t recv_deadline = -1;

static ssize_t copy_recv(libssh2_socket_t fd, void *buffer, size_t len, int flags,
                         void **abstract) {
  (void)abstract;
  if (recv_deadline >= 0 && qvm_now_ms() >= recv_deadline) return -EAGAIN;
  ssize_t n = recv(fd, buffer, len, flags);
  return n < 0 ? -errno : n;
}

static void recv_guard_on(copy *c) {
  union {
    ssize_t (*fn)(libssh2_socket_t, void *, size_t, int, void **);
    void *p;
  } cb = {.fn = copy_recv};
  c->recv_saved = libssh2_session_callback_set(c->ssh->session, LIBSSH2_CALLBACK_RECV, cb.p);
  recv_deadline = c->deadline >= 0 ? c->deadline + CLOSE_GRACE_MS : -1;
}

static void recv_guard_off(copy *c) {
  if (!c->recv_saved) return;
  libssh2_session_callback_set(c->ssh->session, LIBSSH2_CALLBACK_RECV, c->recv_saved);
  recv_deadline = -1;
}

/* text (a path that may hold guest names) made safe for a message; valid
 * until the next call with the same slot or the end of the copy. */
static const char *shown(copy *c, int slot, const void *text, size_t len) {
  free(c->shown[slot]);
  c->shown[slot] = qvm_text_for_terminal(text, len, 0);
  return c->shown[slot] ? c->shown[slot] : "?";
}

static const char *shown_path(copy *c, int slot, const char *path) {
  return shown(c, slot, path, strlen(path));
}

static int copy_timed_out(copy *c, const char *what, qvm_error **err) {
  int r = c->timeout_ms % 1000
              ? qvm_error_set(err, QVM_ETIMEOUT, "the copy's time limit of %d ms ran out while %s",
                              c->timeout_ms, what)
              : qvm_error_set(err, QVM_ETIMEOUT, "the copy's time limit of %d s ran out while %s",
                              c->timeout_ms / 1000, what);
  if (err && *err) qvm_error_set_class(*err, "Timeout");
  return r;
}

/* Checked on every turn of a loop, not only when the socket blocks: a guest
 * that always has data ready would otherwise never meet the deadline. */
static int copy_check_time(copy *c, const char *what, qvm_error **err) {
  if (c->deadline >= 0 && qvm_now_ms() >= c->deadline) return copy_timed_out(c, what, err);
  return 0;
}

static int copy_wait(copy *c, const char *what, qvm_error **err) {
  qvm_error *local = NULL;
  int r = copy_check_time(c, what, err);
  if (r < 0) return r;
  r = ssh_wait_socket(c->ssh, c->deadline, what, &local);
  if (r == QVM_ETIMEOUT) {
    qvm_error_free(local);
    return copy_timed_out(c, what, err);
  }
  return r < 0 ? qvm_error_propagate(err, local) : 0;
}

#define SFTP_WAIT(c, what)                                                                         \
  do {                                                                                             \
    int _w_ = copy_wait((c), what, err);                                                           \
    if (_w_ < 0) return _w_;                                                                       \
  } while (0)

static int sftp_error(copy *c, const char *what, const char *path, qvm_error **err) {
  int rc = libssh2_session_last_errno(c->ssh->session);
  if (rc == LIBSSH2_ERROR_SFTP_PROTOCOL) {
    unsigned long st = libssh2_sftp_last_error(c->ssh->sftp);
    int code =
        st == LIBSSH2_FX_NO_SUCH_FILE || st == LIBSSH2_FX_NO_SUCH_PATH ? QVM_ENOTFOUND : QVM_EPROTO;
    return qvm_error_set(err, code, "cannot %s '%s' on the guest: sftp status %lu", what,
                         shown_path(c, SHOW_REMOTE, path), st);
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

/* Closing is cleanup: it may run past the copy's time limit, by one grace
 * period for the whole copy (not one per close: a deep tree would add up),
 * or, for a copy without a limit, by one grace period per close. The clock
 * is checked on every turn: a guest can keep the socket readable with
 * traffic that answers nothing. A close that does not finish leaves the
 * SFTP channel in an unknown state, so the copy is marked broken and closes
 * no more handles. Never replaces an error r the copy already has. */
static int close_handle(copy *c, LIBSSH2_SFTP_HANDLE *h, int64_t deadline, qvm_error **err) {
  while (libssh2_sftp_close_handle(h) == LIBSSH2_ERROR_EAGAIN) {
    int w = qvm_now_ms() >= deadline
                ? QVM_ETIMEOUT
                : ssh_wait_socket(c->ssh, deadline, "closing a remote file", err);
    if (w == QVM_ETIMEOUT && err) {
      qvm_error_free(*err);
      *err = NULL;
      w = qvm_error_set(err, QVM_ETIMEOUT, "the guest did not close a remote file in time");
      if (*err) qvm_error_set_class(*err, "Timeout");
    }
    if (w < 0) return w;
  }
  return 0;
}

static int remote_close(copy *c, LIBSSH2_SFTP_HANDLE *h, int r, qvm_error **err) {
  if (c->broken) return r;
  int64_t deadline = (c->deadline >= 0 ? c->deadline : qvm_now_ms()) + CLOSE_GRACE_MS;
  recv_deadline = deadline;
  int w = close_handle(c, h, deadline, r < 0 ? NULL : err);
  recv_deadline = c->deadline >= 0 ? c->deadline + CLOSE_GRACE_MS : -1;
  c->broken = w < 0;
  return r < 0 ? r : w;
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
    if (n < 0)
      return qvm_error_set_errno(err, errno, "cannot read '%s'", shown_path(c, SHOW_LOCAL, local));
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
  if (fd < 0)
    return qvm_error_set_errno(err, errno, "cannot open '%s'", shown_path(c, SHOW_LOCAL, local));
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
  return remote_close(c, h, r, err);
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
  if (!d)
    return qvm_error_set_errno(err, errno, "cannot open directory '%s'",
                               shown_path(c, SHOW_LOCAL, local));
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
  if ((depth == 0 ? stat(local, &st) : lstat(local, &st)) < 0) {
    /* the file the user named is missing: not found, as a missing remote
     * file is (exit 3), not a system failure */
    if (depth == 0 && errno == ENOENT)
      return qvm_error_set_code_errno(err, QVM_ENOTFOUND, errno, "'%s' not found",
                                      shown_path(c, SHOW_LOCAL, local));
    return qvm_error_set_errno(err, errno, "cannot stat '%s'", shown_path(c, SHOW_LOCAL, local));
  }
  if (depth > MAX_DEPTH || strlen(remote) > MAX_PATH_LEN)
    return qvm_error_set(err, QVM_EINVAL, "'%s' is nested too deeply",
                         shown_path(c, SHOW_LOCAL, local));
  if (S_ISREG(st.st_mode)) return upload_file(c, local, remote, &st, err);
  if (S_ISDIR(st.st_mode) && c->recursive) return upload_dir(c, local, remote, &st, depth, err);
  if (S_ISDIR(st.st_mode))
    return qvm_error_set(err, QVM_EINVAL, "'%s' is a directory (copy recursively)",
                         shown_path(c, SHOW_LOCAL, local));
  return qvm_error_set(err, QVM_EINVAL, "'%s' is not a regular file or directory",
                       shown_path(c, SHOW_LOCAL, local));
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

/* The process's umask without changing it (umask(2) would, for a moment,
 * for every thread); if /proc is not there, the strictest one. */
static mode_t current_umask(void) {
  _cleanup_fclose_ FILE *f = fopen("/proc/self/status", "re");
  char line[256];
  unsigned m;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "Umask: %o", &m) == 1) return (mode_t)(m & 0777);
  return 077;
}

/* The default time limit is for downloads, which a guest can make endless;
 * an upload keeps going as long as it needs (a large file, a slow link)
 * unless the caller sets a limit. */
static int copy_begin(copy *c, qvm_ssh *ssh, const qvm_ssh_copy_options *opts, bool download,
                      qvm_error **err) {
  qvm_ssh_copy_options defaults = QVM_SSH_COPY_OPTIONS_INIT;
  if (!opts) opts = &defaults;
  int timeout = opts->timeout_ms ? opts->timeout_ms
                : download       ? QVM_SSH_COPY_TIMEOUT_MS_DEFAULT
                                 : -1;
  *c = (copy){.ssh = ssh,
              .deadline = ssh_deadline(timeout),
              .timeout_ms = timeout,
              .recursive = opts->recursive,
              .preserve = opts->preserve,
              .max_bytes = opts->max_bytes ? opts->max_bytes : QVM_SSH_COPY_MAX_BYTES_DEFAULT,
              .max_files = opts->max_files ? opts->max_files : QVM_SSH_COPY_MAX_FILES_DEFAULT,
              .umask = current_umask(),
              .buf = malloc(COPY_CHUNK)};
  if (!c->buf) return qvm_error_set(err, QVM_ESYS, "out of memory");
  recv_guard_on(c);
  return sftp_ready(c, err);
}

static int copy_end(copy *c, const qvm_ssh_copy_options *opts, int r) {
  recv_guard_off(c);
  free(c->buf);
  for (int i = 0; i < SHOW_SLOTS; i++) free(c->shown[i]);
  if (opts && opts->out_bytes) *opts->out_bytes = c->bytes;
  return r;
}

int qvm_ssh_upload(qvm_ssh *ssh, const char *local, const char *remote,
                   const qvm_ssh_copy_options *opts, qvm_error **err) {
  int r = QVM_OPTIONS_CHECK(opts, qvm_ssh_copy_options, QVM_SSH_COPY_OPTIONS_VERSION, err);
  if (r < 0) return r;
  copy c;
  LIBSSH2_SFTP_ATTRIBUTES a;
  bool exists = false;
  r = copy_begin(&c, ssh, opts, false, err);
  if (r >= 0) r = remote_stat(&c, &a, remote, &exists, err);
  if (r >= 0) {
    bool is_dir =
        exists && (a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) && LIBSSH2_SFTP_S_ISDIR(a.permissions);
    _cleanup_free_ char *target = target_path(remote, is_dir, local);
    r = target ? upload_tree(&c, local, target, 0, err)
               : qvm_error_set(err, QVM_ESYS, "out of memory");
  }
  if (r < 0)
    qvm_error_prefix(err, "cannot upload '%s' to '%s'", shown_path(&c, SHOW_LOCAL, local),
                     shown_path(&c, SHOW_REMOTE, remote));
  return copy_end(&c, opts, r);
}

/* ---- download ----
 *
 * Below the destination directory every step is openat()/mkdirat() relative
 * to a directory fd, with O_NOFOLLOW: a symlink there (planted by another
 * local user, say) is refused, never followed; at the first level only the
 * user's own symlink is followed. A directory that is already there is
 * entered only if it is ours (another user's /tmp/logs is refused) and keeps
 * its mode and times. File data goes to an unnamed O_TMPFILE (else a temp
 * name), is synced, and is linked and renamed into place when complete, so
 * a failed, cut-off or killed download never leaves a file that looks
 * complete, and no existing inode (a hard link) is written to. Modes keep
 * only the permission bits, through the umask, like OpenSSH's sftp: never
 * setuid, setgid or sticky from a guest. */

static int count_entry(copy *c, qvm_error **err) {
  if (++c->entries <= c->max_files) return 0;
  int r = qvm_error_set(err, QVM_EINVAL,
                        "the guest listed more than %" PRIu64 " directory entries, the copy's cap",
                        c->max_files);
  if (err && *err) qvm_error_set_class(*err, "TooManyFiles");
  return r;
}

static int count_bytes(copy *c, size_t n, qvm_error **err) {
  if (n <= c->max_bytes - c->bytes) return 0;
  int r = qvm_error_set(err, QVM_EINVAL,
                        "the guest sent more than %" PRIu64 " bytes of file data, the copy's cap",
                        c->max_bytes);
  if (err && *err) qvm_error_set_class(*err, "TooLarge");
  return r;
}

static int download_data(copy *c, LIBSSH2_SFTP_HANDLE *h, int fd, const char *remote,
                         const char *local, qvm_error **err) {
  for (;;) {
    int r = copy_check_time(c, "downloading", err);
    if (r < 0) return r;
    ssize_t n = libssh2_sftp_read(h, c->buf, COPY_CHUNK);
    if (n == LIBSSH2_ERROR_EAGAIN) {
      SFTP_WAIT(c, "downloading");
      continue;
    }
    if (n < 0) return sftp_error(c, "read", remote, err);
    if (n == 0) return 0;
    if ((r = count_bytes(c, (size_t)n, err)) < 0) return r;
    if (qvm_write_all(fd, c->buf, (size_t)n) < 0)
      return qvm_error_set_errno(err, errno, "cannot write '%s'", shown_path(c, SHOW_LOCAL, local));
    c->bytes += (uint64_t)n;
  }
}

static int local_set_attrs(copy *c, int fd, const char *local, const LIBSSH2_SFTP_ATTRIBUTES *a,
                           qvm_error **err) {
  if (!c->preserve) return 0;
  mode_t mode = (mode_t)(a->permissions & 0777) & ~c->umask;
  if ((a->flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) && fchmod(fd, mode) < 0)
    return qvm_error_set_errno(err, errno, "cannot set the mode of '%s'",
                               shown_path(c, SHOW_LOCAL, local));
  if (a->flags & LIBSSH2_SFTP_ATTR_ACMODTIME) {
    struct timespec ts[2] = {{.tv_sec = (time_t)a->atime}, {.tv_sec = (time_t)a->mtime}};
    if (futimens(fd, ts) < 0)
      return qvm_error_set_errno(err, errno, "cannot set the times of '%s'",
                                 shown_path(c, SHOW_LOCAL, local));
  }
  return 0;
}

/* What already sits at name in dirfd may be replaced (a regular file) or
 * entered (a directory); a symlink or anything else is refused. */
static int check_existing(copy *c, int dirfd, const char *name, const char *local, bool want_dir,
                          qvm_error **err) {
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return errno == ENOENT ? 0
                           : qvm_error_set_errno(err, errno, "cannot stat '%s'",
                                                 shown_path(c, SHOW_LOCAL, local));
  if (S_ISLNK(st.st_mode))
    return qvm_error_set(err, QVM_EEXISTS,
                         "'%s' is a symbolic link: a download never writes through one",
                         shown_path(c, SHOW_LOCAL, local));
  if (want_dir && !S_ISDIR(st.st_mode))
    return qvm_error_set(err, QVM_EEXISTS, "'%s' exists and is not a directory",
                         shown_path(c, SHOW_LOCAL, local));
  if (!want_dir && !S_ISREG(st.st_mode))
    return qvm_error_set(err, QVM_EEXISTS, "'%s' exists and is not a regular file",
                         shown_path(c, SHOW_LOCAL, local));
  return 0;
}

static void random_name(char tmp[32]) {
  uint64_t rnd = 0;
  if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) rnd ^= (uint64_t)qvm_now_us();
  snprintf(tmp, 32, ".qvm-cp-%016" PRIx64, rnd);
}

/* A new, empty, private file ".qvm-cp-<random>" in dirfd. */
static int create_temp(copy *c, int dirfd, char tmp[32], const char *local, qvm_error **err) {
  for (int tries = 0; tries < 16; tries++) {
    random_name(tmp);
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0 || errno != EEXIST) {
      if (fd < 0)
        return qvm_error_set_errno(err, errno, "cannot create a file next to '%s'",
                                   shown_path(c, SHOW_LOCAL, local));
      return fd;
    }
  }
  return qvm_error_set(err, QVM_EEXISTS, "cannot create a file next to '%s'",
                       shown_path(c, SHOW_LOCAL, local));
}

/* The file a download writes: unnamed (O_TMPFILE, tmp ""), so that a copy
 * killed midway leaves nothing; where the file system has no O_TMPFILE, a
 * named temp file (create_temp()). */
static int create_data_file(copy *c, int dirfd, char tmp[32], const char *local, qvm_error **err) {
  tmp[0] = '\0';
  int fd = openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)
    return create_temp(c, dirfd, tmp, local, err);
  return qvm_error_set_errno(err, errno, "cannot create a file next to '%s'",
                             shown_path(c, SHOW_LOCAL, local));
}

/* Gives the unnamed file fd a temp name in dirfd, to be renamed. */
static int link_data_file(copy *c, int fd, int dirfd, char tmp[32], const char *local,
                          qvm_error **err) {
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  for (int tries = 0; tries < 16; tries++) {
    random_name(tmp);
    if (linkat(AT_FDCWD, proc, dirfd, tmp, AT_SYMLINK_FOLLOW) == 0) return 0;
    /* without /proc: AT_EMPTY_PATH, which needs CAP_DAC_READ_SEARCH */
    if (errno == ENOENT && linkat(fd, "", dirfd, tmp, AT_EMPTY_PATH) == 0) return 0;
    if (errno != EEXIST) break;
  }
  int e = errno;
  tmp[0] = '\0';
  return qvm_error_set_errno(err, e, "cannot create '%s'", shown_path(c, SHOW_LOCAL, local));
}

static int open_remote(copy *c, LIBSSH2_SFTP_HANDLE **out, const char *remote, int type,
                       qvm_error **err) {
  while (!(*out = libssh2_sftp_open_ex(c->ssh->sftp, remote, (unsigned)strlen(remote),
                                       type == LIBSSH2_SFTP_OPENFILE ? LIBSSH2_FXF_READ : 0, 0,
                                       type))) {
    if (libssh2_session_last_errno(c->ssh->session) != LIBSSH2_ERROR_EAGAIN)
      return sftp_error(c, type == LIBSSH2_SFTP_OPENFILE ? "open" : "open directory", remote, err);
    SFTP_WAIT(c, "opening a remote file");
  }
  return 0;
}

/* Attributes on the data file, then a name for it (a file that is there is
 * whole). No fsync, as with cp, scp and rsync: it cost downloads a third of
 * their speed (bench/ssh), and a host crash is not the guest's doing. */
static int finish_data_file(copy *c, int fd, int dirfd, char tmp[32], const char *local,
                            const LIBSSH2_SFTP_ATTRIBUTES *a, qvm_error **err) {
  int r = local_set_attrs(c, fd, local, a, err);
  if (r >= 0 && !tmp[0]) r = link_data_file(c, fd, dirfd, tmp, local, err);
  return r;
}

/* Data into a new file in dirfd, then renamed over name. */
static int download_into(copy *c, LIBSSH2_SFTP_HANDLE *h, int dirfd, const char *name,
                         const char *remote, const char *local, const LIBSSH2_SFTP_ATTRIBUTES *a,
                         qvm_error **err) {
  char tmp[32];
  int fd = create_data_file(c, dirfd, tmp, local, err);
  if (fd < 0) return fd;
  int r = download_data(c, h, fd, remote, local, err);
  if (r >= 0) r = finish_data_file(c, fd, dirfd, tmp, local, a, err);
  if (close(fd) < 0 && r >= 0)
    r = qvm_error_set_errno(err, errno, "cannot write '%s'", shown_path(c, SHOW_LOCAL, local));
  if (r >= 0 && renameat(dirfd, tmp, dirfd, name) < 0)
    r = qvm_error_set_errno(err, errno, "cannot create '%s'", shown_path(c, SHOW_LOCAL, local));
  if (r < 0 && tmp[0]) unlinkat(dirfd, tmp, 0);
  return r;
}

static int download_file(copy *c, int dirfd, const char *name, const char *remote,
                         const char *local, const LIBSSH2_SFTP_ATTRIBUTES *a, qvm_error **err) {
  LIBSSH2_SFTP_HANDLE *h = NULL;
  int r = check_existing(c, dirfd, name, local, false, err);
  if (r >= 0) r = open_remote(c, &h, remote, LIBSSH2_SFTP_OPENFILE, err);
  if (r < 0) return r;
  r = download_into(c, h, dirfd, name, remote, local, a, err);
  return remote_close(c, h, r, err);
}

static int download_tree(copy *c, int dirfd, const char *name, const char *remote,
                         const char *local, const LIBSSH2_SFTP_ATTRIBUTES *a, int depth,
                         qvm_error **err);

/* Names come from the guest: no '/', no NUL, not "" "." or "..", bounded. */
static bool remote_name_ok(const char *name, size_t len) {
  return len > 0 && len < 256 && !memchr(name, '/', len) && !memchr(name, 0, len) &&
         !(len == 1 && name[0] == '.') && !(len == 2 && name[0] == '.' && name[1] == '.');
}

static int download_entry(copy *c, int dirfd, const char *remote, const char *local,
                          const char *name, int n, const LIBSSH2_SFTP_ATTRIBUTES *a, int depth,
                          qvm_error **err) {
  int r = count_entry(c, err);
  if (r < 0) return r;
  if ((n == 1 && name[0] == '.') || (n == 2 && !memcmp(name, "..", 2))) return 0;
  if (!remote_name_ok(name, (size_t)n))
    return qvm_error_set(err, QVM_EPROTO, "guest sent a bad file name '%s' in '%s'",
                         shown(c, SHOW_NAME, name, (size_t)n), shown_path(c, SHOW_REMOTE, remote));
  _cleanup_free_ char *rm = NULL, *l = NULL;
  if (asprintf(&rm, "%s/%.*s", remote, n, name) < 0 || asprintf(&l, "%s/%.*s", local, n, name) < 0)
    return qvm_error_set(err, QVM_ESYS, "out of memory");
  /* The name as a C string: the tail of l. */
  return download_tree(c, dirfd, l + strlen(local) + 1, rm, l, a, depth + 1, err);
}

static int download_entries(copy *c, LIBSSH2_SFTP_HANDLE *dir, int dirfd, const char *remote,
                            const char *local, int depth, qvm_error **err) {
  char name[512];
  for (;;) {
    LIBSSH2_SFTP_ATTRIBUTES a;
    int r = copy_check_time(c, "listing a remote directory", err);
    if (r < 0) return r;
    int n = libssh2_sftp_readdir_ex(dir, name, sizeof(name), NULL, 0, &a);
    if (n == LIBSSH2_ERROR_EAGAIN) {
      SFTP_WAIT(c, "listing a remote directory");
      continue;
    }
    if (n < 0) return sftp_error(c, "list", remote, err);
    if (n == 0) return 0;
    if ((r = download_entry(c, dirfd, remote, local, name, n, &a, depth, err)) < 0) return r;
  }
}

/* A directory that was already there is entered only if it is ours:
 * another user's /tmp/logs, made before `qvm cp -r vm:/var/log/logs /tmp/`,
 * would get every file. */
static int check_dir_owner(copy *c, int fd, const char *local, qvm_error **err) {
  struct stat st;
  if (fstat(fd, &st) < 0)
    return qvm_error_set_errno(err, errno, "cannot stat '%s'", shown_path(c, SHOW_LOCAL, local));
  if (st.st_uid == geteuid()) return 0;
  return qvm_error_set(err, QVM_EEXISTS,
                       "'%s' exists and belongs to uid %u, not to you: a download never writes "
                       "into another user's directory",
                       shown_path(c, SHOW_LOCAL, local), (unsigned)st.st_uid);
}

/* The directory name in dirfd, created (0700 until its entries are in) or
 * entered if it exists, but never through a symlink; *created tells which. */
static int open_local_dir(copy *c, int dirfd, const char *name, const char *local, int depth,
                          bool *created, qvm_error **err) {
  *created = mkdirat(dirfd, name, 0700) == 0;
  if (!*created && errno != EEXIST)
    return qvm_error_set_errno(err, errno, "cannot create directory '%s'",
                               shown_path(c, SHOW_LOCAL, local));
  int r = check_existing(c, dirfd, name, local, true, err);
  if (r < 0) return r;
  _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && (errno == ELOOP || errno == ENOTDIR))
    return qvm_error_set(err, QVM_EEXISTS,
                         "'%s' is a symbolic link: a download never writes through one",
                         shown_path(c, SHOW_LOCAL, local));
  if (fd < 0)
    return qvm_error_set_errno(err, errno, "cannot open directory '%s'",
                               shown_path(c, SHOW_LOCAL, local));
  if (!*created && !(depth == 0 && c->top_chosen) && (r = check_dir_owner(c, fd, local, err)) < 0)
    return r;
  return TAKE_FD(fd);
}

/* Guest attributes go only on a directory this copy made: one that was
 * there (DEST itself when `NAME:/` merges into it) keeps its own. */
static int download_dir(copy *c, int dirfd, const char *name, const char *remote, const char *local,
                        const LIBSSH2_SFTP_ATTRIBUTES *a, int depth, qvm_error **err) {
  LIBSSH2_SFTP_HANDLE *dir = NULL;
  bool created = false;
  _cleanup_close_ int fd = open_local_dir(c, dirfd, name, local, depth, &created, err);
  if (fd < 0) return fd;
  int r = open_remote(c, &dir, remote, LIBSSH2_SFTP_OPENDIR, err);
  if (r < 0) return r;
  r = remote_close(c, dir, download_entries(c, dir, fd, remote, local, depth, err), err);
  return r < 0 || !created ? r : local_set_attrs(c, fd, local, a, err);
}

static int download_tree(copy *c, int dirfd, const char *name, const char *remote,
                         const char *local, const LIBSSH2_SFTP_ATTRIBUTES *a, int depth,
                         qvm_error **err) {
  if (depth > MAX_DEPTH || strlen(local) > MAX_PATH_LEN)
    return qvm_error_set(err, QVM_EINVAL, "'%s' is nested too deeply",
                         shown_path(c, SHOW_REMOTE, remote));
  if (!(a->flags & LIBSSH2_SFTP_ATTR_PERMISSIONS))
    return qvm_error_set(err, QVM_EPROTO, "guest sent no file type for '%s'",
                         shown_path(c, SHOW_REMOTE, remote));
  if (LIBSSH2_SFTP_S_ISREG(a->permissions))
    return download_file(c, dirfd, name, remote, local, a, err);
  if (LIBSSH2_SFTP_S_ISDIR(a->permissions) && c->recursive)
    return download_dir(c, dirfd, name, remote, local, a, depth, err);
  if (LIBSSH2_SFTP_S_ISDIR(a->permissions))
    return qvm_error_set(err, QVM_EINVAL, "'%s' is a directory (copy recursively)",
                         shown_path(c, SHOW_REMOTE, remote));
  return qvm_error_set(err, QVM_EINVAL, "'%s' is not a regular file or directory",
                       shown_path(c, SHOW_REMOTE, remote));
}

/* The last component of path (trailing slashes ignored), as [*out, *out+len). */
static void last_component(const char *path, const char **out, size_t *len) {
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/') n--;
  const char *slash = memrchr(path, '/', n);
  *out = slash ? slash + 1 : path;
  *len = (size_t)(path + n - *out);
}

/* The directory that holds base, the last component of path. */
static char *parent_dir(const char *path, const char *base) {
  if (base == path) return strdup(".");
  if (base == path + 1) return strdup("/");
  return strndup(path, (size_t)(base - path - 1));
}

/* dir and name as the directory fd and name the walk starts from. */
static int open_start(copy *c, int *out_dirfd, char **out_name, const char *dir, const char *base,
                      size_t len, qvm_error **err) {
  *out_name = len ? strndup(base, len) : strdup(".");
  if (!*out_name) return qvm_error_set(err, QVM_ESYS, "out of memory");
  *out_dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (*out_dirfd < 0)
    return qvm_error_set_errno(err, errno, "cannot open directory '%s'",
                               shown_path(c, SHOW_LOCAL, dir));
  return 0;
}

/* The first level, the entry DEST names, may be the user's own symlink
 * (~/data -> /mnt/big/data): followed, where it leads becomes the start.
 * Another user's symlink there is left for check_existing() to refuse:
 * links planted by others belong to them. */
static int follow_own_link(copy *c, int *dirfd, char **name, char **local, qvm_error **err) {
  struct stat st;
  if (fstatat(*dirfd, *name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISLNK(st.st_mode) ||
      st.st_uid != geteuid())
    return 0;
  _cleanup_free_ char *real = realpath(*local, NULL), *dir = NULL;
  if (!real)
    return qvm_error_set_errno(err, errno, "cannot follow the symbolic link '%s'",
                               shown_path(c, SHOW_LOCAL, *local));
  const char *base;
  size_t len;
  last_component(real, &base, &len);
  if (!(dir = parent_dir(real, base))) return qvm_error_set(err, QVM_ESYS, "out of memory");
  close(*dirfd);
  *dirfd = -1;
  free(*name);
  free(*local);
  *local = TAKE_PTR(real);
  c->top_chosen = true;
  return open_start(c, dirfd, name, dir, base, len, err);
}

/* Where the copy goes, with cp semantics: into local if it is a directory,
 * under the source's last name ("." or "/" merge into local itself), else
 * as local. Only this directory, the user's own path, is opened following
 * symlinks, and the entry in it if that is the user's own symlink. */
static int open_destination(copy *c, int *out_dirfd, char **out_name, char **out_local,
                            const char *remote, const char *local, qvm_error **err) {
  struct stat st;
  const char *base;
  size_t len;
  bool into = stat(local, &st) == 0 && S_ISDIR(st.st_mode);
  last_component(into ? remote : local, &base, &len);
  bool merge = into && (len == 0 || (len == 1 && *base == '.'));
  if (!merge && !remote_name_ok(base, len))
    return qvm_error_set(err, QVM_EINVAL, "cannot tell what to name the copy: give a new path");
  _cleanup_free_ char *dir = into ? strdup(local) : parent_dir(local, base);
  int n = !dir    ? -1
          : merge ? asprintf(out_local, "%s", local)
          : into  ? asprintf(out_local, "%s/%.*s", local, (int)len, base)
                  : asprintf(out_local, "%s", local);
  if (n < 0) {
    *out_local = NULL;
    return qvm_error_set(err, QVM_ESYS, "out of memory");
  }
  c->top_chosen = merge;
  int r = open_start(c, out_dirfd, out_name, dir, base, merge ? 0 : len, err);
  return r < 0 || merge ? r : follow_own_link(c, out_dirfd, out_name, out_local, err);
}

static int download_start(copy *c, const char *remote, const char *local, qvm_error **err) {
  LIBSSH2_SFTP_ATTRIBUTES a;
  bool exists = false;
  _cleanup_close_ int dirfd = -1;
  _cleanup_free_ char *name = NULL, *target = NULL;
  int r = remote_stat(c, &a, remote, &exists, err);
  if (r >= 0 && !exists)
    r = qvm_error_set(err, QVM_ENOTFOUND, "'%s' does not exist",
                      shown_path(c, SHOW_REMOTE, remote));
  if (r >= 0) r = open_destination(c, &dirfd, &name, &target, remote, local, err);
  if (r >= 0) r = download_tree(c, dirfd, name, remote, target, &a, 0, err);
  return r;
}

int qvm_ssh_download(qvm_ssh *ssh, const char *remote, const char *local,
                     const qvm_ssh_copy_options *opts, qvm_error **err) {
  int r = QVM_OPTIONS_CHECK(opts, qvm_ssh_copy_options, QVM_SSH_COPY_OPTIONS_VERSION, err);
  if (r < 0) return r;
  copy c;
  r = copy_begin(&c, ssh, opts, true, err);
  if (r >= 0) r = download_start(&c, remote, local, err);
  if (r < 0)
    qvm_error_prefix(err, "cannot download '%s' to '%s'", shown_path(&c, SHOW_REMOTE, remote),
                     shown_path(&c, SHOW_LOCAL, local));
  return copy_end(&c, opts, r);
}
