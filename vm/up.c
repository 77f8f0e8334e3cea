/* SPDX-License-Identifier: MIT */
/* qvm up: create (keys, seed, overlay) + start + timed readiness phases.
 * See include/qvm/up.h for the phases and docs/cli.md for the CLI. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <sodium.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "vm/access.h"
#include "vm/argv.h"
#include "vm/ca_guest.h"
#include "vm/cloud_init.h"
#include "vm/defaults.h"
#include "vm/handle.h"
#include "vm/mount.h"
#include "vm/shim.h"
#include "vm/syntax.h"
#include <qvm/cert.h>
#include <qvm/seed.h>
#include <qvm/text.h>
#include <qvm/up.h>

#define SERIAL_TAIL_LINES 25
/* Every line quoted from the guest starts with this, so that none can pass
 * for a line of qvm's own ("hint: ..."). */
#define GUEST_LINE_PREFIX "  | "

QVM_DEFINE_CLEANUP(qvm_vm, qvm_vm_free)
QVM_DEFINE_CLEANUP(qvm_ssh, qvm_ssh_free)
static void json_object_putp(struct json_object **o) { json_object_put(*o); }

const char *qvm_up_phase_name(qvm_up_phase p) {
  static const char *const names[] = {"started", "serial",     "lease",    "tcp",
                                      "ssh",     "cloud-init", "provision"};
  return (unsigned)p < QVM_ARRAY_SIZE(names) ? names[p] : "unknown";
}

/* --- the up record: what up was asked for, normalized, kept in vm.json ---- */

static int file_digest(char out[65], const char *path, qvm_error **err) {
  _cleanup_free_ char *data = NULL;
  size_t len = 0;
  int r = qvm_read_file(&data, &len, path, 64u << 20, err);
  if (r < 0) return r;
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, (const unsigned char *)data, len);
  sodium_bin2hex(out, 65, h, sizeof h);
  return 0;
}

static int set_path(char **out, const char *k, const char *path, qvm_error **err) {
  if (!path) return 0;
  char abs[PATH_MAX];
  if (!realpath(path, abs))
    return qvm_error_set(err, QVM_ENOTFOUND, "%s '%s' not found: check the path", k, path);
  if (!(*out = strdup(abs))) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  return 0;
}

/* Files by absolute path and content: an edited cloud-config is a change. */
static int set_files(vm_strv *out, const char *k, const char *const *v, size_t n, qvm_error **err) {
  for (size_t i = 0; i < n; i++) {
    char abs[PATH_MAX], digest[65], *item = NULL;
    if (!realpath(v[i], abs))
      return qvm_error_set(err, QVM_ENOTFOUND, "%s file '%s' not found: check the path", k, v[i]);
    int r = file_digest(digest, abs, err);
    if (r < 0) return r;
    if (asprintf(&item, "%s (sha256 %.12s)", abs, digest) < 0)
      return qvm_error_set_errno(err, ENOMEM, "out of memory");
    r = vm_strv_add(out, item, err);
    free(item);
    if (r < 0) return r;
  }
  return 0;
}

static int set_list(vm_strv *out, const char *const *v, size_t n, qvm_error **err) {
  int r = 0;
  for (size_t i = 0; r >= 0 && i < n; i++) r = vm_strv_add(out, v[i], err);
  return r;
}

/* A typed option in the CLI's syntax (taking text), added to out. */
static int add_text(vm_strv *out, char *text, qvm_error **err) {
  if (!text) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  int r = vm_strv_add(out, text, err);
  free(text);
  return r;
}

static int set_typed(vm_up *j, const qvm_vm_create_options *o, qvm_error **err) {
  int r = 0;
  if (!(j->net = vm_net_format(&o->net))) r = qvm_error_set_errno(err, ENOMEM, "out of memory");
  for (size_t i = 0; r >= 0 && i < o->n_publish; i++)
    r = add_text(&j->ports, vm_publish_format(&o->publish[i]), err);
  for (size_t i = 0; r >= 0 && i < o->n_provision; i++)
    r = add_text(&j->provision, vm_public_step_format(&o->provision[i]), err);
  for (size_t i = 0; r >= 0 && i < o->n_drives; i++)
    r = add_text(&j->drives, vm_drive_format(&o->drives[i]), err);
  return r;
}

/* Mounts by resolved host directory: ./src and $PWD/src are one request. */
static int set_mounts(vm_up *j, const qvm_vm_create_options *o, qvm_error **err) {
  int r = 0;
  for (size_t i = 0; r >= 0 && i < o->n_mounts; i++) {
    char abs[PATH_MAX];
    qvm_vm_mount m = o->mounts[i];
    if (!m.host || !realpath(m.host, abs))
      return qvm_error_set(err, QVM_ENOTFOUND, "mount host directory '%s' not found",
                           m.host ? m.host : "");
    m.host = abs;
    r = add_text(&j->mounts, vm_mount_format(&m), err);
  }
  return r;
}

static int set_str(char **out, const char *v, const char *dflt, qvm_error **err) {
  if (!v) v = dflt;
  if (v && !(*out = strdup(v))) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  return 0;
}

/* The image as the request names it: a path (it has a '/' or starts with
 * '.') made absolute; a store name, digest, alias or URL as written
 * (qvm_vm_create resolves it, pulling it on first use). */
static int set_image(char **out, const char *image, qvm_error **err) {
  if (!image) return 0;
  if (!strstr(image, "://") && strncmp(image, "sha256:", 7) &&
      (strchr(image, '/') || image[0] == '.'))
    return set_path(out, "image", image, err);
  return set_str(out, image, NULL, err);
}

static int up_request(vm_up *j, const qvm_vm_create_options *o, qvm_error **err) {
  *j = (vm_up){.cpus = o->cpus ? o->cpus : VM_DEFAULT_CPUS,
               .has_memory = true,
               .memory = o->memory ? o->memory : VM_DEFAULT_MEMORY,
               .has_disk = o->disk != 0,
               .disk = o->disk,
               .allow_backing = o->allow_backing,
               .nat = o->net.nat,
               .cloud_init = !o->no_cloud_init};
  int r = set_image(&j->image, o->image, err);
  if (r >= 0) r = set_path(&j->kernel, "kernel", o->kernel, err);
  if (r >= 0) r = set_path(&j->initrd, "initrd", o->initrd, err);
  if (r >= 0)
    r = set_files(&j->cloud_config, "cloud_config", o->cloud_configs, o->n_cloud_configs, err);
  if (r >= 0)
    r = set_files(&j->ssh_keys, "ssh_keys", o->authorized_keys, o->n_authorized_keys, err);
  if (r >= 0) r = set_str(&j->append, o->append, NULL, err);
  if (r >= 0) r = set_str(&j->firmware, o->firmware, VM_DEFAULT_FIRMWARE, err);
  if (r >= 0) r = set_str(&j->accel, o->accel, VM_DEFAULT_ACCEL, err);
  if (r >= 0) r = set_str(&j->machine, o->machine, VM_DEFAULT_MACHINE, err);
  if (r >= 0 && o->cpu && strcmp(o->cpu, "auto")) r = set_str(&j->cpu, o->cpu, NULL, err);
  if (r >= 0) r = set_str(&j->user, o->user, VM_DEFAULT_USER, err);
  if (r >= 0) r = set_str(&j->hostname, o->hostname, NULL, err);
  if (r >= 0) r = set_str(&j->hostkey, o->hostkey, VM_DEFAULT_HOSTKEY, err);
  if (r >= 0) r = set_str(&j->image_format, o->image_format, NULL, err); /* unset: detected */
  if (r >= 0) r = set_typed(j, o, err);
  if (r >= 0) r = set_list(&j->cdroms, o->cdroms, o->n_cdroms, err);
  if (r >= 0) r = set_mounts(j, o, err);
  if (r < 0) vm_up_clear(j);
  return r;
}

/* --- readiness: one event loop ----------------------------------------------
 *
 * Every wait of up below is one poll(2) over:
 *   inotify  serial.log and events.jsonl (IN_MODIFY), and the VM's directory
 *            (IN_CREATE, IN_MOVED_TO: a log that appears late, events.jsonl
 *            rotated by the shim);
 *   pidfds   QEMU's and the shim's: a VM that dies fails up at once;
 *   timerfd  the next banner probe, the probe's own timeout, the deadline;
 *   socket   the banner probe in flight, if any.
 *
 * phase       wakes on                                decided by
 * serial      serial.log written                      a byte in serial.log
 * tcp         the guest's announcement (events.jsonl  "SSH-" read from the
 *             VSERPORT_CHANGE), the probe's socket,   guest's port 22
 *             the poll timer
 * cloud-init  serial.log written                      qvm's marker in serial.log
 *
 * The lease (qvm_vm_ip: inotify on the VM's directory), ssh (libssh2) and
 * cloud-init's status (over SSH) wait in their own modules.
 *
 * The announcement: qvm's seed opens the virtio-serial port VM_READY_PORT_NAME
 * in its last bootcmd, in cloud-init's init stage, which ssh.service is
 * ordered after, and QEMU sends VSERPORT_CHANGE, which the shim appends to
 * events.jsonl. It makes up probe at once and then every 50 ms: the guest is
 * not trusted, the banner decides. A guest that ignores the seed (or a VM
 * from an older qvm) is found by the backing-off banner poll. */

/* Banner polls back off to BANNER_POLL_MAX_MS. Once the guest announced
 * that sshd comes next, they run every BANNER_POLL_ANNOUNCED_MS, for at
 * most BANNER_POLL_ANNOUNCED_FOR_MS after the last announcement (a guest
 * that announces and never starts sshd gets the slow poll again). A probe
 * made before sshd listens costs the guest a TCP reset. */
#define BANNER_POLL_MAX_MS 250
#define BANNER_POLL_ANNOUNCED_MS 50
#define BANNER_POLL_ANNOUNCED_FOR_MS 120000
#define BANNER_PROBE_TIMEOUT_MS 3000
/* Announcements start a probe at most this often: a guest can open and
 * close the port in a loop (QEMU lets one event a second through; a
 * compromised QEMU, any number). */
#define ANNOUNCED_PROBE_MIN_MS 20
/* events.jsonl read per wakeup, at most: the shim caps the file itself. */
#define EVENTS_SCAN_MAX (1 << 20)
/* Liveness is looked at this often when there is no pidfd to wait on. */
#define NO_PIDFD_CHECK_MS 1000

typedef struct banner_probe {
  int fd;       /* -1: none in flight */
  bool partial; /* part of "SSH-" is there: look again in a moment */
  int64_t started, until;
} banner_probe;

typedef struct up_loop {
  int ino, timer, qemu_pidfd, shim_pidfd;
  const char *gone; /* "QEMU" or "its shim" once that process exited */
  off_t serial_scanned;
  dev_t events_dev; /* events.jsonl is read from events_off of this file */
  ino_t events_ino;
  off_t events_off;
  bool announce_pending;
  int announcements;
  int64_t wake_at; /* set by a check: the timer's next wakeup; 0: none */
  banner_probe probe;
  int banner_fd; /* the probe that got the banner: the ssh phase logs in on it */
  int64_t next_probe, last_announced_probe;
  int64_t announced_until; /* poll every BANNER_POLL_ANNOUNCED_MS until then */
  int backoff;
} up_loop;

typedef struct up_run {
  qvm_vm *vm;
  const qvm_up_options *opts;
  qvm_up_result *res;
  int64_t t0, deadline;
  char uuid[37];
  char net[16];
  bool cloud_init;
  up_loop loop;
  const char *tcp_host; /* where the tcp phase probes */
  int tcp_port;
  const char *tcp_how;  /* how the tcp phase happened: its UP_PHASE detail */
  int64_t tcp_probe_ms; /* from the probe's connect to the banner: the guest's part */
} up_run;

static int64_t remaining_ms(const up_run *u) {
  int64_t left = u->deadline - qvm_now_ms();
  return left > 0 ? left : 0;
}

static void phase_done(up_run *u, qvm_up_phase p, qvm_up_phase_status st, const char *detail) {
  int64_t elapsed = qvm_now_ms() - u->t0;
  u->res->phase_ms[p] = st == QVM_UP_PHASE_DONE ? elapsed : -1;
  struct json_object *ev = json_object_new_object();
  json_object_object_add(ev, "event", json_object_new_string("UP_PHASE"));
  json_object_object_add(ev, "phase", json_object_new_string(qvm_up_phase_name(p)));
  json_object_object_add(ev, "status",
                         json_object_new_string(st == QVM_UP_PHASE_DONE ? "done" : "skipped"));
  json_object_object_add(ev, "elapsed_ms", json_object_new_int64(elapsed));
  if (detail) json_object_object_add(ev, "detail", json_object_new_string(detail));
  if (p == QVM_UP_TCP && st == QVM_UP_PHASE_DONE)
    json_object_object_add(ev, "probe_ms", json_object_new_int64(u->tcp_probe_ms));
  _cleanup_close_ int fd =
      open(u->vm->paths.events, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  vm_events_append(fd, ev);
  if (u->opts->on_phase) u->opts->on_phase(u->opts->ctx, p, st, elapsed, detail);
}

/* Fails up in phase p: names the phase, why, and shows the serial tail.
 * `why` may quote the guest (cloud-init's output as quote() lines, its
 * address), and the tail is the guest's: both are neutralized for terminals
 * and JSON, and the tail's lines are quoted. */
static int phase_failed(up_run *u, qvm_up_phase p, int code, const char *why_raw, qvm_error **err) {
  u->res->failed_phase = p;
  u->res->failed_in_phase = true;
  _cleanup_free_ char *raw_tail = vm_file_tail(u->vm->paths.serial_log, SERIAL_TAIL_LINES);
  _cleanup_free_ char *tail =
      raw_tail ? qvm_text_quote(raw_tail, strlen(raw_tail), GUEST_LINE_PREFIX) : NULL;
  _cleanup_free_ char *why = qvm_text_for_terminal(why_raw, strlen(why_raw), QVM_TEXT_KEEP_NEWLINE);
  int64_t elapsed = (qvm_now_ms() - u->t0) / 1000;
  /* The cause's class (e.g. HostKeyMismatch) survives the new message. */
  const char *cls = err && *err ? qvm_error_class(*err) : NULL;
  _cleanup_free_ char *keep = cls ? strdup(cls) : NULL;
  qvm_error_free(err ? *err : NULL);
  if (err) *err = NULL;
  int r = qvm_error_set(err, code, "vm '%s': phase '%s' did not happen (after %lld s): %s\n%s%s",
                        u->vm->name, qvm_up_phase_name(p), (long long)elapsed,
                        why ? why : "(out of memory)",
                        tail && *tail ? "last serial output:\n" : "no serial output at all",
                        tail && *tail ? tail : "");
  if (keep && err && *err) qvm_error_set_class(*err, keep);
  return r;
}

/* The VM must still be running while up waits on it. */
static int check_running(up_run *u, qvm_up_phase p, qvm_error **err) {
  vm_reload(u->vm, NULL); /* the shim may have recorded an exit */
  qvm_vm_state st = qvm_vm_get_state(u->vm);
  if (!u->loop.gone && (st == QVM_VM_RUNNING || st == QVM_VM_STARTING)) return 0;
  char why[200];
  if (u->loop.gone)
    snprintf(why, sizeof why, "%s exited; the vm is %s", u->loop.gone, qvm_vm_state_name(st));
  else
    snprintf(why, sizeof why, "the vm is %s", qvm_vm_state_name(st));
  return phase_failed(u, p, QVM_ECONFLICT, why, err);
}

/* --- the loop's sources ---------------------------------------------------- */

static void loop_watch(up_loop *l, const qvm_vm *vm) {
  /* Watching an inode twice returns its watch: cheap to redo after any
   * change in the directory (a log created, events.jsonl renamed). */
  inotify_add_watch(l->ino, vm->paths.serial_log, IN_MODIFY);
  inotify_add_watch(l->ino, vm->paths.events, IN_MODIFY);
}

/* Before QEMU starts: the events that count are the ones appended after. */
static int loop_open(up_loop *l, const qvm_vm *vm, qvm_error **err) {
  l->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (l->ino < 0) return qvm_error_set_errno(err, errno, "inotify_init1");
  if (inotify_add_watch(l->ino, vm->paths.dir, IN_CREATE | IN_MOVED_TO) < 0)
    return qvm_error_set_errno(err, errno, "cannot watch '%s'", vm->paths.dir);
  loop_watch(l, vm);
  l->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (l->timer < 0) return qvm_error_set_errno(err, errno, "timerfd_create");
  struct stat st;
  if (stat(vm->paths.events, &st) == 0) {
    l->events_dev = st.st_dev;
    l->events_ino = st.st_ino;
    l->events_off = st.st_size;
  }
  return 0;
}

/* Once QEMU runs: its and the shim's pidfds (-1 where none can be had). */
static void loop_attach(up_loop *l, qvm_vm *vm) {
  vm_reload(vm, NULL);
  vm_runtime_view rv;
  vm_runtime_view_read(&rv, vm->rec);
  l->qemu_pidfd = rv.has_qemu ? vm_proc_pidfd(&rv.qemu) : -1;
  l->shim_pidfd = rv.has_shim ? vm_proc_pidfd(&rv.shim) : -1;
}

static void probe_close(banner_probe *p) {
  if (p->fd >= 0) close(p->fd);
  p->fd = -1;
}

static void loop_close(up_loop **lp) {
  up_loop *l = *lp;
  int *fds[] = {&l->ino, &l->timer, &l->qemu_pidfd, &l->shim_pidfd, &l->banner_fd};
  for (size_t i = 0; i < QVM_ARRAY_SIZE(fds); i++)
    if (*fds[i] >= 0) close(*fds[i]);
  probe_close(&l->probe);
}

static bool is_announcement(const char *line, size_t len) {
  if (!memmem(line, len, "VSERPORT_CHANGE", strlen("VSERPORT_CHANGE"))) return false;
  json_tokener *tok = json_tokener_new();
  if (!tok) return false;
  struct json_object *ev = json_tokener_parse_ex(tok, line, (int)len);
  bool complete = json_tokener_get_error(tok) == json_tokener_success;
  json_tokener_free(tok);
  struct json_object *name = NULL, *data = NULL, *id = NULL, *open = NULL;
  bool yes = complete && json_object_object_get_ex(ev, "event", &name) &&
             json_object_is_type(name, json_type_string) &&
             !strcmp(json_object_get_string(name), "VSERPORT_CHANGE") &&
             json_object_object_get_ex(ev, "data", &data) &&
             json_object_object_get_ex(data, "id", &id) &&
             json_object_is_type(id, json_type_string) &&
             !strcmp(json_object_get_string(id), VM_READY_PORT_ID) &&
             json_object_object_get_ex(data, "open", &open) &&
             json_object_is_type(open, json_type_boolean) && json_object_get_boolean(open);
  json_object_put(ev);
  return yes;
}

/* The whole lines of fd from *off on (at most EVENTS_SCAN_MAX bytes: past
 * that, only the newest); *off ends after the last whole line. */
static void events_read(up_loop *l, int fd, off_t *off) {
  struct stat st;
  if (fstat(fd, &st) < 0) return;
  if (st.st_size < *off) *off = 0;
  bool skipped = st.st_size - *off > EVENTS_SCAN_MAX;
  if (skipped) *off = st.st_size - EVENTS_SCAN_MAX;
  size_t len = (size_t)(st.st_size - *off);
  if (!len) return;
  _cleanup_free_ char *buf = malloc(len);
  ssize_t n = buf ? pread(fd, buf, len, *off) : -1;
  if (n <= 0) return;
  const char *p = buf, *end = buf + n;
  if (skipped) { /* the first line is cut: not an event */
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    p = nl ? nl + 1 : end;
  }
  for (const char *nl; p < end && (nl = memchr(p, '\n', (size_t)(end - p))); p = nl + 1) {
    if (is_announcement(p, (size_t)(nl - p))) {
      l->announce_pending = true;
      l->announcements++;
    }
  }
  /* A line being written stays for the next wakeup, unless it cannot be
   * one (longer than any event line). */
  if (end - p > VM_EVENT_LINE_MAX) p = end;
  *off += p - buf;
}

/* New lines of events.jsonl, across the shim's rotation (a rename to
 * events.jsonl.1: the rest of the file read so far is there). */
static void events_scan(up_loop *l, const qvm_vm *vm) {
  _cleanup_close_ int fd = open(vm->paths.events, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) return;
  if (st.st_ino != l->events_ino || st.st_dev != l->events_dev) {
    _cleanup_free_ char *old = NULL;
    struct stat ost;
    _cleanup_close_ int ofd = asprintf(&old, "%s.1", vm->paths.events) < 0
                                  ? -1
                                  : open(old, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (ofd >= 0 && fstat(ofd, &ost) == 0 && ost.st_ino == l->events_ino &&
        ost.st_dev == l->events_dev && l->events_ino)
      events_read(l, ofd, &l->events_off);
    l->events_dev = st.st_dev;
    l->events_ino = st.st_ino;
    l->events_off = 0;
  }
  events_read(l, fd, &l->events_off);
}

static void timer_arm(int timer, int64_t in_ms) {
  if (in_ms < 1) in_ms = 1; /* 0 would disarm it */
  struct itimerspec its = {.it_value = {.tv_sec = in_ms / 1000, .tv_nsec = in_ms % 1000 * 1000000}};
  timerfd_settime(timer, 0, &its, NULL);
}

/* One wakeup: sleeps until a source is ready, then takes note of it. */
static void loop_poll(up_run *u) {
  up_loop *l = &u->loop;
  int64_t wake = u->deadline;
  if (l->wake_at > 0 && l->wake_at < wake) wake = l->wake_at;
  int64_t no_pidfd = qvm_now_ms() + NO_PIDFD_CHECK_MS;
  if ((l->qemu_pidfd < 0 || l->shim_pidfd < 0) && no_pidfd < wake) wake = no_pidfd;
  timer_arm(l->timer, wake - qvm_now_ms());
  struct pollfd pfd[5] = {{.fd = l->ino, .events = POLLIN},
                          {.fd = l->timer, .events = POLLIN},
                          {.fd = l->qemu_pidfd, .events = POLLIN},
                          {.fd = l->shim_pidfd, .events = POLLIN},
                          {.fd = l->probe.partial ? -1 : l->probe.fd, .events = POLLIN}};
  if (poll(pfd, QVM_ARRAY_SIZE(pfd), -1) <= 0) return; /* EINTR: look again */
  if (pfd[0].revents) {
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool dir_changed = false;
    ssize_t n;
    while ((n = read(l->ino, buf, sizeof buf)) > 0)
      for (char *p = buf; p < buf + n;) {
        const struct inotify_event *ev = (const struct inotify_event *)p;
        dir_changed |= (ev->mask & (IN_CREATE | IN_MOVED_TO | IN_Q_OVERFLOW)) != 0;
        p += sizeof *ev + ev->len;
      }
    if (dir_changed) loop_watch(l, u->vm);
  }
  if (pfd[1].revents) {
    uint64_t ticks;
    (void)!read(l->timer, &ticks, sizeof ticks);
  }
  if (pfd[2].revents)
    l->gone = "QEMU";
  else if (pfd[3].revents)
    l->gone = "its shim";
}

/* Waits until check(u) holds, failing phase p on the deadline (with
 * timeout_why) or as soon as the VM is gone. */
typedef bool (*phase_check)(up_run *u);

static int loop_wait(up_run *u, qvm_up_phase p, phase_check check, const char *timeout_why,
                     qvm_error **err) {
  up_loop *l = &u->loop;
  for (;;) {
    events_scan(l, u->vm);
    l->wake_at = 0;
    if (check(u)) return 0;
    if (l->gone || l->qemu_pidfd < 0 || l->shim_pidfd < 0) {
      int r = check_running(u, p, err);
      if (r < 0) return r;
    }
    if (!remaining_ms(u)) return phase_failed(u, p, QVM_ETIMEOUT, timeout_why, err);
    loop_poll(u);
  }
}

/* --- the checks ------------------------------------------------------------- */

/* Serial output since the loop's serial_scanned (plus a marker's length of
 * overlap): the log can be large and grows, so each wakeup reads only what
 * is new. Guest output may hold NULs, hence memmem, not strstr. */
typedef bool (*serial_pred)(const char *chunk, size_t len, const up_run *u);

static bool serial_check(up_run *u, serial_pred pred) {
  off_t *scanned = &u->loop.serial_scanned;
  _cleanup_close_ int fd = open(u->vm->paths.serial_log, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  off_t size = lseek(fd, 0, SEEK_END);
  if (size < *scanned) *scanned = 0; /* the shim rotated the log (copy, then truncate) */
  off_t from = *scanned > 128 ? *scanned - 128 : 0;
  if (size <= from) return false;
  size_t len = (size_t)(size - from);
  if (len > (16u << 20)) { /* a flood: look at its last 16 MiB only */
    from = size - (16 << 20);
    len = 16u << 20;
  }
  _cleanup_free_ char *buf = malloc(len);
  ssize_t n = buf ? pread(fd, buf, len, from) : -1;
  if (n <= 0) return false;
  *scanned = from + n;
  return pred(buf, (size_t)n, u);
}

static bool serial_nonempty(const char *chunk, size_t len, const up_run *u) {
  (void)chunk;
  (void)u;
  return len > 0;
}

static bool serial_has_marker(const char *chunk, size_t len, const up_run *u) {
  char marker[128];
  int n = snprintf(marker, sizeof marker, "%s %s", QVM_SEED_READY_MARKER, u->uuid);
  return n > 0 && memmem(chunk, len, marker, (size_t)n) != NULL;
}

static bool check_serial_output(up_run *u) { return serial_check(u, serial_nonempty); }
static bool check_ready_marker(up_run *u) { return serial_check(u, serial_has_marker); }

/* The tcp phase's probe: the guest's sshd sent "SSH-". A bare connect is not
 * enough: in user mode slirp accepts at once and drops the connection if
 * nothing listens in the guest. Non-blocking: the loop waits on its fd. */
static void probe_start(banner_probe *p, const char *host, int port) {
  probe_close(p);
  struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
  struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  bool v6 = strchr(host, ':') != NULL;
  if (v6 ? inet_pton(AF_INET6, host, &a6.sin6_addr) != 1
         : inet_pton(AF_INET, host, &a4.sin_addr) != 1)
    return;
  _cleanup_close_ int fd =
      socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  if (connect(fd, v6 ? (struct sockaddr *)&a6 : (struct sockaddr *)&a4,
              v6 ? sizeof a6 : sizeof a4) < 0 &&
      errno != EINPROGRESS)
    return;
  p->fd = TAKE_FD(fd);
  p->partial = false;
  p->started = qvm_now_ms();
  p->until = p->started + BANNER_PROBE_TIMEOUT_MS;
}

/* 1: the banner; 0: not yet; -1: this probe failed. The banner is only
 * peeked at: the ssh phase logs in on this connection, and libssh2 reads
 * the banner itself. A new connection would cost the guest's sshd another
 * fork and re-execution (a second or more under TCG) while it boots, and a
 * "Connection reset" line in its log for the probe. */
static int probe_step(banner_probe *p) {
  char buf[4];
  ssize_t n = recv(p->fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
  p->partial = false;
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
  if (n == 0 || memcmp(buf, "SSH-", (size_t)n) != 0) return -1;
  if (n == (ssize_t)sizeof buf) return 1;
  p->partial = true; /* still readable: poll would not wait */
  return 0;
}

static bool check_banner(up_run *u) {
  up_loop *l = &u->loop;
  banner_probe *p = &l->probe;
  int64_t now = qvm_now_ms();
  if (p->fd >= 0) {
    int st = probe_step(p);
    if (st > 0) {
      u->tcp_how = l->announcements ? "announced" : "banner poll";
      u->tcp_probe_ms = now - p->started;
      if (l->banner_fd >= 0) close(l->banner_fd);
      l->banner_fd = TAKE_FD(p->fd);
      return true;
    }
    if (st < 0 || now >= p->until) probe_close(p);
  }
  /* An announcement starts a probe at once, or as soon as the one in flight
   * ends (it may have reached sshd already: sshd forks and re-executes
   * itself for each connection, which takes a second under TCG), and the
   * fast poll. A guest that announces in a loop cuts no probe short. */
  if (l->announce_pending) {
    l->announced_until = now + BANNER_POLL_ANNOUNCED_FOR_MS;
    if (l->next_probe > now + BANNER_POLL_ANNOUNCED_MS)
      l->next_probe = now + BANNER_POLL_ANNOUNCED_MS;
  }
  if (p->fd < 0 && l->announce_pending && now - l->last_announced_probe >= ANNOUNCED_PROBE_MIN_MS) {
    l->announce_pending = false;
    l->last_announced_probe = now;
    probe_start(p, u->tcp_host, u->tcp_port);
    l->next_probe = now + BANNER_POLL_ANNOUNCED_MS;
  } else if (p->fd < 0 && now >= l->next_probe) {
    probe_start(p, u->tcp_host, u->tcp_port);
    if (now < l->announced_until) {
      l->next_probe = now + BANNER_POLL_ANNOUNCED_MS;
    } else {
      l->next_probe = now + l->backoff;
      l->backoff = l->backoff * 2 > BANNER_POLL_MAX_MS ? BANNER_POLL_MAX_MS : l->backoff * 2;
    }
  }
  /* In flight, the probe's socket wakes the loop, or its timeout; else the
   * next poll, or the announcement held back. */
  if (p->fd >= 0) {
    l->wake_at = p->partial && now + 5 < p->until ? now + 5 : p->until;
  } else {
    l->wake_at = l->next_probe;
    if (l->announce_pending && l->last_announced_probe + ANNOUNCED_PROBE_MIN_MS < l->wake_at)
      l->wake_at = l->last_announced_probe + ANNOUNCED_PROBE_MIN_MS;
  }
  return false;
}

static int wait_tcp(up_run *u, const char *host, int port, qvm_error **err) {
  up_loop *l = &u->loop;
  u->tcp_host = host;
  u->tcp_port = port;
  l->backoff = 50;
  /* The announcement may have come during the earlier phases. */
  if (l->announcements) l->announced_until = qvm_now_ms() + BANNER_POLL_ANNOUNCED_FOR_MS;
  l->next_probe = qvm_now_ms();
  char why[200];
  snprintf(why, sizeof why, "no SSH banner from %s port %d (is sshd running in the guest?)", host,
           port);
  int r = loop_wait(u, QVM_UP_TCP, check_banner, why, err);
  probe_close(&l->probe);
  return r;
}

/* Collects an exec's stdout into a strbuf (bounded). */
static int collect(void *ctx, int stream, const void *data, size_t len) {
  (void)stream;
  qvm_strbuf *sb = ctx;
  if (sb->len < (1u << 20)) qvm_strbuf_append(sb, data, len);
  return 0;
}

/* Runs cmd with stdin_fd (-1: an empty stdin) and collects its stdout. */
static int run_capture_in(char **out, int *exit_code, qvm_ssh *ssh, const char *cmd, int stdin_fd,
                          int timeout_ms, qvm_error **err) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  qvm_ssh_exec_options eo = QVM_SSH_EXEC_OPTIONS_INIT;
  eo.command = cmd;
  eo.stdin_fd = stdin_fd;
  eo.on_output = collect;
  eo.ctx = &sb;
  eo.timeout_ms = timeout_ms;
  qvm_ssh_exec_result res = {0};
  int r = qvm_ssh_exec(&res, ssh, &eo, err);
  *out = qvm_strbuf_steal(&sb);
  *exit_code = res.exit_code;
  return r;
}

static int run_capture(char **out, int *exit_code, qvm_ssh *ssh, const char *cmd, int timeout_ms,
                       qvm_error **err) {
  return run_capture_in(out, exit_code, ssh, cmd, -1, timeout_ms, err);
}

/* The guest's output (at most max bytes of it), for a message: quoted lines. */
static char *quote(const char *text, size_t max) {
  size_t len = text ? strnlen(text, max) : 0;
  return qvm_text_quote(text ? text : "", len, GUEST_LINE_PREFIX);
}

/* cloud-init: vm/cloud_init.h; qvm's marker on serial is the event that
 * times the phase. */

/* Runs VM_CLOUD_INIT_WAIT with a stdin that stays open until it ends. */
static int wait_result(char **out, int *code, qvm_ssh *ssh, int timeout_ms, qvm_error **err) {
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) < 0) return qvm_error_set_errno(err, errno, "pipe failed");
  int r = run_capture_in(out, code, ssh, VM_CLOUD_INIT_WAIT, pfd[0], timeout_ms, err);
  close(pfd[0]);
  close(pfd[1]);
  return r;
}

#define NO_MARKER                                                                                  \
  "qvm's readiness line never appeared on the serial console (is the image's console not "         \
  "ttyS0?): harmless, up goes on"

static int wait_cloud_init(up_run *u, qvm_ssh *ssh, qvm_error **err) {
  _cleanup_free_ char *out = NULL;
  int code = 0;
  int64_t left = remaining_ms(u);
  int r = wait_result(&out, &code, ssh, (int)left, err);
  if (r == QVM_ETIMEOUT) {
    qvm_error_free(*err);
    *err = NULL;
    _cleanup_free_ char *now = NULL;
    int ignored = 0;
    run_capture(&now, &ignored, ssh, "cloud-init status --long 2>&1", 10000, NULL);
    _cleanup_free_ char *said = quote(now, 1200), *why = NULL;
    if (asprintf(&why, "cloud-init did not finish; 'cloud-init status --long' says:\n%s",
                 said ? said : "") < 0)
      why = NULL;
    return phase_failed(u, QVM_UP_CLOUD_INIT, QVM_ETIMEOUT, why ? why : "(out of memory)", err);
  }
  if (r < 0) return r;
  if (code == 127) { /* the shell found no cloud-init: nothing to wait for */
    phase_done(u, QVM_UP_CLOUD_INIT, QVM_UP_PHASE_SKIPPED, "the image has no cloud-init");
    return 0;
  }
  const size_t hlen = strlen(VM_CLOUD_INIT_RESULT_HEADER "\n");
  if (code == 0 && out && !strncmp(out, VM_CLOUD_INIT_RESULT_HEADER "\n", hlen)) {
    if (vm_cloud_init_result_errors(out + hlen, strlen(out + hlen)) == 0) {
      free(out);
      out = strdup("status: done");
      if (!out) return qvm_error_set(err, QVM_ESYS, "out of memory");
    } else { /* an error, or not cloud-init's document */
      free(out);
      out = NULL;
      if (!u->opts->allow_cloud_init_errors) /* its own words for the message */
        run_capture(&out, &code, ssh, "cloud-init status --long 2>&1", 60000, NULL);
      code = 1;
    }
  }
  bool error = code != 0 || !out || !strstr(out, "status: done");
  if (error && !u->opts->allow_cloud_init_errors) {
    /* The failing modules' own messages are in cloud-init.log. */
    _cleanup_free_ char *log = NULL;
    int ignored = 0;
    run_capture(&log, &ignored, ssh,
                "grep -E 'WARNING|ERROR' /var/log/cloud-init.log 2>/dev/null | grep -Ei "
                "'fail|error' | tail -n 8",
                10000, NULL);
    _cleanup_free_ char *said = quote(out, 1200), *logged = quote(log, 1400), *why = NULL;
    if (asprintf(&why,
                 "cloud-init reported an error.\n"
                 "'cloud-init status --long' said:\n%s%s%s",
                 said ? said : "", logged && *logged ? "\nfrom /var/log/cloud-init.log:\n" : "",
                 logged ? logged : "") < 0)
      why = NULL;
    r = phase_failed(u, QVM_UP_CLOUD_INIT, QVM_EGUEST, why ? why : "(out of memory)", err);
    return qvm_error_set_hint(err, r, "CloudInitError", u->vm->name);
  }
  /* The marker is written by the last runcmd, a moment before cloud-init
   * itself ends; give the serial log a few seconds to catch up. */
  int64_t saved = u->deadline;
  int64_t soon = qvm_now_ms() + 5000;
  if (soon < u->deadline) u->deadline = soon;
  u->loop.serial_scanned = 0;
  bool marker = loop_wait(u, QVM_UP_CLOUD_INIT, check_ready_marker, "no marker", err) >= 0;
  u->deadline = saved;
  if (!marker) {
    /* cloud-init said it is done, over SSH: a missing marker (a user's
     * runcmd that failed first, a console that is elsewhere) is reported,
     * not fatal. */
    qvm_error_free(*err);
    *err = NULL;
    u->res->failed_in_phase = false;
  }
  phase_done(u, QVM_UP_CLOUD_INIT, QVM_UP_PHASE_DONE,
             error ? (marker ? "finished with errors" : "finished with errors; " NO_MARKER)
                   : (marker ? "done" : "done; " NO_MARKER));
  return 0;
}

/* A sandbox boots refusing qvm's certificates (vm/ca_guest.c) until it has
 * the current KRL: it gets it here, once sshd answers. */
static int sandbox_krl(up_run *u, qvm_ssh *ssh, qvm_error **err) {
  if (!u->vm->spec->sandbox || !u->cloud_init) return 0;
  qvm_cert_ca *ca = NULL;
  qvm_error *e = NULL;
  int r = qvm_cert_ca_open(&ca, NULL, &e);
  if (r >= 0) r = vm_ca_push_krl(u->vm, ssh, ca, &e);
  qvm_cert_ca_free(ca);
  if (r == QVM_ENOTFOUND) { /* a guest that trusts no certificate of qvm's */
    qvm_error_free(e);
    return 0;
  }
  return r < 0 ? qvm_error_propagate(err, e) : 0;
}

static int run_phases(up_run *u, bool provision, qvm_error **err) {
  qvm_up_result *res = u->res;
  phase_done(u, QVM_UP_STARTED, QVM_UP_PHASE_DONE, NULL);
  u->loop.serial_scanned = 0;
  int r = loop_wait(u, QVM_UP_SERIAL, check_serial_output,
                    "the guest printed nothing on its serial console", err);
  if (r < 0) return r;
  phase_done(u, QVM_UP_SERIAL, QVM_UP_PHASE_DONE, NULL);

  if (!strcmp(u->net, "none")) {
    r = phase_failed(u, QVM_UP_LEASE, QVM_EINVAL,
                     "the vm has no network device (net: none), so it can get no address and "
                     "qvm cannot reach it",
                     err);
    return qvm_error_set_hint(err, r, "UpGuestUnreachable", u->vm->name);
  }
  if (!strcmp(u->net, "bridge")) {
    _cleanup_free_ char *ip = NULL, *source = NULL;
    r = qvm_vm_ip(&ip, &source, u->vm, (int)remaining_ms(u), err);
    if (r < 0) {
      char why[600];
      snprintf(why, sizeof why, "no DHCP lease: %s (does the guest run a DHCP client?)",
               qvm_error_message(*err));
      return phase_failed(u, QVM_UP_LEASE, qvm_error_code(*err), why, err);
    }
    snprintf(res->ip_source, sizeof res->ip_source, "%s", source ? source : "");
    char shown[64];
    qvm_text_for_terminal_into(shown, sizeof shown, ip, strlen(ip), 0);
    phase_done(u, QVM_UP_LEASE, QVM_UP_PHASE_DONE, shown);
  } else {
    phase_done(u, QVM_UP_LEASE, QVM_UP_PHASE_SKIPPED, "user-mode networking");
  }

  qvm_ssh_options target = QVM_SSH_OPTIONS_INIT;
  if ((r = qvm_vm_ssh_target(&target, u->vm, (int)remaining_ms(u), err)) < 0) {
    int code = qvm_error_code(*err);
    _cleanup_free_ char *why = strdup(qvm_error_message(*err)); /* phase_failed frees *err */
    return phase_failed(u, QVM_UP_TCP, code, why ? why : "no ssh address", err);
  }
  /* target's strings live in the spec, which the waits below re-read */
  char host[sizeof res->ssh_host];
  snprintf(host, sizeof host, "%s", target.host);
  qvm_text_for_terminal_into(res->ssh_host, sizeof res->ssh_host, target.host, strlen(target.host),
                             0);
  res->ssh_port = target.port;
  if ((r = wait_tcp(u, host, res->ssh_port, err)) < 0) return r;
  phase_done(u, QVM_UP_TCP, QVM_UP_PHASE_DONE, u->tcp_how);

  /* 0 would mean connect's 30 s default: never more than what is left. */
  qvm_vm_ssh_options so = QVM_VM_SSH_OPTIONS_INIT;
  so.timeout_ms = remaining_ms(u) > 0 ? (int)remaining_ms(u) : 1;
  _cleanup_(qvm_ssh_freep) qvm_ssh *ssh = NULL;
  r = vm_ssh_connect_on(&ssh, u->vm, &so, TAKE_FD(u->loop.banner_fd), err);
  if (r < 0) {
    int code = qvm_error_code(*err);
    _cleanup_free_ char *why = strdup(qvm_error_message(*err));
    return phase_failed(u, QVM_UP_SSH, code, why ? why : "ssh failed", err);
  }
  phase_done(u, QVM_UP_SSH, QVM_UP_PHASE_DONE, qvm_ssh_host_fingerprint(ssh));

  if (u->cloud_init && u->opts->wait_cloud_init) {
    if ((r = wait_cloud_init(u, ssh, err)) < 0) return r;
  } else {
    phase_done(u, QVM_UP_CLOUD_INIT, QVM_UP_PHASE_SKIPPED, "not waited for");
  }

  if ((r = sandbox_krl(u, ssh, err)) < 0) return r;
  if (!provision) {
    phase_done(u, QVM_UP_PROVISION, QVM_UP_PHASE_SKIPPED,
               qvm_vm_provision_count(u->vm) ? "already provisioned" : "no provision steps");
    vm_record_mark_up(&u->vm->paths, false, true, NULL);
    return 0;
  }
  size_t failed = 0;
  r = qvm_vm_provision(&failed, u->vm, ssh, u->opts->on_output, u->opts->ctx, err);
  if (r < 0) {
    u->res->failed_phase = QVM_UP_PROVISION;
    u->res->failed_in_phase = true;
    return qvm_error_prefix(err, "vm '%s': phase 'provision' failed (see %s/provision.log)",
                            u->vm->name, qvm_vm_dir(u->vm));
  }
  vm_record_mark_up(&u->vm->paths, true, false, NULL);
  phase_done(u, QVM_UP_PROVISION, QVM_UP_PHASE_DONE, NULL);
  vm_record_mark_up(&u->vm->paths, false, true, NULL);
  return 0;
}

/* --- up ----------------------------------------------------------------- */

/* One `qvm up NAME` at a time, so two of them neither provision twice nor
 * see each other's half-made VM: an flock on STATE/vms/.NAME.up.lock (a dot
 * name, which listing skips; qvm rm removes it), waited for until the
 * deadline. The second up then finds the first one's VM ready. */
typedef struct up_lock_t {
  int fd;
  char *path, *vm_dir;
} up_lock_t;

/* Released at the end of up; a lock file with no VM beside it (the create
 * failed) is removed so that nothing is left behind. */
static void up_unlock(up_lock_t *l) {
  if (l->path && l->vm_dir && access(l->vm_dir, F_OK) < 0) unlink(l->path);
  if (l->fd >= 0) close(l->fd);
  free(l->path);
  free(l->vm_dir);
}

/* Waits for the lock's holder to let go: its last close of the lock file
 * (up_unlock, or its exit) is an IN_CLOSE_WRITE. A process that unlocks
 * without closing sends none (qvm never does), hence the bound on the wait;
 * then the caller tries again. 1: got the lock meanwhile. */
#define UP_LOCK_RECHECK_MS 1000

static int up_lock_wait(int fd, const char *path, int64_t deadline) {
  _cleanup_close_ int ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (ino < 0 || inotify_add_watch(ino, path, IN_CLOSE_WRITE | IN_ATTRIB) < 0) return -errno;
  /* The holder may have closed it before the watch: try once more first. */
  if (flock(fd, LOCK_EX | LOCK_NB) == 0) return 1;
  struct pollfd pfd = {.fd = ino, .events = POLLIN};
  int left = qvm_deadline_left_ms(deadline);
  int n = poll(&pfd, 1, left < UP_LOCK_RECHECK_MS ? left : UP_LOCK_RECHECK_MS);
  return n < 0 && errno != EINTR ? -errno : 0;
}

static int up_lock(up_lock_t *out, const char *name, int64_t deadline, qvm_error **err) {
  _cleanup_free_ char *root = NULL, *dir = NULL, *path = NULL, *vm_dir = NULL;
  int r = vm_state_root(&root, err);
  if (r < 0) return r;
  if (asprintf(&dir, "%s/vms", root) < 0 || asprintf(&path, "%s/.%s.up.lock", dir, name) < 0 ||
      asprintf(&vm_dir, "%s/%s", dir, name) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  if ((r = vm_state_dirs_prepare(err)) < 0) return r;
  for (;;) {
    _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open '%s'", path);
    int got = 0;
    while (!got && flock(fd, LOCK_EX | LOCK_NB) < 0) {
      if (errno != EWOULDBLOCK && errno != EINTR)
        return qvm_error_set_errno(err, errno, "cannot lock '%s'", path);
      if (qvm_now_ms() >= deadline) {
        qvm_error_set(err, QVM_EBUSY, "another up of vm '%s' is still running", name);
        return qvm_error_set_hint(err, QVM_EBUSY, "UpInProgress", name);
      }
      if ((got = up_lock_wait(fd, path, deadline)) < 0)
        return qvm_error_set_errno(err, -got, "cannot wait for '%s'", path);
    }
    /* The holder removes the file when its create failed: a lock on the
     * removed file locks nothing, so take the new one. */
    struct stat fst, pst;
    if (fstat(fd, &fst) == 0 && stat(path, &pst) == 0 && fst.st_ino == pst.st_ino &&
        fst.st_dev == pst.st_dev) {
      out->fd = TAKE_FD(fd);
      out->path = TAKE_PTR(path);
      out->vm_dir = TAKE_PTR(vm_dir);
      return 0;
    }
  }
}

static const char *jstr(struct json_object *o, const char *k) {
  struct json_object *v = NULL;
  return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : "";
}

static int fill_run(up_run *u, qvm_error **err) {
  _cleanup_(json_object_putp) struct json_object *info = NULL;
  int r = vm_info_json(&info, u->vm, err);
  if (r < 0) return r;
  snprintf(u->uuid, sizeof u->uuid, "%s", jstr(info, "uuid"));
  struct json_object *net = NULL;
  json_object_object_get_ex(info, "network", &net);
  snprintf(u->net, sizeof u->net, "%s", jstr(net, "mode"));
  return 0;
}

int vm_up_record_create(const vm_paths *p, const qvm_vm_create_options *create, qvm_error **err) {
  _cleanup_(vm_up_clear) vm_up request = {0};
  int r = up_request(&request, create, err);
  return r < 0 ? r : vm_record_set_up(p, &request, err);
}

/* err is never NULL here. */
#define UP_FAILED_STOP_MS 10000

/* A failed up stops what it started (unless asked to keep it), and the
 * error says what became of the VM. */
static void stop_failed(qvm_vm *vm, qvm_error **err) {
  qvm_vm_stop_options so = QVM_VM_STOP_OPTIONS_INIT;
  so.timeout_ms = UP_FAILED_STOP_MS;
  qvm_error *e = NULL;
  vm_reload(vm, NULL);
  qvm_vm_state st = qvm_vm_get_state(vm);
  if (st != QVM_VM_RUNNING && st != QVM_VM_STARTING) return;
  int r = qvm_vm_stop(vm, &so, &e);
  if (r < 0)
    qvm_error_suffix(err, "\nqvm could not stop vm '%s' after the failure: %s", vm->name,
                     qvm_error_message(e));
  else if (vm_reload(vm, NULL) >= 0 && vm->rec->has_last_exit && vm->rec->last_exit.detail)
    qvm_error_suffix(err,
                     "\nqvm stopped vm '%s': %s (keep a failed vm running with --keep-on-failure)",
                     vm->name, vm->rec->last_exit.detail);
  else
    qvm_error_suffix(err, "\nqvm stopped vm '%s' (keep a failed vm running with --keep-on-failure)",
                     vm->name);
  qvm_error_free(e);
}

static int up(qvm_up_result *out, const char *name, const qvm_vm_create_options *create,
              const qvm_up_options *opts, qvm_error **err) {
  static const qvm_up_options defaults = QVM_UP_OPTIONS_INIT;
  if (!opts) opts = &defaults;
  qvm_up_result scratch;
  qvm_up_result *res = out ? out : &scratch;
  memset(res, 0, sizeof *res);
  for (int i = 0; i < QVM_UP_N_PHASES; i++) res->phase_ms[i] = -1;
  int r = qvm_vm_name_check(name, err);
  if (r < 0) return r;
  if (sodium_init() < 0) return qvm_error_set(err, QVM_ESYS, "libsodium failed to initialize");
  _cleanup_(vm_up_clear) vm_up request = {0};
  if ((r = up_request(&request, create, err)) < 0)
    return qvm_error_prefix(err, "cannot bring up vm '%s'", name);

  up_run u = {.opts = opts,
              .res = res,
              .t0 = qvm_now_ms(),
              .loop = {.ino = -1,
                       .timer = -1,
                       .qemu_pidfd = -1,
                       .shim_pidfd = -1,
                       .probe.fd = -1,
                       .banner_fd = -1}};
  u.deadline = u.t0 + (opts->timeout_ms > 0 ? opts->timeout_ms : 600000);
  u.cloud_init = !create->no_cloud_init && !create->seed_iso;
  bool provision = create->n_provision > 0;
  _cleanup_(up_unlock) up_lock_t lock = {.fd = -1};
  if ((r = up_lock(&lock, name, u.deadline, err)) < 0) return r;
  _cleanup_(qvm_vm_freep) qvm_vm *vm = NULL;

  r = qvm_vm_create(&vm, name, create, err);
  if (r >= 0) {
    res->outcome = QVM_UP_CREATED;
    if ((r = vm_record_set_up(&vm->paths, &request, err)) < 0) return r;
  } else if (qvm_error_code(*err) == QVM_EEXISTS) {
    qvm_error_free(*err);
    *err = NULL;
    if ((r = qvm_vm_open(&vm, name, err)) < 0 || (r = qvm_vm_reconcile(vm, err)) < 0) return r;
    if (!vm->rec->has_up) {
      qvm_error_set(err, QVM_EEXISTS, "vm '%s' exists and was created without up", name);
      return qvm_error_set_hint(err, QVM_EEXISTS, "UpNotByUp", name);
    }
    bool done = vm->rec->up.provisioned, ready = vm->rec->up.ready;
    _cleanup_free_ char *diff = vm_up_diff(&vm->rec->up, &request);
    if (diff && *diff) {
      qvm_error_set(err, QVM_EEXISTS, "vm '%s' exists with a different spec:%s", name, diff);
      return qvm_error_set_hint(err, QVM_EEXISTS, "UpSpecDiffers", name);
    }
    provision = provision && !done;
    qvm_vm_state st = qvm_vm_get_state(vm);
    /* Only a VM whose every phase passed once is taken as up as it is: one
     * whose last up failed (left running for inspection) goes through the
     * phases again. */
    if (st == QVM_VM_RUNNING && !provision && ready) {
      res->outcome = QVM_UP_ALREADY_UP;
      qvm_ssh_options target = QVM_SSH_OPTIONS_INIT;
      if (qvm_vm_ssh_target(&target, vm, 0, NULL) >= 0) {
        qvm_text_for_terminal_into(res->ssh_host, sizeof res->ssh_host, target.host,
                                   strlen(target.host), 0);
        res->ssh_port = target.port;
      }
      return 0;
    }
    res->outcome = QVM_UP_STARTED_AGAIN;
  } else {
    return r;
  }

  u.vm = vm;
  if ((r = fill_run(&u, err)) < 0) return r;
  _cleanup_(loop_close) up_loop *loop = &u.loop;
  if ((r = loop_open(loop, vm, err)) < 0) return qvm_error_prefix(err, "vm '%s'", name);
  qvm_vm_start_options so = QVM_VM_START_OPTIONS_INIT;
  so.timeout_ms = (int)remaining_ms(&u);
  if ((r = qvm_vm_start(vm, &so, err)) < 0) {
    res->failed_phase = QVM_UP_STARTED;
    res->failed_in_phase = true;
    return qvm_error_prefix(err, "vm '%s': phase 'started' did not happen", name);
  }
  loop_attach(loop, vm);
  r = run_phases(&u, provision, err);
  if (r < 0 && !opts->keep_on_failure) stop_failed(vm, err);
  return r;
}

int qvm_vm_up(qvm_up_result *out, const char *name, const qvm_vm_create_options *create,
              const qvm_up_options *opts, qvm_error **err) {
  qvm_error *e = NULL;
  int r = QVM_OPTIONS_CHECK(create, qvm_vm_create_options, QVM_VM_CREATE_OPTIONS_VERSION, err);
  if (r == 0) r = QVM_OPTIONS_CHECK(opts, qvm_up_options, QVM_UP_OPTIONS_VERSION, err);
  if (r < 0) return r;
  r = up(out, name, create, opts, &e);
  if (r < 0) return qvm_error_propagate(err, e);
  return 0;
}
