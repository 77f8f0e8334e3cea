/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_STATE_H
#define QVM_VM_STATE_H

/*
 * State on disk: where it lives, the per-VM operation lock, vm.json updates,
 * and process records that survive neither a reboot nor pid reuse.
 */
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "util/error.h"

typedef struct vm_paths {
  char *vms;  /* STATE/vms */
  char *dir;  /* STATE/vms/NAME */
  char *json; /* vm.json */
  char *lock;
  char *disk;
  char *serial_log;
  char *events;
  char *lease; /* lease.json: the shim's newest DHCP lease for this run (0600) */
  char *qemu_log;
  char *run_dir; /* RUNTIME/NAME */
  char *qmp_sock;
  char *console_sock;
  char *qga_sock; /* QEMU listens here for the guest agent's virtio-serial port */
  char *ctl_sock; /* the shim's control socket (docs/shim-protocol.md) */
} vm_paths;

int vm_state_root(char **out, qvm_error **err);
int vm_runtime_root(char **out, qvm_error **err);
/* Checks the name first, then every socket path against sun_path. */
int vm_paths_init(vm_paths *out, const char *name, qvm_error **err);
void vm_paths_clear(vm_paths *p);

/* Every directory qvm keeps state or sockets in is private to its user:
 * `path` (and any missing parent) is created 0700; an existing one must be
 * a directory owned by this user (else QVM_EINVAL naming the owner), and if
 * group or others have any access it is tightened to 0700. */
int vm_private_dir(const char *path, qvm_error **err);
/* vm_private_dir() on the state root and its vms/ (create, up). */
int vm_state_dirs_prepare(qvm_error **err);
/* vm_private_dir() on the runtime root and a VM's run_dir in it. */
int vm_run_dir_prepare(const vm_paths *p, qvm_error **err);

/* A process as recorded: valid only on the same boot with the same start
 * time, so neither a reboot nor a reused pid is trusted. */
typedef struct vm_proc {
  pid_t pid;
  uint64_t start_time; /* /proc/PID/stat field 22, clock ticks since boot */
  char boot_id[37];
} vm_proc;

int vm_boot_id(char out[37], qvm_error **err);
int vm_proc_start_time(uint64_t *out, pid_t pid, qvm_error **err);
int vm_proc_record(vm_proc *out, pid_t pid, qvm_error **err);
/* True when rec names a live process on boot `boot_id`. */
bool vm_proc_matches(const vm_proc *rec, const char *boot_id);
bool vm_proc_alive(const vm_proc *rec);
/* A pidfd for the recorded process, or -1 if it is gone. */
int vm_proc_pidfd(const vm_proc *rec);
struct json_object *vm_proc_to_json(const vm_proc *p);
int vm_proc_from_json(vm_proc *out, struct json_object *obj, qvm_error **err);

/* A JSON object from a file (at most 1 MiB) or from bytes (NUL-terminated at
 * text[len]); `what` names it in errors. vm.json itself is read and written
 * only through vm/record.h. */
int vm_doc_read(struct json_object **out, const char *path, qvm_error **err);
int vm_doc_parse(struct json_object **out, const char *text, size_t len, const char *what,
                 qvm_error **err);

/* The per-VM operation lock. Waits up to timeout_ms, then QVM_EBUSY naming
 * the holder's operation and pid. QVM_ENOTFOUND if the VM does not exist. */
int vm_lock_acquire(int *out, const vm_paths *p, const char *op, int timeout_ms, qvm_error **err);
/* Truncates the holder note only when it names this process: a lock handed
 * to a shim (which rewrote the note, vm_lock_note) is still held by it. */
void vm_lock_release(int fd);
/* Writes the holder note "OP PID" (this process), e.g. when a shim
 * inherits the lock: waiters then name it in their error. */
void vm_lock_note(int fd, const char *op);

#define VM_LOCK_TIMEOUT_MS 10000

#endif
