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
#include "vm/handle.h"
#include "vm/net.h"

void qvm_vm_free(qvm_vm *vm) {
  if (!vm) return;
  free(vm->name);
  vm_paths_clear(&vm->paths);
  vm_spec_free(vm->spec);
  json_object_put(vm->doc);
  free(vm);
}
QVM_DEFINE_CLEANUP(qvm_vm, qvm_vm_free)

const char *qvm_vm_name(const qvm_vm *vm) { return vm->name; }

int vm_reload(qvm_vm *vm, qvm_error **err) {
  struct json_object *doc = NULL, *spec_json = NULL;
  qvm_error *e = NULL;
  int r = vm_doc_read(&doc, vm->paths.json, &e);
  if (r == QVM_ENOTFOUND) {
    qvm_error_free(e);
    return qvm_error_set(err, QVM_ENOTFOUND, "vm '%s' not found", vm->name);
  }
  if (r < 0) return qvm_error_propagate(err, e);
  vm_spec *spec = NULL;
  if (!json_object_object_get_ex(doc, "spec", &spec_json))
    r = qvm_error_set(err, QVM_EINVAL, "'%s' has no spec", vm->paths.json);
  if (r >= 0) r = vm_spec_from_json(&spec, spec_json, err);
  if (r >= 0 && strcmp(spec->name, vm->name))
    r = qvm_error_set(err, QVM_EINVAL, "'%s' describes vm '%s'", vm->paths.json, spec->name);
  if (r < 0) {
    vm_spec_free(spec);
    json_object_put(doc);
    return r;
  }
  vm_spec_free(vm->spec);
  json_object_put(vm->doc);
  vm->spec = spec;
  vm->doc = doc;
  return 0;
}

void vm_runtime_view_read(vm_runtime_view *out, struct json_object *doc) {
  *out = (vm_runtime_view){0};
  struct json_object *rt = NULL, *v = NULL;
  if (!doc || !json_object_object_get_ex(doc, "runtime", &rt) ||
      !json_object_is_type(rt, json_type_object))
    return;
  out->present = true;
  if (json_object_object_get_ex(rt, "status", &v) && json_object_is_type(v, json_type_string))
    snprintf(out->status, sizeof out->status, "%s", json_object_get_string(v));
  if (json_object_object_get_ex(rt, "shim", &v) && vm_proc_from_json(&out->shim, v, NULL) == 0) {
    out->has_shim = true;
    out->shim_alive = vm_proc_alive(&out->shim);
  }
  if (json_object_object_get_ex(rt, "qemu", &v) && vm_proc_from_json(&out->qemu, v, NULL) == 0) {
    out->has_qemu = true;
    out->qemu_alive = vm_proc_alive(&out->qemu);
  }
}

qvm_vm_state vm_state_eval(struct json_object *doc, const vm_runtime_view *rv) {
  if (rv->present && (rv->qemu_alive || rv->shim_alive)) {
    if (!strcmp(rv->status, "running") && rv->qemu_alive) return QVM_VM_RUNNING;
    if (!strcmp(rv->status, "starting")) return QVM_VM_STARTING;
    return QVM_VM_STOPPING; /* stopping, or QEMU gone and the shim recording it */
  }
  if (rv->present) return QVM_VM_CRASHED; /* both gone without a record */
  struct json_object *last = NULL, *clean = NULL;
  if (!json_object_object_get_ex(doc, "last_exit", &last)) return QVM_VM_CREATED;
  if (json_object_object_get_ex(last, "clean", &clean) && json_object_get_boolean(clean))
    return QVM_VM_STOPPED;
  return QVM_VM_CRASHED;
}

const char *qvm_vm_state_name(qvm_vm_state s) {
  static const char *const names[] = {"created",  "starting", "running",
                                      "stopping", "stopped",  "crashed"};
  return (unsigned)s < QVM_ARRAY_SIZE(names) ? names[s] : "unknown";
}

qvm_vm_state qvm_vm_get_state(qvm_vm *vm) {
  vm_reload(vm, NULL);
  vm_runtime_view rv;
  vm_runtime_view_read(&rv, vm->doc);
  return vm_state_eval(vm->doc, &rv);
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

int vm_accel_resolve(vm_accel *out, const char **out_warning, vm_accel requested, qvm_error **err) {
  *out_warning = NULL;
  if (requested == VM_ACCEL_TCG) {
    *out = VM_ACCEL_TCG;
    return 0;
  }
  const char *why = kvm_unusable_reason();
  if (!why) {
    *out = VM_ACCEL_KVM;
    return 0;
  }
  if (requested == VM_ACCEL_KVM)
    return qvm_error_set(err, QVM_EINVAL,
                         "accelerator 'kvm' was asked for, but KVM is not usable (%s): use "
                         "--accel tcg or auto",
                         why);
  static char warning[160];
  snprintf(warning, sizeof warning,
           "KVM is not usable (%s): running under TCG emulation, which is much slower", why);
  *out = VM_ACCEL_TCG;
  *out_warning = warning;
  return 0;
}

/* --- reconciling what vm.json says with which processes exist ------------- */

static int record_lost_cb(struct json_object *doc, void *ctx, qvm_error **err) {
  (void)ctx;
  (void)err;
  struct json_object *o = json_object_new_object();
  char ts[32];
  qvm_format_rfc3339(ts, qvm_realtime_us());
  json_object_object_add(o, "reason", json_object_new_string("lost"));
  json_object_object_add(o, "clean", json_object_new_boolean(false));
  json_object_object_add(o, "detail",
                         json_object_new_string("qemu and its shim exited without recording why"));
  json_object_object_add(o, "run_status", json_object_new_int(QVM_RUN_EXIT_ERROR));
  json_object_object_add(o, "at", json_object_new_string(ts));
  json_object_object_del(doc, "runtime");
  json_object_object_add(doc, "last_exit", o);
  return 0;
}

static int adopt(qvm_vm *vm, qvm_error **err) {
  /* qvm-shim --adopt takes the accelerator from vm.json itself */
  shim_config cfg = {.mode = SHIM_ADOPT, .ready_fd = -1, .lock_fd = -1, .stop_timeout_s = 60};
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
  vm_runtime_view_read(&rv, vm->doc);
  if (!rv.present || rv.shim_alive) return 0;
  if (rv.qemu_alive) return adopt(vm, err);
  r = vm_doc_update(&vm->paths, record_lost_cb, NULL, err);
  vm_net_remove_tap(vm->spec); /* QEMU is gone: a tap left behind is nobody's */
  unlink(vm->paths.qmp_sock);
  unlink(vm->paths.console_sock);
  unlink(vm->paths.qga_sock);
  rmdir(vm->paths.run_dir);
  return r < 0 ? r : vm_reload(vm, err);
}

static bool needs_reconcile(qvm_vm *vm) {
  vm_runtime_view rv;
  vm_runtime_view_read(&rv, vm->doc);
  return rv.present && !rv.shim_alive;
}

int qvm_vm_open(qvm_vm **out, const char *name, qvm_error **err) {
  _cleanup_(qvm_vm_freep) qvm_vm *vm = calloc(1, sizeof *vm);
  if (!vm || !(vm->name = strdup(name ? name : "")))
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  int r = vm_paths_init(&vm->paths, name, err);
  if (r >= 0) r = vm_reload(vm, err);
  if (r < 0) return r;
  if (needs_reconcile(vm)) {
    int fd = -1;
    /* Whoever holds the lock reconciles on its own. */
    if (vm_lock_acquire(&fd, &vm->paths, "reattach", 0, NULL) == 0) {
      r = reconcile_locked(vm, err);
      vm_lock_release(fd);
      if (r < 0) return r;
    }
  }
  *out = TAKE_PTR(vm);
  return 0;
}

/* --- start ------------------------------------------------------------------ */

static int wait_pidfd(int pidfd, int timeout_ms);

static bool vm_active(qvm_vm *vm, vm_runtime_view *rv) {
  vm_runtime_view_read(rv, vm->doc);
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

/* lock_fd: the caller's lock, which the shim inherits and holds until QEMU's
 * monitor answered, so that a caller killed mid-start lets no second start
 * in while this one is under way. */
static int start_locked(qvm_vm *vm, int lock_fd, const qvm_vm_start_options *opts,
                        qvm_error **err) {
  int r = reconcile_locked(vm, err);
  if (r < 0) return r;
  vm_runtime_view rv;
  vm_active(vm, &rv);
  if ((r = wait_for_record(vm, &rv, err)) < 0) return r;
  if (vm_active(vm, &rv)) return 0;
  shim_config cfg = {.mode = SHIM_SPAWN, .ready_fd = -1, .lock_fd = lock_fd, .stop_timeout_s = 60};
  /* the shim resolves it again; this fails early, before a process is made */
  if ((r = vm_accel_resolve(&cfg.accel, &cfg.accel_warning, vm->spec->accel, err)) < 0) return r;
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
  int r = vm_lock_acquire(&fd, &vm->paths, "start", VM_LOCK_TIMEOUT_MS, err);
  if (r >= 0) r = start_locked(vm, fd, opts, err);
  vm_lock_release(fd);
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

static int request_locked(qvm_vm *vm, int op, int timeout_s, qvm_error **err) {
  int r = reconcile_locked(vm, err);
  if (r < 0) return r;
  vm_runtime_view rv;
  if (!vm_active(vm, &rv)) return 0;
  if (!rv.shim_alive) return qvm_error_set(err, QVM_EBUSY, "the vm has no shim");
  int pidfd = vm_proc_pidfd(&rv.shim);
  if (pidfd < 0) return qvm_error_set(err, QVM_ENOTFOUND, "the vm's shim is gone");
  /* The job ends once QEMU has exited and the exit is recorded. */
  int wait_ms = (op == REQ_STOP ? timeout_s * 1000 : 0) + 30000;
  r = vm_ctl_stop(&vm->paths, pidfd, op == REQ_KILL, timeout_s * 1000, wait_ms, err);
  close(pidfd);
  if (r < 0) return r;
  return vm_reload(vm, err);
}

int qvm_vm_stop(qvm_vm *vm, const qvm_vm_stop_options *opts, qvm_error **err) {
  int timeout = opts ? opts->timeout_s : 60;
  if (timeout < 0 || timeout > 24 * 3600)
    return qvm_error_set(err, QVM_EINVAL, "stop timeout '%d' is out of range", timeout);
  int fd = -1;
  int r = vm_lock_acquire(&fd, &vm->paths, "stop", VM_LOCK_TIMEOUT_MS, err);
  if (r >= 0) r = request_locked(vm, REQ_STOP, timeout, err);
  vm_lock_release(fd);
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
  if (r < 0) {
    qvm_error_prefix(err, "cannot kill vm '%s'", vm->name);
    return r;
  }
  return 0;
}

int qvm_vm_restart(qvm_vm *vm, const qvm_vm_stop_options *stop, const qvm_vm_start_options *start,
                   qvm_error **err) {
  int fd = -1;
  int r = vm_lock_acquire(&fd, &vm->paths, "restart", VM_LOCK_TIMEOUT_MS, err);
  if (r >= 0) r = request_locked(vm, REQ_STOP, stop ? stop->timeout_s : 60, err);
  if (r >= 0) r = start_locked(vm, fd, start, err);
  vm_lock_release(fd);
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
    if (!force)
      return qvm_error_set(err, QVM_EBUSY, "vm '%s' is running: stop it first, or use --force",
                           vm->name);
    if ((r = request_locked(vm, REQ_KILL, 0, err)) < 0) return r;
  }
  vm_net_remove_tap(vm->spec);
  qvm_error *e = NULL;
  if (qvm_rm_rf(vm->paths.run_dir, &e) < 0 && qvm_error_errno(e) != ENOENT)
    return qvm_error_propagate(err, e);
  qvm_error_free(e);
  return qvm_rm_rf(vm->paths.dir, err);
}

int qvm_vm_remove(const char *name, bool force, qvm_error **err) {
  _cleanup_(qvm_vm_freep) qvm_vm *vm = NULL;
  int r = qvm_vm_open(&vm, name, err);
  if (r < 0) return r;
  int fd = -1;
  r = vm_lock_acquire(&fd, &vm->paths, "rm", VM_LOCK_TIMEOUT_MS, err);
  if (r >= 0) r = remove_locked(vm, force, err);
  vm_lock_release(fd);
  _cleanup_free_ char *up_lock = NULL; /* vm/up.c's; nothing of the VM stays */
  if (r >= 0 && asprintf(&up_lock, "%s/.%s.up.lock", vm->paths.vms, name) > 0) unlink(up_lock);
  if (r < 0) {
    qvm_error_prefix(err, "cannot remove vm '%s'", name);
    return r;
  }
  return 0;
}

/* --- run in the foreground ------------------------------------------------ */

int qvm_vm_run(int *out, qvm_vm *vm, int stop_timeout_s, qvm_error **err) {
  int fd = -1;
  int r = vm_lock_acquire(&fd, &vm->paths, "run", VM_LOCK_TIMEOUT_MS, err);
  if (r >= 0) r = reconcile_locked(vm, err);
  vm_runtime_view rv;
  if (r >= 0 && vm_active(vm, &rv))
    r = qvm_error_set(err, QVM_EEXISTS, "vm '%s' is already running", vm->name);
  shim_config cfg = {.mode = SHIM_SPAWN,
                     .ready_fd = -1,
                     .lock_fd = fd,
                     .stop_timeout_s = stop_timeout_s > 0 ? stop_timeout_s : 60};
  if (r >= 0) r = vm_accel_resolve(&cfg.accel, &cfg.accel_warning, vm->spec->accel, err);
  if (r < 0) {
    vm_lock_release(fd);
    qvm_error_prefix(err, "cannot run vm '%s'", vm->name);
    return r;
  }
  /* The shim releases the lock once QMP answered. */
  r = vm_shim_run(out, vm, &cfg, err);
  if (r < 0) {
    qvm_error_prefix(err, "cannot run vm '%s'", vm->name);
    return r;
  }
  vm_reload(vm, NULL);
  return 0;
}
