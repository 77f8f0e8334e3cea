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
#include <unistd.h>

#include <sodium.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "vm/defaults.h"
#include "vm/handle.h"
#include "vm/syntax.h"
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

static int set_str(char **out, const char *v, const char *dflt, qvm_error **err) {
  if (!v) v = dflt;
  if (v && !(*out = strdup(v))) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  return 0;
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
  int r = set_path(&j->image, "image", o->image, err);
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
  if (r >= 0) r = set_str(&j->user, o->user, VM_DEFAULT_USER, err);
  if (r >= 0) r = set_str(&j->hostname, o->hostname, NULL, err);
  if (r >= 0) r = set_str(&j->hostkey, o->hostkey, VM_DEFAULT_HOSTKEY, err);
  if (r >= 0) r = set_str(&j->image_format, o->image_format, NULL, err); /* unset: detected */
  if (r >= 0) r = set_typed(j, o, err);
  if (r >= 0) r = set_list(&j->cdroms, o->cdroms, o->n_cdroms, err);
  if (r < 0) vm_up_clear(j);
  return r;
}

/* --- phases ------------------------------------------------------------- */

typedef struct up_run {
  qvm_vm *vm;
  const qvm_up_options *opts;
  qvm_up_result *res;
  int64_t t0, deadline;
  char uuid[37];
  char net[16];
  bool cloud_init;
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
  qvm_vm_state st = qvm_vm_get_state(u->vm);
  if (st == QVM_VM_RUNNING || st == QVM_VM_STARTING) return 0;
  char why[160];
  snprintf(why, sizeof why, "the vm is %s", qvm_vm_state_name(st));
  return phase_failed(u, p, QVM_EINVAL, why, err);
}

/* Serial output since `*scanned` (plus a marker's length of overlap), for
 * the predicates below: the log can be large and grows, so each wakeup reads
 * only what is new. Guest output may hold NULs, hence memmem, not strstr. */
typedef bool (*serial_pred)(const char *chunk, size_t len, const up_run *u);

static bool serial_check(const up_run *u, off_t *scanned, serial_pred pred) {
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

/* Waits (inotify on the serial log) until `pred` holds for new output. */
static int wait_serial(up_run *u, qvm_up_phase p, serial_pred pred, const char *what,
                       qvm_error **err) {
  _cleanup_close_ int ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (ino < 0) return qvm_error_set_errno(err, errno, "inotify_init1");
  int wd = inotify_add_watch(ino, u->vm->paths.serial_log, IN_MODIFY);
  off_t scanned = 0;
  for (;;) {
    if (serial_check(u, &scanned, pred)) return 0;
    int r = check_running(u, p, err);
    if (r < 0) return r;
    int64_t left = remaining_ms(u);
    if (!left) return phase_failed(u, p, QVM_ETIMEOUT, what, err);
    struct pollfd pfd = {.fd = ino, .events = POLLIN};
    /* The bound is for the liveness check and a log created after the watch. */
    if (poll(&pfd, 1, (int)(left < 1000 ? left : 1000)) > 0) {
      char buf[4096];
      while (read(ino, buf, sizeof buf) > 0) {
      }
    } else if (wd < 0) {
      wd = inotify_add_watch(ino, u->vm->paths.serial_log, IN_MODIFY);
    }
  }
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

/* TCP phase: the guest's sshd sent "SSH-". A bare connect is not enough: in
 * user mode slirp accepts at once and drops the connection if nothing
 * listens in the guest. */
static bool ssh_banner(const char *host, int port, int timeout_ms) {
  struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
  struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  bool v6 = strchr(host, ':') != NULL;
  if (v6 ? inet_pton(AF_INET6, host, &a6.sin6_addr) != 1
         : inet_pton(AF_INET, host, &a4.sin_addr) != 1)
    return false;
  _cleanup_close_ int fd =
      socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  if (connect(fd, v6 ? (struct sockaddr *)&a6 : (struct sockaddr *)&a4,
              v6 ? sizeof a6 : sizeof a4) < 0 &&
      errno != EINPROGRESS)
    return false;
  int64_t deadline = qvm_now_ms() + timeout_ms;
  char buf[8];
  size_t got = 0;
  while (got < 4) {
    int64_t left = deadline - qvm_now_ms();
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) return false;
    ssize_t n = read(fd, buf + got, 4 - got);
    if (n <= 0) return false;
    got += (size_t)n;
  }
  return memcmp(buf, "SSH-", 4) == 0;
}

static int wait_tcp(up_run *u, const char *host, int port, qvm_error **err) {
  int backoff = 50;
  for (;;) {
    int64_t left = remaining_ms(u);
    if (ssh_banner(host, port, (int)(left < 3000 ? left : 3000))) return 0;
    int r = check_running(u, QVM_UP_TCP, err);
    if (r < 0) return r;
    if (!(left = remaining_ms(u))) {
      char why[160];
      snprintf(why, sizeof why, "no SSH banner from %s port %d (is sshd running in the guest?)",
               host, port);
      return phase_failed(u, QVM_UP_TCP, QVM_ETIMEOUT, why, err);
    }
    usleep((useconds_t)(backoff < left ? backoff : left) * 1000);
    backoff = backoff * 2 > 250 ? 250 : backoff * 2; /* a probe is cheap; 1 s would lag */
  }
}

/* Collects an exec's stdout into a strbuf (bounded). */
static int collect(void *ctx, int stream, const void *data, size_t len) {
  (void)stream;
  qvm_strbuf *sb = ctx;
  if (sb->len < (1u << 20)) qvm_strbuf_append(sb, data, len);
  return 0;
}

static int run_capture(char **out, int *exit_code, qvm_ssh *ssh, const char *cmd, int timeout_ms,
                       qvm_error **err) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  qvm_ssh_exec_options eo = QVM_SSH_EXEC_OPTIONS_INIT;
  eo.command = cmd;
  eo.on_output = collect;
  eo.ctx = &sb;
  eo.timeout_ms = timeout_ms;
  qvm_ssh_exec_result res = {0};
  int r = qvm_ssh_exec(&res, ssh, &eo, err);
  *out = qvm_strbuf_steal(&sb);
  *exit_code = res.exit_code;
  return r;
}

/* The guest's output (at most max bytes of it), for a message: quoted lines. */
static char *quote(const char *text, size_t max) {
  size_t len = text ? strnlen(text, max) : 0;
  return qvm_text_quote(text ? text : "", len, GUEST_LINE_PREFIX);
}

/* cloud-init: `cloud-init status --wait --long` blocks in the guest until
 * it has finished; qvm's marker on serial is the event that times it. */
#define NO_MARKER                                                                                  \
  "qvm's readiness line never appeared on the serial console (is the image's console not "         \
  "ttyS0?): harmless, up goes on"

static int wait_cloud_init(up_run *u, qvm_ssh *ssh, qvm_error **err) {
  _cleanup_free_ char *out = NULL;
  int code = 0;
  int64_t left = remaining_ms(u);
  int r = run_capture(&out, &code, ssh, "cloud-init status --wait --long 2>&1", (int)left, err);
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
  bool marker = wait_serial(u, QVM_UP_CLOUD_INIT, serial_has_marker, "no marker", err) >= 0;
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

static int run_phases(up_run *u, bool provision, qvm_error **err) {
  qvm_up_result *res = u->res;
  phase_done(u, QVM_UP_STARTED, QVM_UP_PHASE_DONE, NULL);
  int r = wait_serial(u, QVM_UP_SERIAL, serial_nonempty,
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
  phase_done(u, QVM_UP_TCP, QVM_UP_PHASE_DONE, NULL);

  /* 0 would mean connect's 30 s default: never more than what is left. */
  qvm_vm_ssh_options so = QVM_VM_SSH_OPTIONS_INIT;
  so.timeout_ms = remaining_ms(u) > 0 ? (int)remaining_ms(u) : 1;
  _cleanup_(qvm_ssh_freep) qvm_ssh *ssh = NULL;
  if ((r = qvm_vm_ssh_connect(&ssh, u->vm, &so, err)) < 0) {
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

static int up_lock(up_lock_t *out, const char *name, int64_t deadline, qvm_error **err) {
  _cleanup_free_ char *root = NULL, *dir = NULL, *path = NULL, *vm_dir = NULL;
  int r = vm_state_root(&root, err);
  if (r < 0) return r;
  if (asprintf(&dir, "%s/vms", root) < 0 || asprintf(&path, "%s/.%s.up.lock", dir, name) < 0 ||
      asprintf(&vm_dir, "%s/%s", dir, name) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  if ((r = vm_state_dirs_prepare(err)) < 0) return r;
  _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open '%s'", path);
  while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    if (errno != EWOULDBLOCK && errno != EINTR)
      return qvm_error_set_errno(err, errno, "cannot lock '%s'", path);
    if (qvm_now_ms() >= deadline) {
      qvm_error_set(err, QVM_EBUSY, "another up of vm '%s' is still running", name);
      return qvm_error_set_hint(err, QVM_EBUSY, "UpInProgress", name);
    }
    usleep(100 * 1000);
  }
  out->fd = TAKE_FD(fd);
  out->path = TAKE_PTR(path);
  out->vm_dir = TAKE_PTR(vm_dir);
  return 0;
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

/* err is never NULL here. */
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

  up_run u = {.opts = opts, .res = res, .t0 = qvm_now_ms()};
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
    if ((r = qvm_vm_open(&vm, name, err)) < 0) return r;
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
  qvm_vm_start_options so = QVM_VM_START_OPTIONS_INIT;
  so.timeout_ms = (int)remaining_ms(&u);
  if ((r = qvm_vm_start(vm, &so, err)) < 0) {
    res->failed_phase = QVM_UP_STARTED;
    res->failed_in_phase = true;
    return qvm_error_prefix(err, "vm '%s': phase 'started' did not happen", name);
  }
  return run_phases(&u, provision, err);
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
