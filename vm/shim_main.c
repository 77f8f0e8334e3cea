/* SPDX-License-Identifier: MIT */
/* qvm-shim's main (include/qvm/shim.h): the arguments, the fds it was
 * given, then the shim itself (vm/shim.c). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <qvm/shim.h>

#include "util/cleanup.h"
#include "vm/cpu.h"
#include "vm/handle.h"

#define SHIM_READY_FD 3
#define SHIM_LOCK_FD 4

int vm_open_for_shim(qvm_vm **out, const char *name, qvm_error **err) {
  qvm_vm *vm = calloc(1, sizeof *vm);
  if (!vm || !(vm->name = strdup(name))) {
    free(vm);
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  }
  int r = vm_paths_init(&vm->paths, name, err);
  if (r >= 0) r = vm_reload(vm, err);
  if (r < 0) {
    qvm_vm_free(vm);
    return r;
  }
  *out = vm;
  return 0;
}

/* fd 3 is used only when it is a pipe, fd 4 only when it is the VM's lock
 * file: a shim run by hand does not write into whatever it inherited. */
static int ready_fd(void) {
  struct stat st;
  if (fstat(SHIM_READY_FD, &st) < 0 || !S_ISFIFO(st.st_mode)) return -1;
  fcntl(SHIM_READY_FD, F_SETFD, FD_CLOEXEC);
  return SHIM_READY_FD;
}

static int lock_fd(const vm_paths *p) {
  struct stat fst, pst;
  if (fstat(SHIM_LOCK_FD, &fst) < 0 || stat(p->lock, &pst) < 0 || fst.st_ino != pst.st_ino ||
      fst.st_dev != pst.st_dev)
    return -1;
  fcntl(SHIM_LOCK_FD, F_SETFD, FD_CLOEXEC);
  return SHIM_LOCK_FD;
}

static void report(int fd, int code, const char *msg) {
  if (fd >= 0)
    dprintf(fd, "E%d %s", code, msg);
  else
    fprintf(stderr, "qvm-shim: %s\n", msg);
}

/* In adopt mode the accelerator is the one vm.json recorded. */
static vm_accel recorded_accel(const qvm_vm *vm) {
  const vm_runtime *rt = &vm->rec->runtime;
  if (vm->rec->has_runtime && rt->has_accelerator && rt->accelerator == VM_ACCEL_KVM)
    return VM_ACCEL_KVM;
  return VM_ACCEL_TCG;
}

int qvm_shim_main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN); /* a caller killed mid-start leaves a closed ready pipe */
  setsid();
  umask(077);
  int ready = ready_fd();
  bool adopt = argc == 3 && !strcmp(argv[2], "--adopt");
  if (argc < 2 || argc > 3 || (argc == 3 && !adopt)) {
    report(ready, QVM_EINVAL, "usage: qvm-shim NAME [--adopt]");
    return QVM_RUN_EXIT_ERROR;
  }
  qvm_vm *vm = NULL;
  qvm_error *e = NULL;
  int r = vm_open_for_shim(&vm, argv[1], &e);
  shim_config cfg = {.mode = adopt ? SHIM_ADOPT : SHIM_SPAWN,
                     .ready_fd = ready,
                     .lock_fd = -1,
                     .lock_inherited = true,
                     .stop_timeout_s = 60};
  if (r >= 0) cfg.lock_fd = lock_fd(&vm->paths);
  /* the lock is this shim's now (until QEMU's monitor answers): say so */
  if (cfg.lock_fd >= 0) vm_lock_note(cfg.lock_fd, adopt ? "reattach" : "start");
  if (r >= 0 && adopt) cfg.accel = recorded_accel(vm);
  if (r >= 0 && !adopt)
    r = vm_accel_resolve(&cfg.accel, cfg.accel_warning, sizeof cfg.accel_warning, vm->spec->accel,
                         &e);
  if (r >= 0 && !adopt) r = vm_cpu_usable(vm->spec->cpu, cfg.accel, vm->name, &e);
  int status = QVM_RUN_EXIT_ERROR;
  if (r >= 0) {
    r = vm_shim_run(&status, vm, &cfg, &e); /* answers on the ready pipe itself */
  } else {
    report(ready, r, qvm_error_message(e));
    if (cfg.lock_fd >= 0) close(cfg.lock_fd);
    if (ready >= 0) close(ready);
  }
  qvm_error_free(e);
  qvm_vm_free(vm);
  return r < 0 ? QVM_RUN_EXIT_ERROR : status;
}
