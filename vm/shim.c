/* SPDX-License-Identifier: MIT */
/*
 * The per-VM supervisor. It is QEMU's parent (or, after a re-attach, its
 * watcher through a pidfd), holds the only QMP connection, appends QEMU's
 * events to events.jsonl, serves ctl.sock (shim_ctl.c: status, stop, kill,
 * QMP passthrough, event subscription), and records how QEMU ended. One poll
 * loop: signalfd, QEMU's pidfd, the QMP socket, ctl.sock and its clients,
 * and the deadline of a stop in progress.
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <qvm/text.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/notify.h"
#include "util/time.h"
#include "vm/shim.h"
#include "vm/cpu.h"
#include "vm/mount.h"

#define SHIM_QMP_TIMEOUT_MS 30000
#define SHIM_QUIT_GRACE_MS 10000
/* A serial flood is looked at no more often than this: inotify reports
 * every write, and the guest can write all the time. */
#define SHIM_SERIAL_CHECK_MS 100
/* Without inotify, the logs' sizes are looked at this often. */
#define SHIM_LOG_POLL_MS 1000
/* QEMU's events handled in one pass of the poll loop: a flood of them (a
 * guest can make QEMU send DEVICE_TRAY_MOVED as fast as it likes) must not
 * keep signals (stop, kill) and the logs' bounds waiting. */
#define SHIM_QMP_EVENTS_PER_PASS 64
/* Once QEMU is gone, what is left in its socket is read in at most this
 * many passes. */
#define SHIM_QMP_FINAL_PASSES 1024
/* A guest that is still booting (no ACPI daemon yet) misses the power
 * button; pressing it again while waiting is harmless to one that saw it. */
#define SHIM_REPRESS_MS 5000
/* QEMU starts on at most this many SSH ports when another process takes the
 * one picked for it before QEMU binds it. */
#define SHIM_PORT_ATTEMPTS 5

int shim_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

static int pidfd_signal(int pidfd, int sig) {
  return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* What stands for an event whose line would be longer than
 * VM_EVENT_LINE_MAX: its name (cut short) and its length. */
static struct json_object *event_truncated(struct json_object *ev, size_t len) {
  struct json_object *name = NULL, *o = json_object_new_object();
  const char *n =
      json_object_object_get_ex(ev, "event", &name) && json_object_is_type(name, json_type_string)
          ? json_object_get_string(name)
          : "?";
  char *clean = qvm_text_for_terminal(n, strnlen(n, 128), 0);
  json_object_object_add(o, "event", json_object_new_string(clean ? clean : "?"));
  free(clean);
  json_object_object_add(o, "truncated", json_object_new_boolean(true));
  json_object_object_add(o, "bytes", json_object_new_int64((int64_t)len));
  return o;
}

/* In a shim: every line appended to its events.jsonl also goes to ctl.sock's
 * subscribers (vm_net appends DHCP events through vm_events_append too). */
static shim_ctl *events_ctl;
static int events_ctl_fd = -1;

static void events_write(int fd, struct json_object *ev, size_t *len) {
  const char *s = json_object_to_json_string_length(
      ev, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, len);
  char *line = NULL;
  if (*len >= VM_EVENT_LINE_MAX) return;
  if (fd >= 0 && asprintf(&line, "%s\n", s) > 0) {
    (void)!qvm_write_all(fd, line, *len + 1); /* O_APPEND: one line, one write */
    free(line);
  }
  if (events_ctl && fd >= 0 && fd == events_ctl_fd) shim_ctl_event(events_ctl, s, *len);
}

void vm_events_append(int fd, struct json_object *ev) {
  char ts[32];
  qvm_format_rfc3339(ts, qvm_realtime_us());
  json_object_object_add(ev, "time", json_object_new_string(ts));
  size_t len = 0;
  events_write(fd, ev, &len);
  if (len >= VM_EVENT_LINE_MAX) {
    struct json_object *t = event_truncated(ev, len);
    json_object_object_add(t, "time", json_object_new_string(ts));
    events_write(fd, t, &len);
    json_object_put(t);
  }
  json_object_put(ev);
}

/* --- bounded logs ----------------------------------------------------------- */

static off_t log_cap(const char *env, off_t dflt) {
  const char *v = getenv(env);
  if (!v || !*v) return dflt;
  char *end = NULL;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  return !errno && !*end && n >= 4096 && n <= (1ull << 40) ? (off_t)n : dflt;
}

/* Only the shim rotates events.jsonl (there is one shim per VM), by a
 * rename: a process that opened the file just before appends its line to
 * events.jsonl.1, where it is kept. The fd keeps its number (vm_net has it). */
static void shim_events_bound(shim *s) {
  struct stat fst, pst;
  if (s->events_fd < 0 || fstat(s->events_fd, &fst) < 0 || fst.st_size < s->events_cap) return;
  const char *path = s->vm->paths.events;
  _cleanup_free_ char *old = NULL;
  if (asprintf(&old, "%s.1", path) < 0) return;
  bool current = stat(path, &pst) == 0 && pst.st_ino == fst.st_ino && pst.st_dev == fst.st_dev;
  if (current && rename(path, old) < 0) return;
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return;
  if (dup3(fd, s->events_fd, O_CLOEXEC) < 0) {
    /* keep appending to the old file; the next event tries again */
  }
  close(fd);
}

/* Copies the last `cap` bytes of from[0, size) to to_path, skipping a hole
 * at their start: a compromised QEMU can clear O_APPEND on its fd and write
 * at a huge offset, and the file is then mostly a hole. */
static int copy_tail(int from, off_t size, off_t cap, const char *to_path) {
  _cleanup_close_ int to =
      open(to_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (to < 0) return -1;
  off_t off = size > cap ? size - cap : 0;
  off_t data = lseek(from, off, SEEK_DATA);
  if (data < 0 && errno == ENXIO) return 0; /* only a hole from there on */
  if (data > off) off = data;
  char buf[65536];
  while (off < size) {
    size_t want = size - off < (off_t)sizeof buf ? (size_t)(size - off) : sizeof buf;
    ssize_t n = pread(from, buf, want, off);
    if (n <= 0 || qvm_write_all(to, buf, (size_t)n) < 0) return -1;
    off += n;
  }
  return 0;
}

/* serial.log and qemu.log are QEMU's, opened with O_APPEND: past cap, the
 * log's last cap bytes are copied to NAME.1, then it is truncated, and
 * QEMU's next write lands at the new end. What QEMU writes between the copy
 * and the truncation is lost. The bound comes first: the log is truncated
 * even when the copy fails. */
static void shim_log_bound(const char *path, off_t cap) {
  _cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < cap) return;
  _cleanup_free_ char *old = NULL, *tmp = NULL;
  if (asprintf(&old, "%s.1", path) >= 0 && asprintf(&tmp, "%s.1.tmp", path) >= 0 &&
      (copy_tail(fd, st.st_size, cap, tmp) < 0 || rename(tmp, old) < 0))
    unlink(tmp);
  if (ftruncate(fd, 0) < 0) {
    /* nothing better to do: the next write tries again */
  }
}

static void shim_logs_bound(shim *s) {
  shim_log_bound(s->vm->paths.serial_log, s->serial_cap);
  shim_log_bound(s->vm->paths.qemu_log, s->qemu_cap);
}

static bool shim_inotify_wanted(void) {
  const char *v = getenv("QVM_TEST_NO_INOTIFY"); /* tests of the fallback only */
  return !v || strcmp(v, "1") != 0;
}

/* Watches serial.log and qemu.log while QEMU runs (after a spawn or an
 * adopt). Without inotify (fs.inotify.max_user_instances used up) the shim
 * looks at their sizes every SHIM_LOG_POLL_MS instead. */
static void shim_logs_watch(shim *s) {
  bool wanted = shim_inotify_wanted();
  s->serial_ino = wanted ? inotify_init1(IN_CLOEXEC | IN_NONBLOCK) : -1;
  int e = wanted && s->serial_ino < 0 ? errno : 0;
  if (s->serial_ino >= 0 &&
      (inotify_add_watch(s->serial_ino, s->vm->paths.serial_log, IN_MODIFY) < 0 ||
       inotify_add_watch(s->serial_ino, s->vm->paths.qemu_log, IN_MODIFY) < 0)) {
    e = errno;
    close(s->serial_ino);
    s->serial_ino = -1;
  }
  if (s->serial_ino < 0) {
    struct json_object *d = json_object_new_object();
    json_object_object_add(d, "error", json_object_new_string(e ? strerror(e) : "disabled"));
    json_object_object_add(d, "interval_ms", json_object_new_int(SHIM_LOG_POLL_MS));
    shim_event(s, "qvm-log-watch-polling", d);
    s->log_poll_ms = qvm_now_ms() + SHIM_LOG_POLL_MS;
  }
  shim_logs_bound(s);
}

static void shim_logs_readable(shim *s) {
  char buf[4096];
  while (read(s->serial_ino, buf, sizeof buf) > 0) {
  }
  shim_logs_bound(s);
  s->serial_quiet_ms = qvm_now_ms() + SHIM_SERIAL_CHECK_MS;
}

/* Without inotify: every SHIM_LOG_POLL_MS. */
static void shim_logs_poll(shim *s) {
  if (s->log_poll_ms < 0 || qvm_now_ms() < s->log_poll_ms) return;
  shim_logs_bound(s);
  s->log_poll_ms = qvm_now_ms() + SHIM_LOG_POLL_MS;
}

/* A new boot: the last boot's rotated output goes with its log. */
static void shim_log_forget(const char *path) {
  _cleanup_free_ char *old = NULL, *tmp = NULL;
  if (asprintf(&old, "%s.1", path) < 0 || asprintf(&tmp, "%s.1.tmp", path) < 0) return;
  unlink(old);
  unlink(tmp);
}

void shim_event(shim *s, const char *name, struct json_object *data) {
  struct json_object *ev = json_object_new_object();
  json_object_object_add(ev, "event", json_object_new_string(name));
  json_object_object_add(ev, "data", data ? data : json_object_new_object());
  vm_events_append(s->events_fd, ev);
  shim_events_bound(s);
}

/* Drops the CRs of line ends (CR LF, CR CR LF) in place; returns the length. */
static size_t drop_line_end_crs(char *s, size_t n) {
  size_t out = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && s[j] == '\r') j++;
    if (j > i && (j == n || s[j] == '\n')) { /* a line end's CRs */
      i = j;
      continue;
    }
    while (i < j) s[out++] = s[i++]; /* CRs mid-line stay (and are shown as "\r") */
    if (i < n) s[out++] = s[i++];
  }
  return out;
}

/* The last lines of a log the guest (or QEMU) writes, for an error message:
 * control sequences and bytes that are not UTF-8 are neutralized
 * (qvm_text_for_terminal), line ends are kept. */
char *vm_file_tail(const char *path, int lines) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  char buf[8192];
  off_t size = fd >= 0 ? lseek(fd, 0, SEEK_END) : -1;
  off_t from = size > (off_t)sizeof buf ? size - (off_t)sizeof buf : 0;
  ssize_t got = size > 0 ? pread(fd, buf, sizeof buf, from) : 0;
  size_t n = drop_line_end_crs(buf, got > 0 ? (size_t)got : 0);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
  char *start = buf + n;
  for (int seen = 0; start > buf; start--)
    if (start[-1] == '\n' && ++seen == lines) break;
  return qvm_text_for_terminal(start, (size_t)(buf + n - start), QVM_TEXT_KEEP_NEWLINE);
}

/* --- vm.json records ------------------------------------------------------ */

/* A vm.json update the shim could not make (its lock stayed held past
 * VM_RECORD_SHIM_LOCK_WAIT_MS, or the file does not read) is dropped and
 * logged: the next qvm command reconciles vm.json with the processes. */
static void shim_record_failed(shim *s, const char *what, int r, qvm_error *e) {
  if (r >= 0) return;
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "update", json_object_new_string(what));
  json_object_object_add(d, "error", json_object_new_string(qvm_error_message(e)));
  shim_event(s, "qvm-record-failed", d);
  qvm_error_free(e);
}

static void shim_write_runtime(shim *s, const char *status, bool full) {
  vm_run_status st = !strcmp(status, "starting")  ? VM_RUN_STARTING
                     : !strcmp(status, "running") ? VM_RUN_RUNNING
                                                  : VM_RUN_STOPPING;
  vm_proc self;
  bool has_self = vm_proc_record(&self, getpid(), NULL) == 0;
  qvm_error *e = NULL;
  if (!full) {
    int r = vm_record_set_status(&s->vm->paths, st, has_self ? &self : NULL, !s->child, &e);
    shim_record_failed(s, status, r, e);
    return;
  }
  vm_runtime rt = {.status = st,
                   .has_shim = has_self,
                   .shim = self,
                   .adopted = !s->child,
                   .has_accelerator = true,
                   .accelerator = s->cfg.accel == VM_ACCEL_KVM ? VM_ACCEL_KVM : VM_ACCEL_TCG,
                   .accel_warning = s->cfg.accel_warning[0] ? s->cfg.accel_warning : NULL,
                   .cpu = (char *)vm_cpu_model(s->vm->spec->cpu, s->cfg.accel, NULL),
                   .ssh_port = (uint16_t)s->ssh_port,
                   .started_at_us = s->t_spawn_us,
                   .has_timings = true,
                   .timings = {.shim_start_us = s->t_shim_us,
                               .qemu_spawn_us = s->t_spawn_us,
                               .qmp_ready_us = s->t_qmp_us}};
  rt.has_qemu = vm_proc_record(&rt.qemu, s->qemu_pid, NULL) == 0;
  int r = vm_record_set_runtime(&s->vm->paths, &rt, &e);
  shim_record_failed(s, status, r, e);
}

typedef struct exit_status {
  bool known;
  int code;
  int sig;
} exit_status;

typedef struct exit_record {
  const char *reason;
  bool clean;
  int run_status;
  char *detail;
} exit_record;

static void classify_forced(shim *s, exit_record *r, const char *how) {
  r->reason = "forced";
  r->clean = true;
  r->run_status = QVM_RUN_EXIT_FORCED;
  int ms = s->stop_timeout_ms;
  if ((ms % 1000
           ? asprintf(&r->detail, "the guest did not power off within %d ms; qemu was %s", ms, how)
           : asprintf(&r->detail, "the guest did not power off within %d s; qemu was %s", ms / 1000,
                      how)) < 0)
    r->detail = NULL;
}

static exit_record classify_exit(shim *s, const exit_status *x) {
  exit_record r = {.reason = "stopped", .clean = true, .run_status = QVM_RUN_EXIT_SHUTDOWN};
  int n = 0;
  if (s->expired) {
    char at[32];
    qvm_format_rfc3339(at, s->expires_at_us);
    r.reason = "expired";
    n = asprintf(&r.detail, "the sandbox expired at %s", at);
  } else if (s->kill_requested) {
    r.reason = "killed";
    r.run_status = QVM_RUN_EXIT_SIGNAL + SIGKILL;
    r.detail = strdup("killed by qvm kill");
  } else if (s->phase == SHIM_KILLED) {
    classify_forced(s, &r, "killed");
  } else if (x->known && x->sig) {
    r = (exit_record){.reason = "signal", .run_status = QVM_RUN_EXIT_SIGNAL + x->sig};
    n = asprintf(&r.detail, "qemu was killed by signal %d (%s)", x->sig, sigabbrev_np(x->sig));
  } else if (x->known && x->code) {
    _cleanup_free_ char *tail = vm_file_tail(s->vm->paths.qemu_log, 5);
    r = (exit_record){.reason = "error", .run_status = QVM_RUN_EXIT_ERROR};
    n = asprintf(&r.detail, "qemu exited with status %d%s%s", x->code, tail && *tail ? ": " : "",
                 tail ? tail : "");
  } else if (s->guest_shutdown) {
    r.reason = "shutdown";
    r.detail = strdup("the guest shut down");
  } else if (s->phase == SHIM_QUIT) {
    classify_forced(s, &r, "told to quit");
  } else if (x->known) {
    n = asprintf(&r.detail, "qemu exited (%s)",
                 s->shutdown_reason[0] ? s->shutdown_reason : "no reason given");
  } else {
    r = (exit_record){.reason = "lost", .run_status = QVM_RUN_EXIT_ERROR};
    r.detail = strdup("qemu exited; its status is unknown because qvm re-attached to it");
  }
  if (n < 0) r.detail = NULL;
  return r;
}

static void exit_fill(vm_exit *o, const exit_record *r, const exit_status *x, shim *s) {
  *o = (vm_exit){.reason = (char *)r->reason,
                 .clean = r->clean,
                 .detail = r->detail ? r->detail : (char *)r->reason,
                 .has_exit_code = x->known && !x->sig,
                 .exit_code = x->known && !x->sig ? x->code : 0,
                 .signal = x->known ? x->sig : 0,
                 .shutdown_reason = s->shutdown_reason[0] ? s->shutdown_reason : NULL,
                 .run_status = r->run_status,
                 .at_us = qvm_realtime_us()};
  qvm_format_rfc3339(o->at, o->at_us);
}

static void remove_sockets(const vm_paths *p) {
  unlink(p->ctl_sock);
  unlink(p->qmp_sock);
  unlink(p->console_sock);
  unlink(p->qga_sock);
  rmdir(p->run_dir);
}

#define SHIM_EXIT_LOCK_WAIT_MS 30000

/* Waiting clients of ctl.sock get their answer once the exit is recorded. */
#define SHIM_CTL_FLUSH_MS 1000

/* The sockets go before the exit record, as the tap does: once vm.json says
 * stopped, a new start may bind sockets of the same paths, which this shim
 * must not unlink. Connected ctl.sock clients keep their connections (and
 * get their jobs' "done" below). */
static void shim_write_exit(shim *s, const exit_record *r, const exit_status *x) {
  vm_exit x_rec;
  exit_fill(&x_rec, r, x, s);
  remove_sockets(&s->vm->paths);
  qvm_error *e = NULL;
  /* The loop is over (QEMU is gone): only the jobs' "done" waits on this
   * record, which matters more than a status, so it gets longer. */
  vm_record_set_lock_wait(SHIM_EXIT_LOCK_WAIT_MS);
  int rr = vm_record_exit(&s->vm->paths, &x_rec, &e);
  vm_record_set_lock_wait(VM_RECORD_SHIM_LOCK_WAIT_MS);
  shim_record_failed(s, "exit", rr, e);
  struct json_object *o = vm_exit_to_json(&x_rec);
  json_object_get(o);
  shim_event(s, "qvm-exit", o); /* takes one reference */
  shim_ctl_finish(s->ctl, o, SHIM_CTL_FLUSH_MS);
  json_object_put(o);
}

static int shim_record_exit(shim *s, const exit_status *x, char **out_detail) {
  exit_record r = classify_exit(s, x);
  shim_write_exit(s, &r, x);
  if (out_detail) *out_detail = TAKE_PTR(r.detail);
  free(r.detail);
  return r.run_status;
}

/* --- QEMU's events, signals, stop escalation ------------------------------ */

static void shim_note_event(shim *s, struct json_object *ev) {
  struct json_object *name = NULL, *data = NULL, *v = NULL;
  if (!json_object_object_get_ex(ev, "event", &name) ||
      strcmp(json_object_get_string(name), "SHUTDOWN"))
    return;
  if (!json_object_object_get_ex(ev, "data", &data)) return;
  if (json_object_object_get_ex(data, "guest", &v) && json_object_get_boolean(v))
    s->guest_shutdown = true;
  if (json_object_object_get_ex(data, "reason", &v) && json_object_is_type(v, json_type_string))
    snprintf(s->shutdown_reason, sizeof s->shutdown_reason, "%s", json_object_get_string(v));
}

/* At most SHIM_QMP_EVENTS_PER_PASS events; qmp_more says whether more may
 * wait (queued in the connection, where poll does not see them). */
void shim_drain_qmp(shim *s) {
  s->qmp_more = false;
  for (int i = 0; s->qmp; i++) {
    if (i == SHIM_QMP_EVENTS_PER_PASS) {
      s->qmp_more = true;
      break;
    }
    struct json_object *ev = NULL;
    qvm_error *e = NULL;
    if (qvm_qmp_next_event(&ev, s->qmp, &e) < 0) {
      qvm_error_free(e);
      qvm_qmp_free(s->qmp);
      s->qmp = NULL;
      break;
    }
    if (!ev) break;
    shim_note_event(s, ev);
    vm_events_append(s->events_fd, ev);
    shim_events_bound(s);
  }
}

static bool shim_qmp(shim *s, const char *command) {
  if (!s->qmp) return false;
  qvm_error *e = NULL;
  int r = qvm_qmp_execute_timeout(NULL, s->qmp, command, NULL, 5000, &e);
  qvm_error_free(e);
  shim_drain_qmp(s); /* events that came with the reply are queued, not readable */
  return r == 0;
}

static void shim_escalate(shim *s) {
  if (s->phase == SHIM_POWERDOWN) {
    s->phase = SHIM_QUIT;
    shim_event(s, "qvm-stop-quit", NULL);
    shim_ctl_progress(s->ctl, "quit");
    if (!shim_qmp(s, "quit")) pidfd_signal(s->pidfd, SIGTERM);
    s->deadline_ms = qvm_now_ms() + SHIM_QUIT_GRACE_MS;
  } else if (s->phase == SHIM_QUIT) {
    s->phase = SHIM_KILLED;
    shim_event(s, "qvm-stop-kill", NULL);
    shim_ctl_progress(s->ctl, "kill");
    pidfd_signal(s->pidfd, SIGKILL);
    s->deadline_ms = -1;
  }
}

void shim_stop_begin(shim *s, int timeout_ms) {
  if (s->phase != SHIM_RUNNING) return;
  s->stop_timeout_ms = timeout_ms < 0 ? 0 : timeout_ms;
  shim_write_runtime(s, "stopping", false);
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "timeout_ms", json_object_new_int(s->stop_timeout_ms));
  shim_event(s, "qvm-stop-powerdown", d);
  s->phase = SHIM_POWERDOWN;
  qvm_notify("STOPPING=1\nSTATUS=stopping (power button)");
  bool pressed = shim_qmp(s, "system_powerdown");
  s->deadline_ms = qvm_now_ms() + (pressed ? s->stop_timeout_ms : 0);
  s->repress_ms = pressed ? qvm_now_ms() + SHIM_REPRESS_MS : -1;
}

static void shim_repress(shim *s) {
  if (s->phase != SHIM_POWERDOWN || s->repress_ms < 0 || qvm_now_ms() < s->repress_ms) return;
  s->repress_ms = shim_qmp(s, "system_powerdown") ? qvm_now_ms() + SHIM_REPRESS_MS : -1;
}

static bool shim_serial_quiet(const shim *s) {
  return s->serial_ino >= 0 && s->serial_quiet_ms > qvm_now_ms();
}

static int shim_poll_timeout(const shim *s) {
  int64_t next = s->deadline_ms;
  if (s->phase == SHIM_POWERDOWN && s->repress_ms >= 0 && (next < 0 || s->repress_ms < next))
    next = s->repress_ms;
  if (shim_serial_quiet(s) && (next < 0 || s->serial_quiet_ms < next)) next = s->serial_quiet_ms;
  if (s->log_poll_ms >= 0 && (next < 0 || s->log_poll_ms < next)) next = s->log_poll_ms;
  int64_t ttl = shim_ttl_next_ms(s);
  if (ttl >= 0 && (next < 0 || ttl < next)) next = ttl;
  if (s->qmp_more || shim_ctl_pending(s->ctl)) return 0;
  return next < 0 ? -1 : qvm_deadline_left_ms(next);
}

void shim_kill(shim *s) {
  if (s->kill_requested) return;
  shim_event(s, "qvm-kill", NULL);
  s->kill_requested = true;
  s->phase = SHIM_KILLED;
  s->deadline_ms = -1;
  pidfd_signal(s->pidfd, SIGKILL);
}

static void shim_handle_signals(shim *s) {
  struct signalfd_siginfo si;
  while (read(s->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
    if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT || si.ssi_signo == SIGHUP) {
      shim_stop_begin(s, s->cfg.stop_timeout_s * 1000);
    }
  }
}

static void shim_reap(shim *s, exit_status *x) {
  *x = (exit_status){0};
  if (!s->child) return;
  siginfo_t info = {0};
  while (waitid(P_PID, (id_t)s->qemu_pid, &info, WEXITED) < 0)
    if (errno != EINTR) return;
  x->known = true;
  if (info.si_code == CLD_EXITED)
    x->code = info.si_status;
  else
    x->sig = info.si_status;
}

static void shim_loop(shim *s, exit_status *x) {
  for (;;) {
    struct pollfd pfd[5 + SHIM_CTL_POLLFDS] = {
        {.fd = s->sigfd, .events = POLLIN},
        {.fd = s->pidfd, .events = POLLIN},
        {.fd = s->qmp ? qvm_qmp_fd(s->qmp) : -1, .events = POLLIN},
        {.fd = vm_net_fd(s->net), .events = POLLIN},
        {.fd = shim_serial_quiet(s) ? -1 : s->serial_ino, .events = POLLIN}};
    shim_ctl_pollfds(s->ctl, pfd + 5);
    int n = poll(pfd, QVM_ARRAY_SIZE(pfd), shim_poll_timeout(s));
    if (n < 0 && errno != EINTR) break;
    if (n > 0 && pfd[0].revents) shim_handle_signals(s);
    if ((n > 0 && pfd[2].revents) || s->qmp_more) shim_drain_qmp(s);
    if (n > 0 && pfd[3].revents) vm_net_handle_readable(s->net);
    if (n > 0 && pfd[4].revents) shim_logs_readable(s);
    if (n > 0 || shim_ctl_pending(s->ctl)) shim_ctl_handle(s->ctl, s, pfd + 5);
    shim_logs_poll(s);
    shim_ttl_check(s);
    shim_events_bound(s);
    if (n > 0 && pfd[1].revents) break;
    if (s->deadline_ms >= 0 && qvm_now_ms() >= s->deadline_ms)
      shim_escalate(s);
    else
      shim_repress(s);
  }
  shim_reap(s, x);
  /* The SHUTDOWN event may still sit in the socket, behind a flood: QEMU is
   * gone, so what is left is finite, and the queue holds at most 4096. */
  for (int i = 0; i < SHIM_QMP_FINAL_PASSES; i++) {
    shim_drain_qmp(s);
    if (!s->qmp_more) break;
  }
}

/* --- setup ------------------------------------------------------------------ */

static void shim_ready(shim *s, int code, const char *msg) {
  /* `qvm run` under a service manager (qvm@.service, Type=notify): QEMU
   * runs. Detached shims never see NOTIFY_SOCKET (vm/shim_launch.c). */
  if (code == 0 && s->cfg.ready_fd < 0 && !s->notified) {
    char state[96];
    snprintf(state, sizeof state, "READY=1\nSTATUS=running (qemu pid %d)\nMAINPID=%d",
             (int)s->qemu_pid, (int)getpid());
    qvm_notify(state);
  }
  s->notified = true;
  if (s->cfg.ready_fd >= 0) {
    if (code == 0)
      (void)!write(s->cfg.ready_fd, "OK\n", 3);
    else
      dprintf(s->cfg.ready_fd, "E%d %s", code, msg);
    close(s->cfg.ready_fd);
    s->cfg.ready_fd = -1;
  }
  if (s->cfg.lock_fd >= 0) {
    if (s->cfg.lock_inherited)
      close(s->cfg.lock_fd); /* the caller's copy, if it still runs, holds the lock on */
    else
      vm_lock_release(s->cfg.lock_fd);
    s->cfg.lock_fd = -1;
  }
}

static int shim_signals(shim *s, qvm_error **err) {
  sigset_t set;
  sigemptyset(&set);
  int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
  for (size_t i = 0; i < QVM_ARRAY_SIZE(sigs); i++) sigaddset(&set, sigs[i]);
  signal(SIGPIPE, SIG_IGN);
  /* qvm before ctl.sock sent SIGUSR1 as a request (vm/shim_client.c still
   * does to a shim that has no ctl.sock): never let it kill this shim. */
  signal(SIGUSR1, SIG_IGN);
  if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 ||
      (s->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
    return qvm_error_set_errno(err, errno, "cannot set up signals");
  return 0;
}

/* QEMU never answered: wait for it to die (kill it if it does not). */
static void shim_wait_dead(shim *s, exit_status *x) {
  struct pollfd pfd = {.fd = s->pidfd, .events = POLLIN};
  if (poll(&pfd, 1, 10000) == 0) {
    pidfd_signal(s->pidfd, SIGKILL);
    s->phase = SHIM_KILLED;
  }
  shim_reap(s, x);
}

/* Record why QEMU failed, and report that to whoever waits for the shim. */
static void shim_fail_start(shim *s, qvm_error *e, exit_status *x) {
  char *detail = NULL;
  shim_record_exit(s, x, &detail);
  qvm_strbuf sb = QVM_STRBUF_INIT;
  if (x->known && (x->code || x->sig))
    qvm_strbuf_puts(&sb, detail ? detail : "qemu failed");
  else
    qvm_strbuf_printf(&sb, "qemu's monitor did not answer: %s", qvm_error_message(e));
  char *msg = qvm_strbuf_steal(&sb);
  shim_ready(s, QVM_EQMP, msg ? msg : "qemu failed");
  free(msg);
  free(detail);
}

/* The loopback port picked for the SSH forward was taken by someone else
 * before QEMU bound it (QEMU exits with this message from slirp). */
static bool shim_ssh_port_taken(shim *s, const exit_status *x) {
  if (!s->ssh_port || !x->known || !x->code) return false;
  char rule[96];
  snprintf(rule, sizeof rule, "Could not set up host forwarding rule 'tcp:127.0.0.1:%u-:22'",
           (unsigned)s->ssh_port);
  _cleanup_free_ char *tail = vm_file_tail(s->vm->paths.qemu_log, 5);
  return tail && strstr(tail, rule);
}

/* The SSH forward's port, tried first at the next start (shim_launch.c). */
static void shim_remember_port(shim *s) {
  if (!s->ssh_port) return;
  char path[PATH_MAX], text[16];
  snprintf(path, sizeof path, "%s/%s", s->vm->paths.dir, VM_SSH_PORT_FILE);
  int n = snprintf(text, sizeof text, "%u\n", (unsigned)s->ssh_port);
  qvm_write_file_atomic(path, text, (size_t)n, 0600, NULL);
}

/* Forget the failed QEMU so that shim_launch_qemu can start another. */
static void shim_retry_port(shim *s) {
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "port", json_object_new_int(s->ssh_port));
  json_object_object_add(d, "attempt", json_object_new_int(s->launch_attempt + 1));
  shim_event(s, "qvm-ssh-port-taken", d);
  shim_watchdog_stop(s); /* that QEMU is dead */
  vm_virtiofsd_stop(s->vfs_pids, &s->n_vfs, s->vm->spec, s->vm->paths.run_dir);
  close(s->pidfd);
  s->pidfd = -1;
  s->qemu_pid = 0;
  s->child = false;
  s->ssh_port = 0;
  vm_net_remove_own_tap(s->net);
  vm_net_free(s->net);
  s->net = NULL;
  s->launch_attempt++;
}

/* 0 when QMP answered; 1 when QEMU failed and that was recorded and
 * reported; 2 when it failed only because the SSH port was taken. */
static int shim_spawn_once(shim *s, qvm_error **err) {
  int r = shim_launch_qemu(s, err);
  if (r < 0) return r;
  shim_write_runtime(s, "starting", true);
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "pid", json_object_new_int(s->qemu_pid));
  json_object_object_add(d, "at_us", json_object_new_int64(s->t_spawn_us));
  shim_event(s, "qvm-qemu-spawned", d);
  qvm_qmp_options o = QVM_QMP_OPTIONS_INIT;
  o.timeout_ms = SHIM_QMP_TIMEOUT_MS;
  qvm_error *e = NULL;
  if (qvm_qmp_open_fd(&s->qmp, TAKE_FD(s->qmp_client_fd), &o, &e) == 0) return 0;
  exit_status x;
  shim_wait_dead(s, &x);
  bool retry = s->launch_attempt + 1 < SHIM_PORT_ATTEMPTS && shim_ssh_port_taken(s, &x);
  if (!retry) shim_fail_start(s, e, &x);
  qvm_error_free(e);
  return retry ? 2 : 1;
}

/* The guest never ran: QEMU is killed, and its exit record says why. */
static void shim_abort_start(shim *s, const qvm_error *e) {
  exit_status x;
  pidfd_signal(s->pidfd, SIGKILL);
  shim_reap(s, &x);
  s->child = false; /* reaped */
  _cleanup_free_ char *why = strdup(qvm_error_message(e));
  exit_record r = {.reason = "error", .run_status = QVM_RUN_EXIT_ERROR, .detail = why};
  shim_write_exit(s, &r, &x);
}

static int shim_spawn(shim *s, qvm_error **err) {
  int r;
  shim_log_forget(s->vm->paths.serial_log);
  shim_log_forget(s->vm->paths.qemu_log);
  if ((r = shim_take_incoming(s, err)) < 0) return r;
  while ((r = shim_spawn_once(s, err)) == 2) shim_retry_port(s);
  if (r != 0) return r; /* 1: reported and recorded */
  s->t_qmp_us = qvm_realtime_us();
  qvm_error *e = NULL;
  r = shim_start_guest(s, &e); /* QEMU runs the guest from here on */
  shim_drain_qmp(s);           /* RESUME, queued with cont's reply */
  if (r < 0) {
    shim_abort_start(s, e);
    return qvm_error_propagate(err, e);
  }
  shim_write_runtime(s, "running", true);
  shim_remember_port(s);
  shim_logs_watch(s);
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "at_us", json_object_new_int64(s->t_qmp_us));
  json_object_object_add(d, "since_spawn_us", json_object_new_int64(s->t_qmp_us - s->t_spawn_us));
  shim_event(s, "qvm-qmp-ready", d);
  return 0;
}

/* ctl.sock is listening before QEMU is spawned: a client that connects
 * while the shim starts QEMU waits in the backlog. */
static int shim_ctl_setup(shim *s, qvm_error **err) {
  int r = vm_run_dir_prepare(&s->vm->paths, err);
  if (r < 0) return r;
  if ((r = shim_ctl_open(&s->ctl, s->vm->paths.ctl_sock, err)) < 0) return r;
  events_ctl = s->ctl;
  events_ctl_fd = s->events_fd;
  return 0;
}

static int shim_adopt(shim *s, qvm_error **err) {
  if (!s->vm->rec->has_runtime || !s->vm->rec->runtime.has_qemu)
    return qvm_error_set(err, QVM_ENOTFOUND, "no qemu process is recorded");
  vm_proc qemu = s->vm->rec->runtime.qemu;
  s->qemu_pid = qemu.pid;
  s->child = false;
  if ((s->pidfd = vm_proc_pidfd(&qemu)) < 0)
    return qvm_error_set(err, QVM_ENOTFOUND, "qemu (pid %d) is gone", (int)qemu.pid);
  qvm_qmp_options o = QVM_QMP_OPTIONS_INIT;
  o.timeout_ms = 5000;
  qvm_error *e = NULL;
  if (qvm_qmp_connect(&s->qmp, s->vm->paths.qmp_sock, &o, &e) < 0) {
    shim_event(s, "qvm-adopt-no-qmp", json_object_new_string(qvm_error_message(e)));
    qvm_error_free(e);
  }
  qvm_error *ne = NULL;
  if (vm_net_start(&s->net, NULL, s->vm, false, s->events_fd, &ne) < 0) {
    shim_event(s, "qvm-adopt-no-dhcp", json_object_new_string(qvm_error_message(ne)));
    qvm_error_free(ne);
  }
  shim_write_runtime(s, "running", false);
  shim_logs_watch(s);
  shim_event(s, "qvm-shim-adopted", NULL);
  return 0;
}

int vm_shim_run(int *out, qvm_vm *vm, const shim_config *cfg, qvm_error **err) {
  shim s = {.vm = vm,
            .cfg = *cfg,
            .sigfd = -1,
            .pidfd = -1,
            .qmp_client_fd = -1,
            .deadline_ms = -1,
            .stop_timeout_ms = cfg->stop_timeout_s * 1000,
            .t_shim_us = qvm_realtime_us(),
            .serial_cap = log_cap("QVM_SERIAL_LOG_MAX", VM_SERIAL_LOG_MAX),
            .events_cap = log_cap("QVM_EVENTS_LOG_MAX", VM_EVENTS_LOG_MAX),
            .qemu_cap = log_cap("QVM_QEMU_LOG_MAX", VM_QEMU_LOG_MAX),
            .serial_ino = -1,
            .log_poll_ms = -1,
            .incoming_fd = -1,
            .watchdog_fd = -1,
            .expires_at_us = vm->spec->sandbox ? vm->spec->expires_at_us : 0};
  vm_record_set_lock_wait(VM_RECORD_SHIM_LOCK_WAIT_MS);
  s.events_fd =
      open(vm->paths.events, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  shim_events_bound(&s); /* what earlier runs left */
  qvm_error *e = NULL;
  int r = shim_ctl_setup(&s, &e); /* first, so that subscribers see every event */
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "pid", json_object_new_int(getpid()));
  json_object_object_add(d, "mode",
                         json_object_new_string(cfg->mode == SHIM_SPAWN ? "spawn" : "adopt"));
  shim_event(&s, "qvm-shim-start", d);
  if (r >= 0) r = shim_signals(&s, &e);
  if (r >= 0) r = cfg->mode == SHIM_SPAWN ? shim_spawn(&s, &e) : shim_adopt(&s, &e);
  exit_status x = {0};
  if (r == 0) {
    shim_ready(&s, 0, NULL);
    shim_loop(&s, &x);
    /* Before the exit record: once it says stopped, the VM's next start may
     * create a tap of the same name, which must not be this one's delete. */
    vm_net_remove_own_tap(s.net);
    *out = shim_record_exit(&s, &x, NULL);
    if (s.expired) shim_ttl_remove(&s);
  } else if (r < 0) {
    shim_ready(&s, r, qvm_error_message(e));
    if (s.pidfd >= 0 && s.child) {
      pidfd_signal(s.pidfd, SIGKILL);
      shim_reap(&s, &x);
    }
    remove_sockets(&vm->paths);
    *out = QVM_RUN_EXIT_ERROR;
  } else {
    *out = QVM_RUN_EXIT_ERROR;
  }
  shim_watchdog_stop(&s); /* QEMU is gone (or, on an error, was killed) */
  /* its virtiofsds end when QEMU hangs up; a stuck one is killed */
  vm_virtiofsd_stop(s.vfs_pids, &s.n_vfs, vm->spec, vm->paths.run_dir);
  vm_net_remove_own_tap(s.net); /* QEMU is gone; its tap normally went with it */
  vm_net_free(s.net);
  qvm_qmp_free(s.qmp);
  if (s.qmp_client_fd >= 0) close(s.qmp_client_fd);
  if (s.pidfd >= 0) close(s.pidfd);
  if (s.incoming_fd >= 0) close(s.incoming_fd);
  if (s.sigfd >= 0) close(s.sigfd);
  if (s.serial_ino >= 0) close(s.serial_ino);
  if (s.events_fd >= 0) close(s.events_fd);
  events_ctl = NULL;
  events_ctl_fd = -1;
  shim_ctl_free(s.ctl);
  shim_ready(&s, QVM_EPROTO, "the shim stopped");
  if (r < 0) return qvm_error_propagate(err, e);
  return 0;
}
