/* SPDX-License-Identifier: MIT */
/* Starting QEMU from the shim: sockets created here and handed over as fds,
 * so QMP answers the moment QEMU does; and starting a shim detached. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <qvm/text.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "vm/argv.h"
#include "vm/handle.h"
#include "vm/image.h"
#include "vm/mount.h"
#include "vm/mount.h"
#include "vm/qemu_user.h"
#include "vm/shim.h"

/* QEMU's fds: 3 QMP, 4 serial console, 5 the tap (bridge net). */
#define SHIM_TAP_FD 5
#define SHIM_INCOMING_FD 6 /* a fork's migration stream */

static int unix_listen(int *out, const char *path, qvm_error **err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return qvm_error_set(err, QVM_EINVAL, "socket path '%s' is too long", path);
  strcpy(sa.sun_path, path);
  _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot create a socket");
  if (unlink(path) < 0 && errno != ENOENT)
    return qvm_error_set_errno(err, errno, "cannot remove stale socket '%s'", path);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 8) < 0)
    return qvm_error_set_errno(err, errno, "cannot listen on '%s'", path);
  *out = TAKE_FD(fd);
  return 0;
}

static int unix_connect(int *out, const char *path, qvm_error **err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  strcpy(sa.sun_path, path);
  _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot create a socket");
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    return qvm_error_set_errno(err, errno, "cannot connect to '%s'", path);
  *out = TAKE_FD(fd);
  return 0;
}

/* A free loopback port for QEMU's hostfwd. QEMU binds it a moment later, so
 * another process can take it in between; the shim then sees QEMU's "Could
 * not set up host forwarding rule" and starts it again on a new port.
 * QVM_TEST_SSH_PORT forces the first attempt's port (tests of that retry). */
/* The port the VM's SSH forward had last time (VM_SSH_PORT_FILE), if it is
 * free now: a saved `qvm ssh-config` keeps working across restarts. */
static bool last_port(uint16_t *out, const char *dir) {
  char path[PATH_MAX], buf[16];
  snprintf(path, sizeof path, "%s/%s", dir, VM_SSH_PORT_FILE);
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
  if (n <= 0) return false;
  buf[n] = '\0';
  char *end = NULL;
  unsigned long v = strtoul(buf, &end, 10);
  if (end == buf || (*end && *end != '\n') || v < 1024 || v > 65535) return false;
  _cleanup_close_ int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)v),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  /* as slirp binds it: connections of the last run may linger in TIME_WAIT */
  int one = 1;
  if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      bind(s, (struct sockaddr *)&sa, sizeof sa) < 0)
    return false;
  *out = (uint16_t)v;
  return true;
}

static int free_port(uint16_t *out, int attempt, const char *dir, qvm_error **err) {
  if (attempt == 0 && !getenv("QVM_TEST_SSH_PORT") && last_port(out, dir)) return 0;
  const char *forced = attempt == 0 ? getenv("QVM_TEST_SSH_PORT") : NULL;
  if (forced && forced[0]) {
    char *end = NULL;
    unsigned long v = strtoul(forced, &end, 10);
    if (*end || v == 0 || v > 65535)
      return qvm_error_set(err, QVM_EINVAL, "QVM_TEST_SSH_PORT '%s' is not a port", forced);
    *out = (uint16_t)v;
    return 0;
  }
  _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sa;
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
    return qvm_error_set_errno(err, errno, "cannot find a free port for ssh");
  *out = ntohs(sa.sin_port);
  return 0;
}

static int open_logs(int *out_qemu_log, const vm_paths *p, qvm_error **err) {
  int fd = open(p->serial_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot create '%s'", p->serial_log);
  close(fd);
  /* O_APPEND: the shim bounds it by copy and truncation, as serial.log */
  fd = open(p->qemu_log, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot create '%s'", p->qemu_log);
  *out_qemu_log = fd;
  return 0;
}

/* The variables the shim (vm/, net/, qmp/, util/ and QEMU through it) reads,
 * passed through as they are; the state and runtime roots are passed as the
 * absolute directories this process resolved. Sanitizer options only
 * matter to a sanitizer build. */
static const char *const shim_env_pass[] = {
    "QVM_QEMU",         "QVM_QEMU_SANDBOX",   "QVM_QEMU_USER",       "QVM_SERIAL_LOG_MAX",
    "QVM_QEMU_LOG_MAX", "QVM_EVENTS_LOG_MAX", "QVM_TEST_NO_INOTIFY", "QVM_TEST_SSH_PORT",
    "ASAN_OPTIONS",     "UBSAN_OPTIONS",      "LSAN_OPTIONS"};

/* QEMU's environment: PATH and the same QVM_* variables as the shim's (a
 * test's fake QEMU reads its settings from them), nothing else. In the
 * exec'd shim that is all there is anyway; `qvm run` runs the shim in the
 * caller's process, whose environment may hold secrets a guest that took
 * QEMU over could read from /proc/self/environ. NULL on OOM. */
static char **qemu_envp(void) {
  size_t n = 0, cap = QVM_ARRAY_SIZE(shim_env_pass) + 2;
  char **envp = calloc(cap, sizeof *envp), *kv = NULL;
  const char *path = getenv("PATH");
  /* (asprintf leaves its pointer undefined on failure: never store it) */
  if (!envp ||
      asprintf(&kv, "PATH=%s", path && path[0] ? path : "/usr/local/bin:/usr/bin:/bin") < 0)
    goto oom;
  envp[n++] = kv;
  for (size_t i = 0; i < QVM_ARRAY_SIZE(shim_env_pass); i++) {
    const char *v = getenv(shim_env_pass[i]);
    if (!v) continue;
    if (asprintf(&kv, "%s=%s", shim_env_pass[i], v) < 0) goto oom;
    envp[n++] = kv;
  }
  return envp;
oom:
  if (envp)
    for (size_t i = 0; i < cap; i++) free(envp[i]);
  free(envp);
  return NULL;
}

static void qemu_envp_free(char **envp) {
  for (size_t i = 0; envp && envp[i]; i++) free(envp[i]);
  free(envp);
}

/* In the child between fork and exec: only async-signal-safe calls. */
__attribute__((noreturn)) static void exec_qemu(char **argv, char **envp, int qmp, int console,
                                                int log, int tap, int incoming) {
  setsid();
  int q = fcntl(qmp, F_DUPFD_CLOEXEC, 10), c = fcntl(console, F_DUPFD_CLOEXEC, 10);
  int l = fcntl(log, F_DUPFD_CLOEXEC, 10);
  int t = tap >= 0 ? fcntl(tap, F_DUPFD_CLOEXEC, 10) : -1;
  int i = incoming >= 0 ? fcntl(incoming, F_DUPFD_CLOEXEC, 10) : -1;
  /* Not O_CLOEXEC: with fd 0 closed this open returns 0, and dup2(0, 0)
   * would leave close-on-exec set on QEMU's stdin. Any other number is
   * closed below. */
  int nul = open("/dev/null", O_RDWR);
  if (q < 0 || c < 0 || l < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(l, 1) < 0 || dup2(l, 2) < 0 ||
      dup2(q, 3) < 0 || dup2(c, 4) < 0 || (tap >= 0 && (t < 0 || dup2(t, SHIM_TAP_FD) < 0)) ||
      (incoming >= 0 && (i < 0 || dup2(i, SHIM_INCOMING_FD) < 0)))
    _exit(126);
  if (tap < 0) close_range(SHIM_TAP_FD, SHIM_TAP_FD, 0);
  if (incoming < 0) close_range(SHIM_INCOMING_FD, SHIM_INCOMING_FD, 0);
  close_range(SHIM_INCOMING_FD + 1, ~0U, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL); /* the caller may ignore some */
  execvpe(argv[0], argv, envp);
  dprintf(2, "qvm: cannot run '%s': %s\n", argv[0], strerror(errno));
  _exit(127);
}

static const char *qemu_binary(void) {
  const char *q = getenv("QVM_QEMU");
  return q && q[0] ? q : "qemu-system-x86_64";
}

static bool sandbox_wanted(void) {
  const char *s = getenv("QVM_QEMU_SANDBOX");
  return !s || strcmp(s, "0") != 0;
}

/* The disks' headers, read by qvm itself just before QEMU (still root)
 * opens what they name: a guest that took QEMU over may have rewritten them. */
static int verify_disks(const shim *s, qvm_error **err) {
  int r = vm_image_verify_drives(s->vm->spec, s->vm->paths.dir, err);
  const vm_spec *sp = s->vm->spec;
  if (r < 0 || !sp->grow_partition || !sp->image || !sp->disk_bytes) return r;
  /* The guest's growpart is off (create grew the partition): after a
   * qvm resize, the partition grows here, before the boot, and the
   * guest's resizefs grows the file system. The old size is the table's
   * own (0). */
  char disk[PATH_MAX];
  snprintf(disk, sizeof disk, "%s/disk.qcow2", s->vm->paths.dir);
  vm_image_grown g;
  return vm_image_grow_partition(&g, disk, sp->image, sp->image_format, sp->allow_backing, 0,
                                 sp->disk_bytes, err);
}

/* Without a pidfd the shim could neither watch nor stop QEMU: it must not
 * stay behind, paused and orphaned (EMFILE, a kernel before 5.3). */
static int shim_lost_qemu(shim *s, qvm_error **err) {
  int e = errno;
  kill(s->qemu_pid, SIGKILL);
  while (waitpid(s->qemu_pid, NULL, 0) < 0 && errno == EINTR) {
  }
  s->qemu_pid = 0;
  s->child = false;
  return qvm_error_set_errno(err, e, "cannot open a pidfd for qemu");
}

int shim_take_incoming(shim *s, qvm_error **err) {
  char path[PATH_MAX];
  /* A saved state a killed qvm fork left (guest memory: secrets): no fork
   * of this vm is under way while it starts. */
  snprintf(path, sizeof path, "%s/%s", s->vm->paths.dir, VM_FORK_STATE_FILE);
  unlink(path);
  snprintf(path, sizeof path, "%s/%s", s->vm->paths.dir, VM_INCOMING_FILE);
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0 && errno == ENOENT) return 0;
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open '%s'", path);
  struct stat st;
  if (fstat(fd, &st) < 0) return qvm_error_set_errno(err, errno, "cannot stat '%s'", path);
  /* qvm's own file (qvm fork made it): a regular file of this user's */
  if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
    return qvm_error_set(err, QVM_EINVAL,
                         "'%s' is not a private regular file of this user: qvm did not resume "
                         "from it (remove it to boot the vm from its disk)",
                         path);
  /* Once only: the disk moves on from here, and this memory would not match it. */
  if (unlink(path) < 0) return qvm_error_set_errno(err, errno, "cannot remove '%s'", path);
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
    return qvm_error_set_errno(err, errno, "cannot set up '%s'", path);
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "bytes", json_object_new_int64((int64_t)st.st_size));
  struct json_object *ev = json_object_new_object();
  json_object_object_add(ev, "event", json_object_new_string("qvm-incoming"));
  json_object_object_add(ev, "data", d);
  vm_events_append(s->events_fd, ev);
  s->incoming_fd = TAKE_FD(fd);
  return 0;
}

int shim_launch_qemu(shim *s, qvm_error **err) {
  const vm_paths *p = &s->vm->paths;
  _cleanup_close_ int qmp_listen = -1, console_listen = -1, qmp_client = -1, log = -1, tap = -1;
  _cleanup_free_ char *runas = NULL;
  /* The shim and QEMU make only private files (sockets, logs, qga.sock). */
  umask(077);
  int r = vm_qemu_user_runas(&runas, err);
  if (r >= 0) r = vm_run_dir_prepare(p, err);
  if (r >= 0) r = unix_listen(&qmp_listen, p->qmp_sock, err);
  if (r >= 0) r = unix_listen(&console_listen, p->console_sock, err);
  /* Connected before QEMU exists: the connection waits in the backlog, and
   * if QEMU dies first it is reset at once instead of timing out. */
  if (r >= 0) r = unix_connect(&qmp_client, p->qmp_sock, err);
  if (r >= 0) r = open_logs(&log, p, err);
  if (r >= 0 && s->vm->spec->net == VM_NET_USER && s->vm->spec->ssh_forward)
    r = free_port(&s->ssh_port, s->launch_attempt, p->dir, err);
  /* The shim keeps no fd on the tap: it goes away with QEMU's last one,
   * even if the shim itself is killed. */
  if (r >= 0) r = vm_net_start(&s->net, &tap, s->vm, true, s->events_fd, err);
  if (r < 0) return r;
  vm_argv_input in = {.spec = s->vm->spec,
                      .qemu = qemu_binary(),
                      .vm_dir = p->dir,
                      .accel = s->cfg.accel,
                      .qmp_fd = 3,
                      .console_fd = 4,
                      .serial_log = p->serial_log,
                      .ssh_port = s->ssh_port,
                      .tap_fd = tap >= 0 ? SHIM_TAP_FD : -1,
                      .incoming_fd = s->incoming_fd >= 0 ? SHIM_INCOMING_FD : 0,
                      .qga_path = p->qga_sock,
                      .sandbox = sandbox_wanted(),
                      .runas = runas,
                      .mount_sock_dir = p->run_dir};
  _cleanup_(vm_argv_freep) vm_argv *argv = NULL;
  if ((r = vm_argv_build(&argv, &in, err)) < 0) return r;
  if ((r = verify_disks(s, err)) < 0) return r;
  if ((r = vm_mounts_verify(s->vm->spec, runas, err)) < 0) return r;
  /* Listening before QEMU connects; the shim stops and reaps them once
   * QEMU is gone (vm_shim_run, shim_retry_port). */
  if ((r = vm_virtiofsd_start(s->vfs_pids, &s->n_vfs, s->vm->spec, p->run_dir, runas, log, err)) <
      0)
    return r;
  snprintf(s->runas, sizeof s->runas, "%s", runas ? runas : "");
  char **envp = qemu_envp();
  if (!envp) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  /* An earlier attempt (its SSH port was taken) read some of it. */
  if (s->incoming_fd >= 0 && lseek(s->incoming_fd, 0, SEEK_SET) < 0) {
    qemu_envp_free(envp);
    return qvm_error_set_errno(err, errno, "cannot rewind the fork's state");
  }
  s->t_spawn_us = qvm_realtime_us();
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    qemu_envp_free(envp);
    return qvm_error_set_errno(err, e, "cannot fork qemu");
  }
  if (pid == 0) exec_qemu(argv->argv, envp, qmp_listen, console_listen, log, tap, s->incoming_fd);
  qemu_envp_free(envp);
  s->qemu_pid = pid;
  s->child = true;
  s->pidfd = shim_pidfd_open(pid);
  if (s->pidfd < 0) return shim_lost_qemu(s, err);
  s->qmp_client_fd = TAKE_FD(qmp_client);
  if (s->cfg.foreground) return shim_watchdog_start(s, err);
  return 0;
}

/* --- starting the guest ------------------------------------------------ */

#define SHIM_CONT_TIMEOUT_MS 5000

/* QEMU's run state from query-status ("prelaunch", "running", ...). */
static int qemu_status(char **out, shim *s, qvm_error **err) {
  struct json_object *reply = NULL, *status = NULL;
  int r = qvm_qmp_execute_timeout(&reply, s->qmp, "query-status", NULL, SHIM_CONT_TIMEOUT_MS, err);
  if (r < 0) return r;
  const char *v =
      json_object_object_get_ex(reply, "status", &status) ? json_object_get_string(status) : NULL;
  *out = v ? qvm_text_for_terminal(v, strlen(v), 0) : NULL;
  json_object_put(reply);
  if (!*out) return qvm_error_set(err, QVM_EPROTO, "qemu's query-status has no status");
  return 0;
}

/* The ids on a "Uid:" or "Gid:" line of /proc/PID/status: real, effective,
 * saved and filesystem must all be want. */
static bool proc_ids_are(const char *status, const char *key, unsigned long want) {
  const char *line = strstr(status, key);
  unsigned long id[4];
  return line &&
         sscanf(line + strlen(key), "%lu %lu %lu %lu", &id[0], &id[1], &id[2], &id[3]) == 4 &&
         id[0] == want && id[1] == want && id[2] == want && id[3] == want;
}

/* The "Groups:" line lists no group but want (or none at all). */
static bool proc_groups_are(const char *status, unsigned long want) {
  const char *p = strstr(status, "\nGroups:");
  if (!p) return false;
  for (p += strlen("\nGroups:"); *p && *p != '\n';) {
    if (*p == ' ' || *p == '\t') {
      p++;
      continue;
    }
    char *end = NULL;
    errno = 0;
    unsigned long g = strtoul(p, &end, 10);
    if (errno || end == p || g != want || (*end && *end != ' ' && *end != '\t' && *end != '\n'))
      return false;
    p = end;
  }
  return true;
}

/* A "CapEff:"-style line (hex mask, or "NoNewPrivs:" decimal) is want. */
static bool proc_field_is(const char *status, const char *key, int base, unsigned long long want) {
  const char *p = strstr(status, key);
  if (!p) return false;
  p += strlen(key);
  while (*p == ' ' || *p == '\t') p++;
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(p, &end, base);
  return !errno && end != p && (*end == '\n' || !*end) && v == want;
}

const char *shim_status_unprivileged(const char *status, unsigned long uid, unsigned long gid,
                                     bool no_new_privs) {
  if (!proc_ids_are(status, "\nUid:", uid)) return "its uids are not all the target uid";
  if (!proc_ids_are(status, "\nGid:", gid)) return "its gids are not all the target gid";
  if (!proc_groups_are(status, gid)) return "it kept supplementary groups";
  if (!proc_field_is(status, "\nCapPrm:", 16, 0) || !proc_field_is(status, "\nCapEff:", 16, 0))
    return "it kept capabilities";
  if (no_new_privs && !proc_field_is(status, "\nNoNewPrivs:", 10, 1))
    return "no_new_privs is not set";
  return NULL;
}

/* QEMU was told to drop to s->runas: it must have done so before its guest
 * runs a single instruction (QEMU is our unreaped child: its pid is its own). */
static int check_dropped(const shim *s, qvm_error **err) {
  unsigned long uid = 0, gid = 0;
  if (!s->runas[0]) return 0;
  if (sscanf(s->runas, "%lu:%lu", &uid, &gid) != 2)
    return qvm_error_set(err, QVM_EINVAL, "qemu user '%s' is not UID:GID", s->runas);
  char path[64], buf[8192];
  snprintf(path, sizeof path, "/proc/%d/status", (int)s->qemu_pid);
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
  if (n <= 0) return qvm_error_set_errno(err, n < 0 ? errno : EIO, "cannot read '%s'", path);
  buf[n] = '\0';
  const char *why = shim_status_unprivileged(buf, uid, gid, sandbox_wanted());
  if (why)
    return qvm_error_set(err, QVM_EPROTO,
                         "qemu (pid %d) did not drop its privileges to %s (-runas): %s; its "
                         "guest was not started",
                         (int)s->qemu_pid, s->runas, why);
  return 0;
}

static void event_cont(const shim *s, const char *status) {
  struct json_object *ev = json_object_new_object(), *d = json_object_new_object();
  json_object_object_add(d, "status", json_object_new_string(status));
  /* check_dropped saw QEMU's uid and gid at these */
  if (s->runas[0]) json_object_object_add(d, "dropped_to", json_object_new_string(s->runas));
  json_object_object_add(ev, "event", json_object_new_string("qvm-cont"));
  json_object_object_add(ev, "data", d);
  vm_events_append(s->events_fd, ev);
}

#define SHIM_INCOMING_TIMEOUT_MS 300000
#define SHIM_INCOMING_POLL_MS 20

/* A fork's QEMU loads its state while the shim waits: query-migrate until
 * "completed" (QEMU exits by itself when the load fails; qemu.log says why). */
static int incoming_wait(shim *s, qvm_error **err) {
  int64_t deadline = qvm_now_ms() + SHIM_INCOMING_TIMEOUT_MS;
  for (;;) {
    struct json_object *reply = NULL, *v = NULL;
    /* QEMU's main loop is busy while it reads: its monitor may lag */
    int r = qvm_qmp_execute_timeout(&reply, s->qmp, "query-migrate", NULL,
                                    (int)qvm_deadline_left_ms(deadline), err);
    if (r < 0) return qvm_error_prefix(err, "while qemu loaded the fork's state");
    const char *st =
        json_object_object_get_ex(reply, "status", &v) && json_object_is_type(v, json_type_string)
            ? json_object_get_string(v)
            : "";
    bool done = !strcmp(st, "completed"), failed = !strcmp(st, "failed");
    _cleanup_free_ char *why = failed && json_object_object_get_ex(reply, "error-desc", &v) &&
                                       json_object_is_type(v, json_type_string)
                                   ? qvm_text_for_terminal(json_object_get_string(v),
                                                           (size_t)json_object_get_string_len(v), 0)
                                   : NULL;
    json_object_put(reply);
    if (done) return 0;
    if (failed)
      return qvm_error_set(err, QVM_EQMP, "qemu could not load the fork's state: %s",
                           why ? why : "no reason given");
    if (qvm_deadline_left_ms(deadline) <= 0)
      return qvm_error_set(err, QVM_ETIMEOUT, "qemu did not load the fork's state within %d s",
                           SHIM_INCOMING_TIMEOUT_MS / 1000);
    usleep(SHIM_INCOMING_POLL_MS * 1000);
  }
}

int shim_start_guest(shim *s, qvm_error **err) {
  _cleanup_free_ char *before = NULL, *after = NULL;
  int r = qemu_status(&before, s, err);
  if (r < 0) return r;
  if (s->incoming_fd >= 0) {
    /* The source was paused when it saved: QEMU ends the load paused. */
    if (strcmp(before, "inmigrate") && strcmp(before, "paused"))
      return qvm_error_set(err, QVM_EPROTO, "qemu is '%s' before it loaded the fork's state",
                           before);
    if ((r = check_dropped(s, err)) < 0 || (r = incoming_wait(s, err)) < 0) return r;
    close(s->incoming_fd);
    s->incoming_fd = -1;
    free(before);
    if ((r = qemu_status(&before, s, err)) < 0) return r;
    if (strcmp(before, "paused") && strcmp(before, "running"))
      return qvm_error_set(err, QVM_EPROTO, "qemu is '%s' after it loaded the fork's state",
                           before);
  } else if (strcmp(before, "prelaunch") != 0) {
    return qvm_error_set(err, QVM_EPROTO, "qemu is '%s' before qvm started its guest", before);
  } else if ((r = check_dropped(s, err)) < 0) {
    return r;
  }
  event_cont(s, before);
  r = qvm_qmp_execute_timeout(NULL, s->qmp, "cont", NULL, SHIM_CONT_TIMEOUT_MS, err);
  if (r >= 0) r = qemu_status(&after, s, err);
  if (r < 0) return r;
  if (strcmp(after, "running") != 0)
    return qvm_error_set(err, QVM_EPROTO, "qemu is '%s' after cont, not 'running'", after);
  return 0;
}

/* --- starting a detached shim ------------------------------------------ */

static int read_ready(int fd, int timeout_ms, qvm_error **err) {
  char buf[4096];
  size_t len = 0;
  int64_t deadline = qvm_now_ms() + timeout_ms;
  for (;;) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int n = poll(&pfd, 1, qvm_deadline_left_ms(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0)
      return qvm_error_set(err, QVM_ETIMEOUT, "qemu's monitor did not answer within %d ms",
                           timeout_ms);
    ssize_t got = read(fd, buf + len, sizeof buf - 1 - len);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    len += (size_t)got;
    if (len == sizeof buf - 1) break;
  }
  buf[len] = '\0';
  if (!strcmp(buf, "OK\n")) return 0;
  int code = 0, off = 0;
  if (sscanf(buf, "E%d %n", &code, &off) == 1 && off > 0 && code < 0) {
    return qvm_error_set(err, code, "%s", buf + off);
  }
  return qvm_error_set(err, QVM_EPROTO, "the shim exited before qemu was ready");
}

/* Whether a binary found by searching (not named by $QVM_SHIM) may be run,
 * maybe as root: the file and every directory above it, symlinks resolved,
 * belong to root or to us and nobody else can write them (a world-writable
 * directory with the sticky bit, like /tmp, is fine: its entries are
 * checked on their own). Otherwise another local user could plant a
 * qvm-shim where the search looks, e.g. /tmp/libexec/qvm/qvm-shim for a
 * build tree in /tmp/build. */
static bool path_trusted(const char *path) {
  _cleanup_free_ char *real = realpath(path, NULL);
  if (!real) return false;
  uid_t me = geteuid();
  for (char *end = real + strlen(real); end > real;) {
    struct stat st;
    if (stat(real, &st) < 0 || (st.st_uid != 0 && st.st_uid != me)) return false;
    bool sticky_dir = S_ISDIR(st.st_mode) && (st.st_mode & S_ISVTX);
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !sticky_dir) return false;
    end = strrchr(real, '/');
    if (!end) return false;
    *end = '\0';
  }
  struct stat root;
  return stat("/", &root) == 0 && (root.st_uid == 0 || root.st_uid == me) &&
         !(root.st_mode & (S_IWGRP | S_IWOTH));
}

/* 1: found and trusted; 0: not there, or not trusted (*untrusted set). */
static int shim_candidate(char **out, const char *dir, const char *rel, bool *untrusted) {
  free(*out);
  *out = NULL;
  if (dir[0] ? asprintf(out, "%s/%s", dir, rel) < 0 : !(*out = strdup(rel))) return -ENOMEM;
  if (access(*out, X_OK) != 0) return 0;
  if (path_trusted(*out)) return 1;
  *untrusted = true;
  return 0;
}

/* Where qvm-shim is, the first that exists of: $QVM_SHIM; relative to the
 * file this code was loaded from (libqvm.so in the build tree has qvm-shim
 * beside it; installed, it is QVM_SHIM_FROM_LIBDIR from the library's dir,
 * so a relocated prefix works); next to the running program (a program
 * linked statically in the build tree); the install's libexec dir. The
 * install path comes last so that a build tree never runs an installed,
 * maybe older, shim. */
static int shim_binary(char **out, qvm_error **err) {
  const char *env = getenv("QVM_SHIM");
  if (env && env[0]) {
    if (env[0] != '/') return qvm_error_set(err, QVM_EINVAL, "QVM_SHIM '%s' is not absolute", env);
    *out = strdup(env);
    return *out ? 0 : qvm_error_set_errno(err, ENOMEM, "out of memory");
  }
  *out = NULL;
  char dir[4096] = "", self[4096] = "";
  Dl_info info;
  if (dladdr((void *)shim_binary, &info) && info.dli_fname && info.dli_fname[0] == '/' &&
      strlen(info.dli_fname) < sizeof dir) {
    snprintf(dir, sizeof dir, "%s", info.dli_fname);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
  }
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) *slash = '\0';
  } else {
    self[0] = '\0';
  }
  int r = 0;
  bool untrusted = false;
  if (dir[0] && (r = shim_candidate(out, dir, "qvm-shim", &untrusted)) != 0) goto done;
#ifdef QVM_SHIM_FROM_LIBDIR
  if (dir[0] && (r = shim_candidate(out, dir, QVM_SHIM_FROM_LIBDIR, &untrusted)) != 0) goto done;
#endif
  if (self[0] && (r = shim_candidate(out, self, "qvm-shim", &untrusted)) != 0) goto done;
#ifdef QVM_SHIM_INSTALL_PATH
  if ((r = shim_candidate(out, "", QVM_SHIM_INSTALL_PATH, &untrusted)) != 0) goto done;
#endif
done:
  if (r > 0) return 0;
  free(*out);
  *out = NULL;
  if (r < 0) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  return qvm_error_set(err, QVM_ENOTFOUND,
                       "qvm-shim not found%s: not next to '%s' nor next to '%s'%s%s (set QVM_SHIM)",
                       untrusted ? " (one was skipped: it or a directory above it may be written "
                                   "by another user)"
                                 : "",
                       dir[0] ? dir : "?", self[0] ? self : "?",
#ifdef QVM_SHIM_INSTALL_PATH
                       ", nor at ", QVM_SHIM_INSTALL_PATH
#else
                       "", ""
#endif
  );
}

typedef struct shim_exec {
  char *path;
  char *argv[4];
  char *envp[QVM_ARRAY_SIZE(shim_env_pass) + 4];
  size_t nenv;
} shim_exec;

static void shim_exec_clear(shim_exec *x) {
  free(x->path);
  for (size_t i = 0; i < x->nenv; i++) free(x->envp[i]);
}

static int env_add(shim_exec *x, const char *name, const char *value) {
  if (asprintf(&x->envp[x->nenv], "%s=%s", name, value) < 0) return -1;
  x->envp[++x->nenv] = NULL;
  return 0;
}

static int shim_exec_prepare(shim_exec *x, qvm_vm *vm, const shim_config *cfg, qvm_error **err) {
  int r = shim_binary(&x->path, err);
  if (r < 0) return r;
  _cleanup_free_ char *state = NULL, *runtime = NULL;
  if ((r = vm_state_root(&state, err)) < 0 || (r = vm_runtime_root(&runtime, err)) < 0) return r;
  const char *path = getenv("PATH");
  bool ok = env_add(x, "PATH",
                    path && path[0] ? path
                                    : "/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                      "/usr/bin:/sbin:/bin") == 0 &&
            env_add(x, "QVM_STATE_DIR", state) == 0 && env_add(x, "QVM_RUNTIME_DIR", runtime) == 0;
  for (size_t i = 0; ok && i < QVM_ARRAY_SIZE(shim_env_pass); i++) {
    const char *v = getenv(shim_env_pass[i]);
    if (v) ok = env_add(x, shim_env_pass[i], v) == 0;
  }
  if (!ok) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  /* what `ps` shows: qvm-shim NAME [--adopt] */
  x->argv[0] = (char *)"qvm-shim";
  x->argv[1] = vm->name;
  x->argv[2] = cfg->mode == SHIM_ADOPT ? (char *)"--adopt" : NULL;
  x->argv[3] = NULL;
  return 0;
}

/* In the grandchild between fork and exec: only async-signal-safe calls.
 * fd 3 the ready pipe, fd 4 the VM's lock (or nothing), nothing else. */
__attribute__((noreturn)) static void exec_shim(const shim_exec *x, int ready, int lock) {
  int nul = open("/dev/null", O_RDWR); /* not O_CLOEXEC: see exec_qemu */
  int r = fcntl(ready, F_DUPFD_CLOEXEC, 10);
  int l = lock >= 0 ? fcntl(lock, F_DUPFD_CLOEXEC, 10) : -1;
  if (nul < 0 || r < 0 || (lock >= 0 && l < 0) || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 ||
      dup2(nul, 2) < 0 || dup2(r, 3) < 0 || (l >= 0 && dup2(l, 4) < 0))
    _exit(126);
  close_range(l >= 0 ? 5 : 4, ~0U, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL); /* the caller may ignore some */
  execve(x->path, x->argv, x->envp);
  _exit(127);
}

int vm_shim_start_detached(qvm_vm *vm, const shim_config *cfg, int timeout_ms, qvm_error **err) {
  shim_exec x = {0};
  int r = shim_exec_prepare(&x, vm, cfg, err);
  if (r < 0) {
    shim_exec_clear(&x);
    return r;
  }
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0) {
    shim_exec_clear(&x);
    return qvm_error_set_errno(err, errno, "cannot create a pipe");
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    close(pipefd[0]);
    close(pipefd[1]);
    shim_exec_clear(&x);
    return qvm_error_set_errno(err, errno, "cannot fork the shim");
  }
  if (pid == 0) {
    /* Double fork + setsid: the shim is nobody's child and has no terminal. */
    setsid();
    if (fork() != 0) _exit(0);
    exec_shim(&x, pipefd[1], cfg->lock_fd);
  }
  close(pipefd[1]);
  shim_exec_clear(&x);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  r = read_ready(pipefd[0], timeout_ms, err);
  close(pipefd[0]);
  return r;
}
