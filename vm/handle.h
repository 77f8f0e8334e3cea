/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_HANDLE_H
#define QVM_VM_HANDLE_H

/* What the vm/ files share: the handle behind qvm_vm, the runtime view of
 * vm.json, and the shim's entry points. */
#include <stdbool.h>

#include <json-c/json.h>

#include "util/error.h"
#include "vm/record.h"
#include "vm/spec.h"
#include "vm/state.h"
#include <qvm/vm.h>

struct qvm_vm {
  char *name;
  vm_paths paths;
  vm_record *rec; /* vm.json as last read */
  vm_spec *spec;  /* rec->spec, lent */
};

int vm_reload(qvm_vm *vm, qvm_error **err);
/* qvm_vm_info() as a json-c object (the caller's; json_object_put). */
int vm_info_json(struct json_object **out, qvm_vm *vm, qvm_error **err);

/* The record's runtime, with the recorded processes checked. */
typedef struct vm_runtime_view {
  bool present;
  char status[16]; /* "starting", "running", "stopping" */
  bool has_shim, has_qemu;
  vm_proc shim, qemu;
  bool shim_alive, qemu_alive;
} vm_runtime_view;

void vm_runtime_view_read(vm_runtime_view *out, const vm_record *rec);
qvm_vm_state vm_state_eval(const vm_record *rec, const vm_runtime_view *rv);

/* KVM when /dev/kvm answers KVM_GET_API_VERSION, else TCG with a warning
 * (*out_warning, static string, NULL when none). */
int vm_accel_resolve(vm_accel *out, const char **out_warning, vm_accel requested, qvm_error **err);

typedef enum shim_mode { SHIM_SPAWN, SHIM_ADOPT } shim_mode;

typedef struct shim_config {
  shim_mode mode;
  int ready_fd;       /* gets "OK\n" or "E<code> <message>\n" once QMP answered */
  int lock_fd;        /* released once QMP answered (foreground run) */
  int stop_timeout_s; /* for SIGTERM/SIGINT */
  vm_accel accel;     /* resolved */
  const char *accel_warning;
} shim_config;

/* Requests another process sends the shim: SIGUSR1 with this value. */
enum { SHIM_REQ_STOP = 1, SHIM_REQ_KILL = 2 };
#define SHIM_REQ(op, timeout_s) ((op) | ((timeout_s) << 8))

/* Runs the shim in this process until QEMU exits; *out gets the qvm run
 * status (QVM_RUN_EXIT_*). */
int vm_shim_run(int *out, qvm_vm *vm, const shim_config *cfg, qvm_error **err);
/* Double-forks a detached shim and waits for its ready message. */
int vm_shim_start_detached(qvm_vm *vm, const shim_config *cfg, int timeout_ms, qvm_error **err);

/* Appends one event line to events.jsonl (takes ownership of ev). */
void vm_events_append(int fd, struct json_object *ev);
/* The last lines of a file, for error messages ("" when none). */
char *vm_file_tail(const char *path, int lines);

#endif
