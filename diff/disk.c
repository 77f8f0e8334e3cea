/* SPDX-License-Identifier: MIT */
#include "diff/disk.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libnbd.h>

#include <qvm/text.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/time.h"
#include "vm/qcow2.h"
#include "vm/qemu_user.h"
#include "vm/state.h"

#define CHUNK (256u * 1024)
#define SLOTS 128 /* 32 MiB at most, allocated as used */
#define START_TIMEOUT_MS 30000
/* One read: qemu-storage-daemon answers in far less on a local file. */
#define READ_TIMEOUT_MS 120000
#define MAX_REQUEST (4u << 20)

typedef struct slot {
  uint64_t chunk; /* UINT64_MAX: empty */
  uint32_t len;
  uint8_t *buf;
} slot;

struct diff_disk {
  struct nbd_handle *nbd;
  pid_t pid;
  char *dir, *sock, *log;
  uint64_t size;
  slot cache[SLOTS];
  char error[512];
};

static int oom(qvm_error **err) { return qvm_error_set_errno(err, ENOMEM, "out of memory"); }

static void set_error(diff_disk *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->error, sizeof d->error, fmt, ap);
  va_end(ap);
}

const char *diff_disk_error(const diff_disk *d) { return d->error; }
uint64_t diff_disk_size(const diff_disk *d) { return d->size; }
int diff_disk_pid(const diff_disk *d) { return d->pid; }

/* A qcow2 may name a backing file (QEMU gets ours instead), never an
 * external data file, which QEMU would open by the header's name. */
static int check_file(int fd, const char *path, const char *format, qvm_error **err) {
  if (!strcmp(format, "qcow2")) {
    vm_qcow2_header h;
    int r = vm_qcow2_read_fd(&h, fd, path, err);
    vm_qcow2_policy policy = {
        .what = "disk image", .allow_backing = true, .why = ": qvm diff does not read it"};
    return r < 0 ? r : vm_qcow2_check(&h, path, &policy, err);
  }
  if (strcmp(format, "raw"))
    return qvm_error_set(err, QVM_EINVAL, "image '%s': format '%s' is not raw or qcow2", path,
                         format);
  struct stat st;
  if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)))
    return qvm_error_set(err, QVM_EINVAL, "image '%s' is not a regular file", path);
  return 0;
}

static int open_checked(int *out, const char *path, const char *format, qvm_error **err) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open image '%s'", path);
  int r = check_file(fd, path, format, err);
  if (r < 0) return r;
  *out = TAKE_FD(fd);
  return 0;
}

/* The blockdev graph as JSON: the top image from /dev/fd/4, its backing
 * from /dev/fd/5 or none (null: the header's name is not used). */
static struct json_object *file_node(const char *fdpath) {
  struct json_object *f = json_object_new_object();
  json_object_object_add(f, "driver", json_object_new_string("file"));
  json_object_object_add(f, "filename", json_object_new_string(fdpath));
  json_object_object_add(f, "read-only", json_object_new_boolean(true));
  return f;
}

static struct json_object *format_node(const char *format, const char *fdpath,
                                       struct json_object *backing) {
  struct json_object *n = json_object_new_object();
  json_object_object_add(n, "driver", json_object_new_string(format));
  json_object_object_add(n, "read-only", json_object_new_boolean(true));
  json_object_object_add(n, "file", file_node(fdpath));
  if (!strcmp(format, "qcow2"))
    json_object_object_add(n, "backing", backing);
  else
    json_object_put(backing);
  return n;
}

static char *blockdev_json(const diff_disk_spec *s) {
  struct json_object *backing =
      s->backing ? format_node(s->backing_format, "/dev/fd/5", NULL) : NULL;
  struct json_object *top = format_node(s->format, "/dev/fd/4", backing);
  json_object_object_add(top, "node-name", json_object_new_string("top"));
  const char *t = json_object_to_json_string_ext(top, JSON_C_TO_STRING_PLAIN);
  char *out = t ? strdup(t) : NULL;
  json_object_put(top);
  return out;
}

static bool user_can_read(int fd, uid_t uid, gid_t gid) {
  struct stat st;
  if (fd < 0) return true;
  if (fstat(fd, &st) < 0) return false;
  if (st.st_uid == uid) return st.st_mode & S_IRUSR;
  if (st.st_gid == gid) return st.st_mode & S_IRGRP;
  return st.st_mode & S_IROTH;
}

typedef struct child_plan {
  int listen_fd, top_fd, backing_fd, log_fd;
  bool drop;
  pid_t parent;
  uid_t uid;
  gid_t gid;
  char *const *argv;
} child_plan;

/* In the child between fork and exec: async-signal-safe calls only. */
__attribute__((noreturn)) static void exec_daemon(const child_plan *p) {
  int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
  /* Above every target fd first, so that dup2 never overwrites a source. */
  int l = fcntl(p->listen_fd, F_DUPFD, 10), t = fcntl(p->top_fd, F_DUPFD, 10);
  int b = p->backing_fd >= 0 ? fcntl(p->backing_fd, F_DUPFD, 10) : -1;
  if (nul < 0 || l < 0 || t < 0 || (p->backing_fd >= 0 && b < 0) || dup2(nul, 0) < 0 ||
      dup2(nul, 1) < 0 || dup2(p->log_fd, 2) < 0 || dup2(l, 3) < 0 || dup2(t, 4) < 0 ||
      (b >= 0 && dup2(b, 5) < 0))
    _exit(126);
  close_range(b >= 0 ? 6 : 5, ~0u, 0);
  if (p->drop && (setgroups(0, NULL) < 0 || setgid(p->gid) < 0 || setuid(p->uid) < 0)) _exit(126);
  /* After setuid, which clears it; qvm gone already: it is not waited for. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != p->parent) _exit(126);
  execvp(p->argv[0], p->argv);
  _exit(127);
}

static int listen_socket(int *out, const char *path, qvm_error **err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return qvm_error_set(err, QVM_EINVAL, "socket path '%s' is too long", path);
  strcpy(sa.sun_path, path);
  _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4) < 0)
    return qvm_error_set_errno(err, errno, "cannot listen on '%s'", path);
  *out = TAKE_FD(fd);
  return 0;
}

/* The tail of the daemon's stderr, neutralized (it may quote a header). */
static char *log_tail(const char *log) {
  char *text = NULL;
  size_t len = 0;
  qvm_error *e = NULL;
  if (qvm_read_file(&text, &len, log, 1 << 16, &e) < 0) {
    qvm_error_free(e);
    return strdup("no message");
  }
  while (len && text[len - 1] == '\n') text[--len] = '\0';
  char *last = strrchr(text, '\n');
  const char *line = last ? last + 1 : len ? text : "no message";
  char *shown = qvm_text_for_terminal(line, strlen(line), 0);
  free(text);
  return shown;
}

static int wait_connected(diff_disk *d, qvm_error **err) {
  int64_t deadline = qvm_now_ms() + START_TIMEOUT_MS;
  if (nbd_aio_connect_unix(d->nbd, d->sock) < 0) goto fail;
  while (nbd_aio_is_connecting(d->nbd)) {
    int left = qvm_deadline_left_ms(deadline);
    if (left <= 0)
      return qvm_error_set(err, QVM_ETIMEOUT,
                           "qemu-storage-daemon did not answer on its socket within %d s",
                           START_TIMEOUT_MS / 1000);
    if (nbd_poll(d->nbd, left) < 0) goto fail;
  }
  if (nbd_aio_is_ready(d->nbd)) {
    int64_t size = nbd_get_size(d->nbd);
    if (size < 0) goto fail;
    d->size = (uint64_t)size;
    return 0;
  }
fail:;
  _cleanup_free_ char *why = log_tail(d->log);
  _cleanup_free_ char *nbd = qvm_text_for_terminal(
      nbd_get_error() ? nbd_get_error() : "?", strlen(nbd_get_error() ? nbd_get_error() : "?"), 0);
  return qvm_error_set(err, QVM_EINVAL,
                       "cannot read the disk over nbd: %s (qemu-storage-daemon: %s)",
                       nbd ? nbd : "?", why ? why : "?");
}

static int spawn(diff_disk *d, const diff_disk_spec *s, int top, int backing, qvm_error **err) {
  _cleanup_free_ char *runas = NULL, *graph = blockdev_json(s);
  if (!graph) return oom(err);
  int r = vm_qemu_user_runas(&runas, err);
  if (r < 0) return r;
  child_plan p = {.top_fd = top, .backing_fd = backing};
  unsigned uid = 0, gid = 0;
  if (runas && sscanf(runas, "%u:%u", &uid, &gid) == 2) {
    p.uid = uid;
    p.gid = gid;
    /* Else it runs as qvm (root): the files are opened as /dev/fd/N and
     * the qcow2 header names no data file, so it opens nothing else. */
    p.drop = user_can_read(top, uid, gid) && user_can_read(backing, uid, gid);
  }
  _cleanup_close_ int lfd = -1, logfd = -1;
  if ((r = listen_socket(&lfd, d->sock, err)) < 0) return r;
  logfd = open(d->log, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (logfd < 0) return qvm_error_set_errno(err, errno, "cannot create '%s'", d->log);
  p.listen_fd = lfd;
  p.log_fd = logfd;
  char *argv[] = {"qemu-storage-daemon",
                  "--blockdev",
                  graph,
                  "--nbd-server",
                  "addr.type=fd,addr.str=3",
                  "--export",
                  "type=nbd,id=e,node-name=top,name=disk,writable=off",
                  NULL};
  p.argv = argv;
  p.parent = getpid();
  pid_t pid = fork();
  if (pid == 0) exec_daemon(&p);
  if (pid < 0) return qvm_error_set_errno(err, errno, "cannot run qemu-storage-daemon");
  d->pid = pid;
  /* Only the daemon holds the listening socket now: if it dies, a
   * connection is refused instead of waiting in a backlog forever. */
  return 0;
}

static int make_dir(diff_disk *d, qvm_error **err) {
  _cleanup_free_ char *root = NULL;
  int r = vm_runtime_root(&root, err);
  if (r < 0 || (r = vm_private_dir(root, err)) < 0) return r;
  if (asprintf(&d->dir, "%s/diff-XXXXXX", root) < 0) return oom(err);
  if (!mkdtemp(d->dir)) {
    int e = errno;
    free(d->dir);
    d->dir = NULL;
    return qvm_error_set_errno(err, e, "cannot create a directory in '%s'", root);
  }
  if (asprintf(&d->sock, "%s/nbd.sock", d->dir) < 0 || asprintf(&d->log, "%s/qsd.log", d->dir) < 0)
    return oom(err);
  return 0;
}

static int daemon_exit(diff_disk *d, qvm_error **err) {
  int st = 0;
  if (waitpid(d->pid, &st, WNOHANG) != d->pid) return 0;
  d->pid = 0;
  if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
    return qvm_error_set(err, QVM_EUNAVAIL, "cannot run 'qemu-storage-daemon': not installed");
  return 0;
}

int diff_disk_open(diff_disk **out, const diff_disk_spec *s, qvm_error **err) {
  diff_disk *d = calloc(1, sizeof *d);
  if (!d) return oom(err);
  for (int i = 0; i < SLOTS; i++) d->cache[i].chunk = UINT64_MAX;
  _cleanup_close_ int top = -1, backing = -1;
  int r = open_checked(&top, s->file, s->format, err);
  if (r >= 0 && s->backing) {
    r = strcmp(s->format, "qcow2")
            ? qvm_error_set(err, QVM_EINVAL, "only a qcow2 image has a backing file")
            : open_checked(&backing, s->backing, s->backing_format, err);
  }
  if (r >= 0) r = make_dir(d, err);
  if (r >= 0) r = spawn(d, s, top, backing, err);
  if (r >= 0 && !(d->nbd = nbd_create())) r = oom(err);
  if (r >= 0 && nbd_set_export_name(d->nbd, "disk") < 0) r = oom(err);
  if (r >= 0) {
    r = wait_connected(d, err);
    qvm_error *e = NULL;
    if (r < 0 && daemon_exit(d, &e) < 0) {
      qvm_error_free(*err);
      *err = NULL;
      r = qvm_error_propagate(err, e);
    }
  }
  if (r < 0) {
    diff_disk_close(d);
    return r;
  }
  *out = d;
  return 0;
}

/* One request, bounded in time: a stuck daemon is an error, not a hang. */
static int nbd_read(diff_disk *d, void *buf, uint32_t len, uint64_t off) {
  int64_t cookie = nbd_aio_pread(d->nbd, buf, len, off, NBD_NULL_COMPLETION, 0);
  if (cookie < 0) {
    set_error(d, "nbd read at %llu failed: %s", (unsigned long long)off, nbd_get_error());
    return -1;
  }
  int64_t deadline = qvm_now_ms() + READ_TIMEOUT_MS;
  for (;;) {
    int r = nbd_aio_command_completed(d->nbd, cookie);
    if (r == 1) return 0;
    if (r < 0) {
      set_error(d, "nbd read at %llu failed: %s", (unsigned long long)off, nbd_get_error());
      return -1;
    }
    int left = qvm_deadline_left_ms(deadline);
    if (left <= 0 || nbd_poll(d->nbd, left) < 0) {
      set_error(d, "nbd read at %llu: %s", (unsigned long long)off,
                left <= 0 ? "no answer in time" : nbd_get_error());
      return -1;
    }
  }
}

static slot *chunk_get(diff_disk *d, uint64_t chunk) {
  slot *s = &d->cache[chunk % SLOTS];
  if (s->chunk == chunk) return s;
  if (!s->buf && !(s->buf = malloc(CHUNK))) {
    set_error(d, "out of memory");
    return NULL;
  }
  uint64_t off = chunk * CHUNK;
  uint32_t len = d->size - off < CHUNK ? (uint32_t)(d->size - off) : CHUNK;
  s->chunk = UINT64_MAX;
  if (nbd_read(d, s->buf, len, off) < 0) return NULL;
  s->chunk = chunk;
  s->len = len;
  return s;
}

int diff_disk_read(diff_disk *d, void *buf, uint32_t len, uint64_t off) {
  if (off > d->size || len > d->size - off) {
    set_error(d, "read of %u bytes at %llu lies beyond the disk's end (%llu)", len,
              (unsigned long long)off, (unsigned long long)d->size);
    return -1;
  }
  uint8_t *p = buf;
  if (len >= CHUNK) { /* a file's run of blocks: straight through */
    while (len) {
      uint32_t n = len < MAX_REQUEST ? len : MAX_REQUEST;
      if (nbd_read(d, p, n, off) < 0) return -1;
      p += n, off += n, len -= n;
    }
    return 0;
  }
  while (len) {
    slot *s = chunk_get(d, off / CHUNK);
    if (!s) return -1;
    uint32_t at = (uint32_t)(off % CHUNK), n = s->len - at < len ? s->len - at : len;
    memcpy(p, s->buf + at, n);
    p += n, off += n, len -= n;
  }
  return 0;
}

void diff_disk_close(diff_disk *d) {
  if (!d) return;
  if (d->nbd) nbd_close(d->nbd);
  if (d->pid > 0) {
    kill(d->pid, SIGKILL);
    while (waitpid(d->pid, NULL, 0) < 0 && errno == EINTR) {
    }
  }
  if (d->sock) unlink(d->sock);
  if (d->log) unlink(d->log);
  if (d->dir) rmdir(d->dir);
  for (int i = 0; i < SLOTS; i++) free(d->cache[i].buf);
  free(d->dir);
  free(d->sock);
  free(d->log);
  free(d);
}
