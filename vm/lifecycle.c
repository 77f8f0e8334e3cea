/* SPDX-License-Identifier: MIT */
/* Opening a VM, reading its state, and the state changes: start, stop, kill,
 * restart, remove, run. Each change holds the VM's lock; the shim does the
 * work that must outlive this process. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <qvm/text.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/time.h"
#include "vm/audit.h"
#include "vm/cpu.h"
#include "vm/handle.h"
#include "vm/net.h"
#include "vm/ttl.h"

void qvm_vm_free(qvm_vm *vm) {
  if (!vm) return;
  free(vm->name);
  vm_paths_clear(&vm->paths);
  vm_record_free(vm->rec);
  free(vm);
}
QVM_DEFINE_CLEANUP(qvm_vm, qvm_vm_free)

const char *qvm_vm_name(const qvm_vm *vm) { return vm->name; }

int vm_reload(qvm_vm *vm, qvm_error **err) {
  vm_record *rec = NULL;
  qvm_error *e = NULL;
  int r = vm_record_read(&rec, vm->paths.json, &e);
  if (r == QVM_ENOTFOUND) {
    qvm_error_free(e);
    return qvm_error_set(err, QVM_ENOTFOUND, "vm '%s' not found", vm->name);
  }
  if (r < 0) return qvm_error_propagate(err, e);
  if (strcmp(rec->spec->name, vm->name)) {
    r = qvm_error_set(err, QVM_EINVAL, "'%s' describes vm '%s'", vm->paths.json, rec->spec->name);
    vm_record_free(rec);
    return r;
  }
  vm_record_free(vm->rec);
  vm->rec = rec;
  vm->spec = rec->spec;
  return 0;
}

void vm_runtime_view_read(vm_runtime_view *out, const vm_record *rec) {
  *out = (vm_runtime_view){0};
  if (!rec || !rec->has_runtime) return;
  const vm_runtime *rt = &rec->runtime;
  out->present = true;
  snprintf(out->status, sizeof out->status, "%s", vm_run_status_name(rt->status));
  if (rt->has_shim) {
    out->has_shim = true;
    out->shim = rt->shim;
    out->shim_alive = vm_proc_alive(&out->shim);
  }
  if (rt->has_qemu) {
    out->has_qemu = true;
    out->qemu = rt->qemu;
    out->qemu_alive = vm_proc_alive(&out->qemu);
  }
}

qvm_vm_state vm_state_eval(const vm_record *rec, const vm_runtime_view *rv) {
  if (rv->present && (rv->qemu_alive || rv->shim_alive)) {
    if (!strcmp(rv->status, "running") && rv->qemu_alive) return QVM_VM_RUNNING;
    if (!strcmp(rv->status, "starting")) return QVM_VM_STARTING;
    return QVM_VM_STOPPING; /* stopping, or QEMU gone and the shim recording it */
  }
  if (rv->present) return QVM_VM_CRASHED; /* both gone without a record */
  if (!rec || !rec->has_last_exit) return QVM_VM_CREATED;
  return rec->last_exit.clean ? QVM_VM_STOPPED : QVM_VM_CRASHED;
}

const char *qvm_vm_state_name(qvm_vm_state s) {
  static const char *const names[] = {"created",  "starting", "running",
                                      "stopping", "stopped",  "crashed"};
  return (unsigned)s < QVM_ARRAY_SIZE(names) ? names[s] : "unknown";
}

qvm_vm_state qvm_vm_get_state(const qvm_vm *vm) {
  vm_runtime_view rv;
  vm_runtime_view_read(&rv, vm->rec);
  return vm_state_eval(vm->rec, &rv);
}

/* Whether KVM can run a vCPU the way QEMU sets one up. Answering
 * KVM_GET_API_VERSION is not enough: some sandboxes expose a /dev/kvm that
 * creates VMs but refuses the host's feature MSRs, which QEMU writes into
 * every vCPU and aborts on (kvm_buf_set_msrs). NULL if usable, else why not. */
static const char *kvm_unusable_reason(void) {
  _cleanup_close_ int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? "there is no /dev/kvm" : "/dev/kvm cannot be opened";
  if (ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
    return "/dev/kvm has another API version";
  _cleanup_close_ int vmfd = ioctl(fd, KVM_CREATE_VM, 0);
  if (vmfd < 0) return "/dev/kvm cannot create a VM";
  _cleanup_close_ int vcpu = ioctl(vmfd, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) return "/dev/kvm cannot create a vCPU";
  if (ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_GET_MSR_FEATURES) > 0) {
    union { /* room for one entry after the header's flexible array */
      struct kvm_msrs head;
      unsigned char room[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
    } msrs = {.head.nmsrs = 1};
    msrs.head.entries[0].index = 0x10a; /* IA32_ARCH_CAPABILITIES */
    if (ioctl(fd, KVM_GET_MSRS, &msrs) == 1 && ioctl(vcpu, KVM_SET_MSRS, &msrs) != 1)
      return "/dev/kvm refuses the host's feature MSRs in a vCPU (a partial KVM)";
  }
  return NULL;
}

int vm_accel_resolve(vm_accel *out, char *warning, size_t warning_size, vm_accel requested,
                     qvm_error **err) {
  if (warning_size) warning[0] = '\0';
  if (requested == VM_ACCEL_TCG) {
    *out = VM_ACCEL_TCG;
    return 0;
  }
  const char *why = kvm_unusable_reason();
  if (!why) {
    *out = VM_ACCEL_KVM;
    return 0;
  }
  if (requested == VM_ACCEL_KVM) {
    qvm_error_set(err, QVM_EUNAVAIL, "accelerator 'kvm' was asked for, but KVM is not usable (%s)",
                  why);
    return qvm_error_set_hint(err, QVM_EUNAVAIL, "KvmUnusable", NULL);
  }
  snprintf(warning, warning_size,
           "KVM is not usable (%s): running under TCG emulation, which is much slower", why);
  *out = VM_ACCEL_TCG;
  return 0;
}

/* --- reconciling what vm.json says with which processes exist ------------- */

static int record_lost(qvm_vm *vm, qvm_error **err) {
  vm_exit x = {.reason = "lost",
               .detail = "qemu and its shim exited without recording why",
               .run_status = QVM_RUN_EXIT_ERROR};
  x.at_us = qvm_realtime_us();
  qvm_format_rfc3339(x.at, x.at_us);
  return vm_record_exit(&vm->paths, &x, err);
}

static int adopt(qvm_vm *vm, qvm_error **err) {
  /* qvm-shim --adopt takes the accelerator from vm.json itself */
  shim_config cfg = {.mode = SHIM_ADOPT, .ready_fd = -1, .lock_fd = -1, .stop_timeout_s = 60};
  const vm_runtime *rt = &vm->rec->runtime;
  if (vm->rec->has_runtime && rt->has_accelerator)
    cfg.accel = rt->accelerator == VM_ACCEL_KVM ? VM_ACCEL_KVM : VM_ACCEL_TCG;
  int r = vm_shim_start_detached(vm, &cfg, 15000, err);
  if (r < 0) {
    qvm_error_prefix(err, "cannot re-attach to vm '%s'", vm->name);
    return r;
  }
  return vm_reload(vm, err);
}

/* Under the lock: a shim that died while QEMU runs is replaced by one that
 * adopts QEMU; a VM whose processes are all gone gets an exit record. */
static int reconcile_locked(qvm_vm *vm, qvm_error **err) {
  int r = vm_reload(vm, err);
  if (r < 0) return r;
  vm_runtime_view rv;
  vm_runtime_view_read(&rv, vm->rec);
  if (!rv.present || rv.shim_alive) return 0;
  if (rv.qemu_alive) return adopt(vm, err);
  r = record_lost(vm, err);
  vm_net_remove_tap(vm->spec); /* QEMU is gone: a tap left behind is nobody's */
  unlink(vm->paths.ctl_sock);
  unlink(vm->paths.qmp_sock);
  unlink(vm->paths.console_sock);
  unlink(vm->paths.qga_sock);
  rmdir(vm->paths.run_dir);
  return r < 0 ? r : vm_reload(vm, err);
}

int vm_reconcile_locked(qvm_vm *vm, qvm_error **err) { return reconcile_locked(vm, err); }

static bool needs_reconcile(qvm_vm *vm) {
  vm_runtime_view rv;
  vm_runtime_view_read(&rv, vm->rec);
  return rv.present && !rv.shim_alive;
}

/* Reads vm.json once: no process is started and nothing is written. */
int qvm_vm_open(qvm_vm **out, const char *name, qvm_error **err) {
  _cleanup_(qvm_vm_freep) qvm_vm *vm = calloc(1, sizeof *vm);
  if (!vm || !(vm->name = strdup(name ? name : "")))
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  int r = vm_paths_init(&vm->paths, name, err);
  if (r >= 0) r = vm_reload(vm, err);
  if (r < 0) return r;
  *out = TAKE_PTR(vm);
  return 0;
}

int qvm_vm_refresh(qvm_vm *vm, qvm_error **err) { return vm_reload(vm, err); }

int qvm_vm_reconcile(qvm_vm *vm, qvm_error **err) {
  int r = vm_reload(vm, err);
  if (r < 0 || !(needs_reconcile(vm) || vm_spec_expired(vm->spec, qvm_realtime_us()))) return r;
  int fd = -1;
  /* Whoever holds the lock reconciles on its own. */
  if (vm_lock_acquire(&fd, &vm->paths, "reattach", 0, NULL) < 0) return 0;
  r = reconcile_locked(vm, err);
  if (r >= 0) r = vm_expire_locked(vm, err); /* a sandbox's deadline passed while nothing ran */
  vm_lock_release(fd);
  return r;
}

/* --- start ------------------------------------------------------------------ */

static int wait_pidfd(int pidfd, int timeout_ms);

static bool vm_active(qvm_vm *vm, vm_runtime_view *rv) {
  vm_runtime_view_read(rv, vm->rec);
  return rv->present && (rv->shim_alive || rv->qemu_alive);
}

/* QEMU has exited but its shim is still recording why: let it finish. */
static int wait_for_record(qvm_vm *vm, vm_runtime_view *rv, qvm_error **err) {
  if (!rv->present || rv->qemu_alive || !rv->shim_alive || !strcmp(rv->status, "starting"))
    return 0;
  int pidfd = vm_proc_pidfd(&rv->shim);
  if (pidfd >= 0) {
    wait_pidfd(pidfd, 30000);
    close(pidfd);
  }
  int r = reconcile_locked(vm, err);
  if (r >= 0) vm_active(vm, rv);
  return r;
}

/* True if execvp() would find `program` (as the shim execs QEMU). */
static bool program_found(const char *program) {
  if (strchr(program, '/')) return access(program, X_OK) == 0;
  const char *path = getenv("PATH");
  if (!path || !*path) path = "/usr/local/bin:/bin:/usr/bin";
  for (const char *p = path; p; p = strchr(p, ':') ? strchr(p, ':') + 1 : NULL) {
    size_t len = strcspn(p, ":");
    char file[4096];
    if (snprintf(file, sizeof file, "%.*s/%s", (int)len, len ? p : ".", program) <
            (int)sizeof file &&
        access(file, X_OK) == 0)
      return true;
  }
  return false;
}

/* A missing QEMU is QVM_EUNAVAIL before any shim or state is made. */
static int qemu_available(qvm_error **err) {
  const char *q = getenv("QVM_QEMU");
  if (!q || !*q) q = "qemu-system-x86_64";
  if (program_found(q)) return 0;
  qvm_error_set(err, QVM_EUNAVAIL, "qemu '%s' is not installed: not found in PATH", q);
  return qvm_error_set_hint(err, QVM_EUNAVAIL, "QemuMissing", NULL);
}

/* lock_fd: the caller's lock, which the shim inherits and holds until QEMU's
 * monitor answered, so that a caller killed mid-start lets no second start
 * in while this one is under way. */
static int start_locked(qvm_vm *vm, int lock_fd, const qvm_vm_start_options *opts,
                        qvm_error **err) {
  int r = reconcile_locked(vm, err);
  if (r >= 0) r = vm_expire_locked(vm, err); /* an expired sandbox never starts again */
  if (r < 0) return r;
  vm_runtime_view rv;
  vm_active(vm, &rv);
  if ((r = wait_for_record(vm, &rv, err)) < 0) return r;
  if (vm_active(vm, &rv)) return 0;
  /* Again: the shim that just exited may have been the expired one's, which
   * could not remove the vm while this start held the lock. */
  if ((r = vm_expire_locked(vm, err)) < 0) return r;
  shim_config cfg = {.mode = SHIM_SPAWN, .ready_fd = -1, .lock_fd = lock_fd, .stop_timeout_s = 60};
  if ((r = qemu_available(err)) < 0) return r;
  /* qvm-shim resolves the accelerator itself; "kvm" is checked here too so
   * that it fails before any process is made. "auto" is not: creating a VM
   * and a vCPU twice costs more than a millisecond. */
  if (vm->spec->accel == VM_ACCEL_KVM &&
      (r = vm_accel_resolve(&cfg.accel, cfg.accel_warning, sizeof cfg.accel_warning,
                            vm->spec->accel, err)) < 0)
    return r;
  /* "host" under TCG: said before any process is made when TCG was asked
   * for; after auto's probe, the shim says it. */
  if (vm->spec->accel != VM_ACCEL_AUTO &&
      (r = vm_cpu_usable(vm->spec->cpu, vm->spec->accel, vm->name, err)) < 0)
    return r;
  int timeout = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 60000;
  r = vm_shim_start_detached(vm, &cfg, timeout, err);
  if (r < 0) {
    /* the guest's lines, quoted: none can pass for one of qvm's */
    _cleanup_free_ char *tail = vm_file_tail(vm->paths.serial_log, 10);
    _cleanup_free_ char *quoted = tail ? qvm_text_quote(tail, strlen(tail), "  | ") : NULL;
    if (quoted && *quoted) qvm_error_prefix(err, "serial log ends with:\n%s\n", quoted);
    return r;
  }
  return vm_reload(vm, err);
}

int qvm_vm_start(qvm_vm *vm, const qvm_vm_start_options *opts, qvm_error **err) {
  int fd = -1;
  int r = QVM_OPTIONS_CHECK(opts, qvm_vm_start_options, QVM_VM_START_OPTIONS_VERSION, err);
  if (r < 0) return r;
  r = vm_lock_acquire(&fd, &vm->paths, "start", VM_LOCK_TIMEOUT_MS, err);
  if (r >= 0) r = start_locked(vm, fd, opts, err);
  vm_lock_release(fd);
  vm_audit_note(vm->name, "start", r, (const qvm_error *const *)err, NULL);
  if (r < 0) {
    qvm_error_prefix(err, "cannot start vm '%s'", vm->name);
    return r;
  }
  return 0;
}

/* --- stop, kill ------------------------------------------------------------- */

static int wait_pidfd(int pidfd, int timeout_ms) {
  struct pollfd p = {.fd = pidfd, .events = POLLIN};
  int64_t deadline = qvm_now_ms() + timeout_ms;
  for (;;) {
    int n = poll(&p, 1, qvm_deadline_left_ms(deadline));
    if (n > 0) return 0;
    if (n == 0) return QVM_ETIMEOUT;
    if (errno != EINTR) return QVM_ESYS;
  }
}

enum { REQ_STOP, REQ_KILL };

static int request_locked(qvm_vm *vm, int op, int timeout_ms, qvm_error **err) {
  int r = reconcile_locked(vm, err);
  if (r < 0) return r;
  vm_runtime_view rv;
  if (!vm_active(vm, &rv)) return 0;
  if (!rv.shim_alive) return qvm_error_set(err, QVM_EBUSY, "the vm has no shim");
  int pidfd = vm_proc_pidfd(&rv.shim);
  if (pidfd < 0) return qvm_error_set(err, QVM_ENOTFOUND, "the vm's shim is gone");
  /* The job ends once QEMU has exited and the exit is recorded. */
  int wait_ms = (op == REQ_STOP ? timeout_ms : 0) + 30000;
  r = vm_ctl_stop(&vm->paths, pidfd, op == REQ_KILL, timeout_ms, wait_ms, err);
  close(pidfd);
  if (r < 0) return r;
  return vm_reload(vm, err);
}

static int stop_timeout_ms(int *out, const qvm_vm_stop_options *opts, qvm_error **err) {
  int r = QVM_OPTIONS_CHECK(opts, qvm_vm_stop_options, QVM_VM_STOP_OPTIONS_VERSION, err);
  if (r < 0) return r;
  int ms = opts ? opts->timeout_ms : 60000;
  if (ms < 0 || ms > 24 * 3600 * 1000)
    return qvm_error_set(err, QVM_EINVAL, "stop timeout %d ms is out of range (0 to 24 h)", ms);
  *out = ms;
  return 0;
}

int qvm_vm_stop(qvm_vm *vm, const qvm_vm_stop_options *opts, qvm_error **err) {
  int timeout = 0;
  int r = stop_timeout_ms(&timeout, opts, err);
  if (r < 0) return r;
  int fd = -1;
  r = vm_lock_acquire(&fd, &vm->paths, "stop", VM_LOCK_TIMEOUT_MS, err);
  if (r >= 0) r = request_locked(vm, REQ_STOP, timeout, err);
  vm_lock_release(fd);
  vm_audit_note(vm->name, "stop", r, (const qvm_error *const *)err, NULL);
  if (r < 0) {
    qvm_error_prefix(err, "cannot stop vm '%s'", vm->name);
    return r;
  }
  return 0;
}

int qvm_vm_kill(qvm_vm *vm, qvm_error **err) {
  int fd = -1;
  int r = vm_lock_acquire(&fd, &vm->paths, "kill", VM_LOCK_TIMEOUT_MS, err);
  if (r >= 0) r = request_locked(vm, REQ_KILL, 0, err);
  vm_lock_release(fd);
  vm_audit_note(vm->name, "kill", r, (const qvm_error *const *)err, NULL);
  if (r < 0) {
    qvm_error_prefix(err, "cannot kill vm '%s'", vm->name);
    return r;
  }
  return 0;
}

int qvm_vm_restart(qvm_vm *vm, const qvm_vm_stop_options *stop, const qvm_vm_start_options *start,
                   qvm_error **err) {
  int fd = -1, timeout = 0;
  int r = stop_timeout_ms(&timeout, stop, err);
  if (r == 0) r = QVM_OPTIONS_CHECK(start, qvm_vm_start_options, QVM_VM_START_OPTIONS_VERSION, err);
  if (r < 0) return r;
  r = vm_lock_acquire(&fd, &vm->paths, "restart", VM_LOCK_TIMEOUT_MS, err);
  if (r >= 0) r = request_locked(vm, REQ_STOP, timeout, err);
  if (r >= 0) r = start_locked(vm, fd, start, err);
  vm_lock_release(fd);
  vm_audit_note(vm->name, "restart", r, (const qvm_error *const *)err, NULL);
  if (r < 0) {
    qvm_error_prefix(err, "cannot restart vm '%s'", vm->name);
    return r;
  }
  return 0;
}

/* --- remove ----------------------------------------------------------------- */

static int remove_locked(qvm_vm *vm, bool force, qvm_error **err) {
  int r = reconcile_locked(vm, err);
  if (r < 0) return r;
  vm_runtime_view rv;
  if (vm_active(vm, &rv)) {
    if (!force) {
      qvm_error_set(err, QVM_ECONFLICT, "vm '%s' is running", vm->name);
      return qvm_error_set_hint(err, QVM_ECONFLICT, "VmRunning", vm->name);
    }
    if ((r = request_locked(vm, REQ_KILL, 0, err)) < 0) return r;
  }
  vm_net_remove_tap(vm->spec);
  qvm_error *e = NULL;
  if (qvm_rm_rf(vm->paths.run_dir, &e) < 0 && qvm_error_errno(e) != ENOENT)
    return qvm_error_propagate(err, e);
  qvm_error_free(e);
  return qvm_rm_rf(vm->paths.dir, err);
}

int vm_remove_locked(qvm_vm *vm, qvm_error **err) { return remove_locked(vm, false, err); }

/* vm.json cannot be read, so nothing in it can be trusted: only a shim that
 * answers on the VM's own ctl.sock (in its 0700 runtime dir) is told to
 * kill QEMU; then both directories go. A tap the VM made stays (its name
 * comes from the spec that could not be read). */
static int remove_unreadable_locked(qvm_vm *vm, qvm_error **err) {
  qvm_error *e = NULL;
  int r = vm_ctl_stop(&vm->paths, -1, true, 0, 30000, &e);
  if (r < 0 && r != QVM_ENOTFOUND) {
    qvm_error_prefix(&e, "vm.json cannot be read, and its shim was not stopped");
    return qvm_error_propagate(err, e);
  }
  qvm_error_free(e);
  e = NULL;
  if (qvm_rm_rf(vm->paths.run_dir, &e) < 0 && qvm_error_errno(e) != ENOENT)
    return qvm_error_propagate(err, e);
  qvm_error_free(e);
  return qvm_rm_rf(vm->paths.dir, err);
}

int qvm_vm_remove(const char *name, bool force, qvm_error **err) {
  _cleanup_(qvm_vm_freep) qvm_vm *vm = NULL;
  qvm_error *open_err = NULL;
  int r = qvm_vm_open(&vm, name, &open_err), fd = -1;
  bool unreadable = false;
  if (r < 0 && force && r != QVM_ENOTFOUND) {
    /* a valid name whose vm.json does not read: remove it all the same */
    vm = calloc(1, sizeof *vm);
    if (vm && (vm->name = strdup(name)) && vm_paths_init(&vm->paths, name, NULL) >= 0 &&
        access(vm->paths.json, F_OK) == 0)
      unreadable = true;
  }
  if (r < 0 && !unreadable) return qvm_error_propagate(err, open_err);
  qvm_error_free(open_err);
  r = vm_lock_acquire(&fd, &vm->paths, "rm", VM_LOCK_TIMEOUT_MS, err);
  if (r >= 0) r = unreadable ? remove_unreadable_locked(vm, err) : remove_locked(vm, force, err);
  vm_lock_release(fd);
  vm_audit_remove(name, force, r, (const qvm_error *const *)err);
  _cleanup_free_ char *up_lock = NULL; /* vm/up.c's; nothing of the VM stays */
  if (r >= 0 && asprintf(&up_lock, "%s/.%s.up.lock", vm->paths.vms, name) > 0) unlink(up_lock);
  if (r < 0) {
    qvm_error_prefix(err, "cannot remove vm '%s'", name);
    return r;
  }
  return 0;
}

/* --- run in the foreground ------------------------------------------------ */

int qvm_vm_run(int *out, qvm_vm *vm, int stop_timeout_ms, qvm_error **err) {
  if (stop_timeout_ms < 0 || stop_timeout_ms > 24 * 3600 * 1000)
    return qvm_error_set(err, QVM_EINVAL, "stop timeout %d ms is out of range (0 to 24 h)",
                         stop_timeout_ms);
  int fd = -1;
  int r = vm_lock_acquire(&fd, &vm->paths, "run", VM_LOCK_TIMEOUT_MS, err);
  if (r >= 0) r = reconcile_locked(vm, err);
  vm_runtime_view rv;
  if (r >= 0 && vm_active(vm, &rv))
    r = qvm_error_set(err, QVM_EEXISTS, "vm '%s' is already running", vm->name);
  shim_config cfg = {.mode = SHIM_SPAWN,
                     .ready_fd = -1,
                     .lock_fd = fd,
                     .foreground = true,
                     .stop_timeout_s = stop_timeout_ms > 0 ? (stop_timeout_ms + 999) / 1000 : 60};
  if (r >= 0) r = qemu_available(err);
  if (r >= 0)
    r = vm_accel_resolve(&cfg.accel, cfg.accel_warning, sizeof cfg.accel_warning, vm->spec->accel,
                         err);
  if (r >= 0) r = vm_cpu_usable(vm->spec->cpu, cfg.accel, vm->name, err);
  if (r < 0) {
    vm_lock_release(fd);
    qvm_error_prefix(err, "cannot run vm '%s'", vm->name);
    return r;
  }
  /* The shim releases the lock once QMP answered. */
  r = vm_shim_run(out, vm, &cfg, err);
  vm_audit_run(vm->name, r, out, (const qvm_error *const *)err);
  if (r < 0) {
    qvm_error_prefix(err, "cannot run vm '%s'", vm->name);
    return r;
  }
  vm_reload(vm, NULL);
  return 0;
}
