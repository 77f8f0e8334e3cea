/* SPDX-License-Identifier: MIT */
#include "vm/state.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/time.h"
#include <qvm/vm.h>

static int dir_from_env(char **out, const char *env, const char *xdg, const char *xdg_fallback,
                        const char *root_dir, qvm_error **err) {
  const char *v = getenv(env);
  int r = 0;
  if (v && v[0])
    r = asprintf(out, "%s", v);
  else if (geteuid() == 0)
    r = asprintf(out, "%s", root_dir);
  else if ((v = getenv(xdg)) && v[0] == '/')
    r = asprintf(out, "%s/qvm", v);
  else if (xdg_fallback && (v = getenv("HOME")) && v[0] == '/')
    r = asprintf(out, "%s/%s/qvm", v, xdg_fallback);
  else if (!xdg_fallback) {
    qvm_error_set(err, QVM_ENOTFOUND,
                  "cannot tell where qvm keeps its sockets: neither %s nor %s is set (a login "
                  "session sets %s)",
                  env, xdg, xdg);
    return qvm_error_set_hint(err, QVM_ENOTFOUND, "NoRuntimeDir", env);
  } else {
    qvm_error_set(err, QVM_ENOTFOUND,
                  "cannot tell where qvm keeps its files: neither %s, %s nor HOME is set", env,
                  xdg);
    return qvm_error_set_hint(err, QVM_ENOTFOUND, "NoStateDir", env);
  }
  if (r < 0) return qvm_error_set_errno(err, ENOMEM, "cannot build a path");
  if ((*out)[0] != '/') {
    free(*out);
    *out = NULL;
    return qvm_error_set(err, QVM_EINVAL, "%s must be an absolute path", env);
  }
  return 0;
}

int vm_state_root(char **out, qvm_error **err) {
  return dir_from_env(out, "QVM_STATE_DIR", "XDG_DATA_HOME", ".local/share", "/var/lib/qvm", err);
}

int vm_runtime_root(char **out, qvm_error **err) {
  return dir_from_env(out, "QVM_RUNTIME_DIR", "XDG_RUNTIME_DIR", NULL, "/run/qvm", err);
}

void vm_paths_clear(vm_paths *p) {
  char **fields[] = {&p->vms,        &p->dir,          &p->json,     &p->lock,     &p->disk,
                     &p->serial_log, &p->events,       &p->lease,    &p->qemu_log, &p->run_dir,
                     &p->qmp_sock,   &p->console_sock, &p->qga_sock, &p->ctl_sock};
  for (size_t i = 0; i < QVM_ARRAY_SIZE(fields); i++) {
    free(*fields[i]);
    *fields[i] = NULL;
  }
}

static bool join(char **out, const char *dir, const char *file) {
  return asprintf(out, "%s/%s", dir, file) >= 0;
}

int vm_paths_init(vm_paths *out, const char *name, qvm_error **err) {
  int r = qvm_vm_name_check(name, err);
  if (r < 0) return r;
  _cleanup_free_ char *state = NULL, *runtime = NULL;
  if ((r = vm_state_root(&state, err)) < 0 || (r = vm_runtime_root(&runtime, err)) < 0) return r;
  vm_paths p = {0};
  bool ok = join(&p.vms, state, "vms") && join(&p.dir, p.vms, name) &&
            join(&p.json, p.dir, "vm.json") && join(&p.lock, p.dir, "lock") &&
            join(&p.disk, p.dir, "disk.qcow2") && join(&p.serial_log, p.dir, "serial.log") &&
            join(&p.events, p.dir, "events.jsonl") && join(&p.lease, p.dir, "lease.json") &&
            join(&p.qemu_log, p.dir, "qemu.log") && join(&p.run_dir, runtime, name) &&
            join(&p.qmp_sock, p.run_dir, "qmp.sock") &&
            join(&p.console_sock, p.run_dir, "console.sock") &&
            join(&p.qga_sock, p.run_dir, "qga.sock") && join(&p.ctl_sock, p.run_dir, "ctl.sock");
  if (!ok) {
    vm_paths_clear(&p);
    return qvm_error_set_errno(err, ENOMEM, "cannot build paths");
  }
  size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
  /* console.sock is the longest name in run_dir */
  if (strlen(p.console_sock) > max) {
    r = qvm_error_set(err, QVM_EINVAL,
                      "socket path '%s' is longer than %zu bytes: set QVM_RUNTIME_DIR to a "
                      "shorter directory",
                      p.console_sock, max);
    vm_paths_clear(&p);
    return r;
  }
  *out = p;
  return 0;
}

/* One directory that exists: ours, and closed to group and others. */
static int private_dir_check(const char *path, qvm_error **err) {
  struct stat st;
  /* A symlink there is followed only if it is ours (or root's), as for a
   * state root moved to another disk: one another user planted (in /tmp,
   * say) would point qvm at a directory of that user's choosing. */
  if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && st.st_uid != geteuid() && st.st_uid != 0)
    return qvm_error_set(err, QVM_EINVAL,
                         "'%s' is a symbolic link of uid %u, not yours (uid %u): another user "
                         "could point qvm's files anywhere; remove it or choose another directory",
                         path, (unsigned)st.st_uid, (unsigned)geteuid());
  _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &st) < 0)
    return qvm_error_set_errno(err, errno, "cannot open directory '%s'", path);
  if (st.st_uid != geteuid())
    return qvm_error_set(err, QVM_EINVAL,
                         "directory '%s' belongs to uid %u, not to you (uid %u): another user "
                         "could change qvm's files there; remove it or choose another directory",
                         path, (unsigned)st.st_uid, (unsigned)geteuid());
  if ((st.st_mode & 077) && fchmod(fd, 0700) < 0)
    return qvm_error_set_errno(err, errno, "cannot make directory '%s' private (0700)", path);
  return 0;
}

int vm_private_dir(const char *path, qvm_error **err) {
  int r = qvm_mkdir_p(path, 0700, err);
  return r < 0 ? r : private_dir_check(path, err);
}

int vm_state_dirs_prepare(qvm_error **err) {
  _cleanup_free_ char *root = NULL, *vms = NULL;
  int r = vm_state_root(&root, err);
  if (r < 0) return r;
  if (!join(&vms, root, "vms")) return qvm_error_set_errno(err, ENOMEM, "cannot build a path");
  if ((r = vm_private_dir(root, err)) < 0) return r;
  return vm_private_dir(vms, err);
}

int vm_run_dir_prepare(const vm_paths *p, qvm_error **err) {
  _cleanup_free_ char *root = NULL;
  int r = vm_runtime_root(&root, err);
  if (r >= 0) r = vm_private_dir(root, err);
  return r < 0 ? r : vm_private_dir(p->run_dir, err);
}

int vm_boot_id(char out[37], qvm_error **err) {
  _cleanup_free_ char *s = NULL;
  int r = qvm_read_file(&s, NULL, "/proc/sys/kernel/random/boot_id", 128, err);
  if (r < 0) return r;
  if (strlen(s) < 36) return qvm_error_set(err, QVM_EPROTO, "boot id '%s' is malformed", s);
  memcpy(out, s, 36);
  out[36] = '\0';
  return 0;
}

int vm_proc_start_time(uint64_t *out, pid_t pid, qvm_error **err) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  _cleanup_free_ char *s = NULL;
  int r = qvm_read_file(&s, NULL, path, 4096, err);
  if (r < 0) return r;
  /* comm (field 2) may hold spaces and parentheses: skip to the last ')'. */
  char *p = strrchr(s, ')');
  if (!p) return qvm_error_set(err, QVM_EPROTO, "%s is malformed", path);
  p++;
  /* After ')' come fields 3, 4, ...; field 22 is the 20th of them. */
  for (int field = 3; field < 22; field++) {
    while (*p == ' ') p++;
    while (*p && *p != ' ') p++;
    if (!*p) return qvm_error_set(err, QVM_EPROTO, "%s is truncated", path);
  }
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(p, &end, 10);
  if (errno || end == p) return qvm_error_set(err, QVM_EPROTO, "%s is malformed", path);
  *out = v;
  return 0;
}

int vm_proc_record(vm_proc *out, pid_t pid, qvm_error **err) {
  vm_proc p = {.pid = pid};
  int r = vm_boot_id(p.boot_id, err);
  if (r >= 0) r = vm_proc_start_time(&p.start_time, pid, err);
  if (r < 0) return r;
  *out = p;
  return 0;
}

bool vm_proc_matches(const vm_proc *rec, const char *boot_id) {
  if (rec->pid <= 0 || strcmp(rec->boot_id, boot_id)) return false;
  char now[37];
  if (vm_boot_id(now, NULL) < 0 || strcmp(now, boot_id)) return false;
  uint64_t st = 0;
  if (vm_proc_start_time(&st, rec->pid, NULL) < 0) return false;
  if (st != rec->start_time) return false;
  /* A zombie has exited: it only waits for its parent to reap it. */
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)rec->pid);
  _cleanup_free_ char *s = NULL;
  if (qvm_read_file(&s, NULL, path, 4096, NULL) < 0) return false;
  const char *p = strrchr(s, ')');
  return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

bool vm_proc_alive(const vm_proc *rec) {
  char boot[37];
  if (vm_boot_id(boot, NULL) < 0) return false;
  return vm_proc_matches(rec, boot);
}

int vm_proc_pidfd(const vm_proc *rec) {
  if (rec->pid <= 0) return -1;
  int fd = (int)syscall(SYS_pidfd_open, rec->pid, 0);
  if (fd < 0) return -1;
  /* Checked after opening: the pidfd pins the process the check saw. */
  if (!vm_proc_alive(rec)) {
    close(fd);
    return -1;
  }
  return fd;
}

struct json_object *vm_proc_to_json(const vm_proc *p) {
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "pid", json_object_new_int(p->pid));
  json_object_object_add(o, "start_time", json_object_new_uint64(p->start_time));
  json_object_object_add(o, "boot_id", json_object_new_string(p->boot_id));
  return o;
}

int vm_proc_from_json(vm_proc *out, struct json_object *o, qvm_error **err) {
  struct json_object *pid = NULL, *st = NULL, *boot = NULL;
  if (!o || !json_object_object_get_ex(o, "pid", &pid) ||
      !json_object_object_get_ex(o, "start_time", &st) ||
      !json_object_object_get_ex(o, "boot_id", &boot) || !json_object_is_type(pid, json_type_int) ||
      !json_object_is_type(st, json_type_int) || !json_object_is_type(boot, json_type_string) ||
      json_object_get_string_len(boot) != 36)
    return qvm_error_set(err, QVM_EINVAL, "process record is malformed");
  int64_t v = json_object_get_int64(pid);
  if (v <= 0 || v > INT32_MAX) return qvm_error_set(err, QVM_EINVAL, "process id is out of range");
  *out = (vm_proc){.pid = (pid_t)v, .start_time = json_object_get_uint64(st)};
  memcpy(out->boot_id, json_object_get_string(boot), 37);
  return 0;
}

int vm_doc_read(struct json_object **out, const char *path, qvm_error **err) {
  _cleanup_free_ char *s = NULL;
  size_t len = 0;
  qvm_error *e = NULL;
  if (qvm_read_file(&s, &len, path, 1 << 20, &e) < 0) {
    if (qvm_error_errno(e) != ENOENT) return qvm_error_propagate(err, e);
    qvm_error_free(e);
    return qvm_error_set(err, QVM_ENOTFOUND, "'%s' not found", path);
  }
  return vm_doc_parse(out, s, len, path, err);
}

int vm_doc_parse(struct json_object **out, const char *text, size_t len, const char *what,
                 qvm_error **err) {
  struct json_tokener *tok = json_tokener_new_ex(64);
  if (!tok) return qvm_error_set_errno(err, ENOMEM, "cannot parse '%s'", what);
  struct json_object *doc = json_tokener_parse_ex(tok, text, (int)len);
  bool complete = json_tokener_get_error(tok) == json_tokener_success &&
                  json_tokener_get_parse_end(tok) == len && strlen(text) == len;
  json_tokener_free(tok);
  if (!doc || !complete || !json_object_is_type(doc, json_type_object)) {
    json_object_put(doc);
    return qvm_error_set(err, QVM_EINVAL, "'%s' is not a json object", what);
  }
  *out = doc;
  return 0;
}

void vm_lock_note(int fd, const char *op) {
  char holder[64];
  int len = snprintf(holder, sizeof holder, "%s %d\n", op, (int)getpid());
  if (ftruncate(fd, 0) == 0 && pwrite(fd, holder, (size_t)len, 0) < 0) {
    /* The holder note is advisory; the flock is what counts. */
  }
}

/* The pid the holder note names, 0 when none. */
static int lock_note_pid(int fd) {
  char buf[128] = "", op[32];
  ssize_t len = pread(fd, buf, sizeof buf - 1, 0);
  buf[len > 0 ? len : 0] = '\0';
  int pid = 0;
  return sscanf(buf, "%31s %d", op, &pid) == 2 ? pid : 0;
}

static void lock_holder(char *out, size_t n, int fd) {
  char buf[128] = "";
  ssize_t len = pread(fd, buf, sizeof buf - 1, 0);
  buf[len > 0 ? len : 0] = '\0';
  char op[32] = "";
  int pid = 0;
  if (sscanf(buf, "%31s %d", op, &pid) == 2) {
    for (char *c = op; *c; c++)
      if (!isalnum((unsigned char)*c) && *c != '-') *c = '?';
    snprintf(out, n, "'%s' (pid %d)", op, pid);
  } else {
    snprintf(out, n, "another operation");
  }
}

/* The lock file may be removed (qvm rm) while we wait on it: only a lock on
 * the file that is still at its path counts. */
static bool lock_is_current(int fd, const char *path) {
  struct stat a, b;
  return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

int vm_lock_acquire(int *out, const vm_paths *p, const char *op, int timeout_ms, qvm_error **err) {
  int64_t deadline = qvm_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
  for (;;) {
    _cleanup_close_ int fd = open(p->lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
      return errno == ENOENT
                 ? qvm_error_set(err, QVM_ENOTFOUND, "vm '%s' not found", strrchr(p->dir, '/') + 1)
                 : qvm_error_set_errno(err, errno, "cannot open '%s'", p->lock);
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
      if (!lock_is_current(fd, p->lock)) continue;
      vm_lock_note(fd, op);
      *out = TAKE_FD(fd);
      return 0;
    }
    if (errno != EWOULDBLOCK && errno != EINTR)
      return qvm_error_set_errno(err, errno, "cannot lock '%s'", p->lock);
    if (qvm_now_ms() >= deadline) {
      char holder[96];
      lock_holder(holder, sizeof holder, fd);
      return qvm_error_set(err, QVM_EBUSY, "%s holds the vm's lock (waited %d ms)", holder,
                           timeout_ms);
    }
    usleep(20 * 1000);
  }
}

void vm_lock_release(int fd) {
  if (fd < 0) return;
  /* A note that names another process is that process's: a shim that
   * inherited this lock (qvm start hands it over) and holds it on. */
  if (lock_note_pid(fd) == (int)getpid() && ftruncate(fd, 0) < 0) {
    /* advisory note only */
  }
  close(fd);
}
