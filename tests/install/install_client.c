/* SPDX-License-Identifier: MIT */
/*
 * A program outside the qvm tree, built against an installed libqvm with
 * nothing but `pkg-config --cflags --libs qvm`: it sees only the installed
 * headers and links only the exported symbols. It creates a VM from the mini
 * guest's kernel and initrd, starts it (returns once QMP answered), checks
 * the state and qvm_vm_info()'s JSON text, stops and removes it. It also
 * checks that options structs not made with their _INIT macro are refused
 * and that the error codes have their names.
 *
 *   install_client NAME KERNEL INITRD
 */
#define _POSIX_C_SOURCE 200809L /* readlink */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <qvm/error.h>
#include <qvm/vm.h>

static int failed;

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "install_client: FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);              \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
      failed = 1;                                                                                  \
    }                                                                                              \
  } while (0)

static const char *msg(const qvm_error *err) { return err ? qvm_error_message(err) : "(none)"; }

static void check_versions(qvm_vm *vm) {
  qvm_error *err = NULL;
  qvm_vm_start_options zero = {0};
  CHECK(qvm_vm_start(vm, &zero, &err) == QVM_EINVAL, "start with version 0: %s", msg(err));
  CHECK(err && strstr(qvm_error_message(err), "qvm_vm_start_options"), "message: %s", msg(err));
  qvm_error_free(err);
  err = NULL;
  qvm_vm_stop_options newer = QVM_VM_STOP_OPTIONS_INIT;
  newer.version = QVM_VM_STOP_OPTIONS_VERSION + 1;
  CHECK(qvm_vm_stop(vm, &newer, &err) == QVM_EINVAL, "stop with a newer version: %s", msg(err));
  CHECK(err && strstr(qvm_error_message(err), "qvm_vm_stop_options"), "message: %s", msg(err));
  qvm_error_free(err);
  CHECK(!strcmp(qvm_error_code_name(QVM_ECONFLICT), "ECONFLICT"), "name of ECONFLICT");
  CHECK(!strcmp(qvm_error_code_name(QVM_EUNAVAIL), "EUNAVAIL"), "name of EUNAVAIL");
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: install_client NAME KERNEL INITRD\n");
    return 2;
  }
  const char *name = argv[1];
  qvm_error *err = NULL;
  qvm_vm *vm = NULL;
  qvm_vm_create_options co = QVM_VM_CREATE_OPTIONS_INIT;
  co.kernel = argv[2];
  co.initrd = argv[3];
  co.append = "console=ttyS0 qvm.dhcp=0";
  co.memory = 256ull << 20;
  co.net.mode = QVM_VM_NET_NONE;
  co.no_cloud_init = true;
  if (qvm_vm_create(&vm, name, &co, &err) < 0) {
    fprintf(stderr, "install_client: create: %s\n", msg(err));
    return 1;
  }
  CHECK(qvm_vm_get_state(vm) == QVM_VM_CREATED, "state %s",
        qvm_vm_state_name(qvm_vm_get_state(vm)));
  check_versions(vm);

  qvm_vm_start_options so = QVM_VM_START_OPTIONS_INIT;
  so.timeout_ms = 120000;
  if (qvm_vm_start(vm, &so, &err) < 0) {
    fprintf(stderr, "install_client: start: %s\n", msg(err));
    qvm_error_free(err);
    qvm_vm_free(vm);
    qvm_vm_remove(name, true, NULL);
    return 1;
  }
  CHECK(qvm_vm_get_state(vm) == QVM_VM_RUNNING, "state after start: %s",
        qvm_vm_state_name(qvm_vm_get_state(vm)));
  char *info = NULL;
  CHECK(qvm_vm_info(&info, vm, &err) == 0, "info: %s", msg(err));
  CHECK(info && info[0] == '{' && strstr(info, "\"state\":\"running\""), "info JSON: %s",
        info ? info : "(null)");
  /* The shim libqvm exec'd: the test checks it is the installed one. */
  const char *sp = info ? strstr(info, "\"shim_pid\":") : NULL;
  if (sp) {
    char link[64], exe[4096];
    snprintf(link, sizeof link, "/proc/%ld/exe", strtol(sp + strlen("\"shim_pid\":"), NULL, 10));
    ssize_t n = readlink(link, exe, sizeof exe - 1);
    if (n > 0) exe[n] = '\0';
    printf("install_client: shim %s\n", n > 0 ? exe : "(unknown)");
  }
  CHECK(sp != NULL, "no shim_pid in info");
  free(info);

  /* A running VM is not removed without force: the state conflict code. */
  qvm_error *rm_err = NULL;
  CHECK(qvm_vm_remove(name, false, &rm_err) == QVM_ECONFLICT, "rm while running: %s", msg(rm_err));
  CHECK(rm_err && qvm_error_class(rm_err) && !strcmp(qvm_error_class(rm_err), "VmRunning"),
        "class of rm while running");
  CHECK(rm_err && !strstr(qvm_error_message(rm_err), "--"), "a library message names a flag: %s",
        msg(rm_err));
  qvm_error_free(rm_err);

  qvm_vm_stop_options stop = QVM_VM_STOP_OPTIONS_INIT;
  stop.timeout_ms = 1000; /* the mini guest may ignore ACPI: then quit */
  CHECK(qvm_vm_stop(vm, &stop, &err) == 0, "stop: %s", msg(err));
  qvm_vm_state st = qvm_vm_get_state(vm);
  CHECK(st == QVM_VM_STOPPED, "state after stop: %s", qvm_vm_state_name(st));
  qvm_vm_free(vm);
  CHECK(qvm_vm_remove(name, false, &err) == 0, "remove: %s", msg(err));
  qvm_vm *gone = NULL;
  qvm_error *open_err = NULL;
  CHECK(qvm_vm_open(&gone, name, &open_err) == QVM_ENOTFOUND, "open after remove");
  qvm_error_free(open_err);
  qvm_vm_free(gone);
  qvm_error_free(err);
  if (!failed) printf("install_client: ok\n");
  return failed;
}
