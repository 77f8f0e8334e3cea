/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_HANDLE_H
#define QVM_VM_HANDLE_H

/* What the vm/ files share: the handle behind qvm_vm, the runtime view of
 * vm.json, and the shim's entry points. */
#include <stdatomic.h>
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

/* The record's runtime, with the recorded processes checked. */
typedef struct vm_runtime_view {
  bool present;
  char status[16]; /* "starting", "running", "stopping" */
  bool has_shim, has_qemu;
  vm_proc shim, qemu;
  bool shim_alive, qemu_alive;
} vm_runtime_view;

void vm_runtime_view_read(vm_runtime_view *out, const vm_record *rec);
/* qvm_vm_info() as a json-c object (the caller's; json_object_put). */
int vm_info_json(struct json_object **out, qvm_vm *vm, qvm_error **err);
/* The same from a runtime view the caller read (vm/list.c: one read decides
 * both the answer and whether it can change while vm.json does not). */
struct json_object *vm_info_json_view(qvm_vm *vm, const vm_runtime_view *rv);
/* vm/list.c keeps an info only if vm.json's ctime was older than this when
 * it was read (default 1 s; tests lower it). */
extern int64_t vm_list_racy_ns;
/* How many VMs' vm.json it read (and did not take from what it kept). */
extern atomic_ulong vm_list_reads;
qvm_vm_state vm_state_eval(const vm_record *rec, const vm_runtime_view *rv);

/* KVM when /dev/kvm can run a vCPU, else TCG with a warning in warning[]
 * ("" when none; the caller's buffer, so parallel starts share nothing). */
int vm_accel_resolve(vm_accel *out, char *warning, size_t warning_size, vm_accel requested,
                     qvm_error **err);

typedef enum shim_mode { SHIM_SPAWN, SHIM_ADOPT } shim_mode;

typedef struct shim_config {
  shim_mode mode;
  int ready_fd; /* gets "OK\n" or "E<code> <message>\n" once QMP answered */
  int lock_fd;  /* released once QMP answered: the caller's own (foreground run,
                   unlocked) or a copy inherited by qvm-shim (closed) */
  bool lock_inherited;
  bool foreground;         /* qvm run: QEMU must not outlive this process */
  int stop_timeout_s;      /* for SIGTERM/SIGINT */
  vm_accel accel;          /* resolved */
  char accel_warning[160]; /* "" when none */
} shim_config;

/* Runs the shim in this process until QEMU exits; *out gets the qvm run
 * status (QVM_RUN_EXIT_*). */
int vm_shim_run(int *out, qvm_vm *vm, const shim_config *cfg, qvm_error **err);
/* Execs qvm-shim NAME [--adopt] detached (double fork, setsid, a clean
 * environment, fds 0-2 on /dev/null, the ready pipe as fd 3 and lock_fd, if
 * any, as fd 4) and waits for its ready message. */
int vm_shim_start_detached(qvm_vm *vm, const shim_config *cfg, int timeout_ms, qvm_error **err);
/* Opens a VM for the shim: vm.json read, no reconcile (that would adopt). */
int vm_open_for_shim(qvm_vm **out, const char *name, qvm_error **err);

/* ctl.sock's client side (vm/shim_client.c). One request; for a stop or
 * kill, waits until the job is done (QEMU exited and the exit recorded) and
 * the shim (pidfd) has exited, at most timeout_ms in all. */
int vm_ctl_stop(const vm_paths *p, int shim_pidfd, bool kill, int stop_timeout_ms, int timeout_ms,
                qvm_error **err);

/* One `qmp` passthrough on ctl.sock: *out gets QEMU's return value (the
 * caller's; json_object_put) within timeout_ms. QEMU's error is QVM_EQMP
 * with its message; a refused command QVM_EINVAL. */
int vm_ctl_qmp(struct json_object **out, const vm_paths *p, const char *command,
               struct json_object *args, int timeout_ms, qvm_error **err);
/* `save-state` on ctl.sock: the shim creates VM_FORK_STATE_FILE (0600) in
 * the VM's directory and has QEMU migrate its RAM and device state into it
 * (getfd + migrate fd:); the caller follows it with query-migrate. */
int vm_ctl_save_state(const vm_paths *p, int timeout_ms, qvm_error **err);
/* `expiry` on ctl.sock: the shim re-reads its deadline from vm.json;
 * *out_us (may be NULL) gets the one it now keeps. A shim whose VM expired
 * already: QVM_ECONFLICT. */
int vm_ctl_expiry(int64_t *out_us, const vm_paths *p, int timeout_ms, qvm_error **err);
/* In a VM's directory: the migration stream `save-state` writes, and the
 * one a fork's shim resumes from once (it unlinks it when it opens it). */
#define VM_FORK_STATE_FILE "fork.state"
#define VM_INCOMING_FILE "incoming.state"
/* The user-mode SSH forward's last port, reused when free at the next start. */
#define VM_SSH_PORT_FILE "ssh.port"
/* The guest's clock set to the host's (the guest agent's guest-set-time):
 * a fork resumes with the time its source was saved at. */
int vm_qga_set_time(const vm_paths *p, int timeout_ms, qvm_error **err);
/* One guest agent command without arguments (execute: a constant such as
 * "guest-fsfreeze-freeze"), after a sync; 0 when the agent returned,
 * QVM_EUNAVAIL when it did not answer the sync within 5 s (or timeout_ms;
 * the command was not sent), QVM_EPROTO when it answered the command with
 * an error, QVM_ETIMEOUT when it did not answer it within timeout_ms.
 * The answer's value is not read: the guest's word decides nothing. */
int vm_qga_command(const vm_paths *p, const char *execute, int timeout_ms, qvm_error **err);
/* The same in two halves: send (a connected fd, the sync id), and later
 * wait for the agent's answers (the caller closes the fd). */
int vm_qga_set_time_send(int *out_fd, unsigned *out_id, const vm_paths *p, qvm_error **err);
int vm_qga_set_time_wait(int fd, unsigned id, int timeout_ms, qvm_error **err);
/* Under the VM's lock: what qvm_vm_reconcile does, and vm.json re-read. */
int vm_reconcile_locked(qvm_vm *vm, qvm_error **err);

/* Records in a VM just made by qvm_vm_create with `create` that up made
 * it (vm/up.c), so that qvm_vm_up with the same options brings it up
 * (qvm_vm_clone creates under the image store's lock, then ups). */
int vm_up_record_create(const vm_paths *p, const qvm_vm_create_options *create, qvm_error **err);

/* Appends one event line to events.jsonl (takes ownership of ev). */
void vm_events_append(int fd, struct json_object *ev);
/* The last lines of a file, for error messages ("" when none). */
char *vm_file_tail(const char *path, int lines);

#endif
