/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_RECORD_H
#define QVM_VM_RECORD_H

/*
 * One VM is one typed record: its spec, what runs now (runtime), how the last
 * run ended (last_exit) and what `qvm up` was asked for (up). vm.json is this
 * record under ONE codec, with "schema": 2 at the top (docs/vm-json.md).
 * Every write of vm.json goes through the update functions below: read under
 * the VM directory's flock, change typed members, write atomically (temp,
 * fsync, rename). A schema-1 vm.json (qvm before the record) is migrated in
 * memory and stored as schema 2 by the next write.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "vm/spec.h"
#include "vm/state.h"

#define VM_RECORD_SCHEMA 2

typedef enum vm_run_status { VM_RUN_STARTING, VM_RUN_RUNNING, VM_RUN_STOPPING } vm_run_status;

/* Microseconds on the realtime clock; 0 when not (yet) known. */
typedef struct vm_timings {
  int64_t shim_start_us;
  int64_t qemu_spawn_us;
  int64_t qmp_ready_us;
} vm_timings;

/* "runtime": present while a shim runs (or ran without recording an exit). */
typedef struct vm_runtime {
  vm_run_status status;
  bool has_shim, has_qemu;
  vm_proc shim, qemu;
  bool adopted;          /* the shim re-attached to a QEMU it did not spawn */
  bool has_accelerator;  /* written once QEMU is spawned */
  vm_accel accelerator;  /* VM_ACCEL_KVM or VM_ACCEL_TCG */
  char *accel_warning;   /* NULL when none */
  char *cpu;             /* QEMU's -cpu as spawned; NULL unknown (older shims) */
  uint16_t ssh_port;     /* user net: the forwarded 127.0.0.1 port; 0 none */
  int64_t started_at_us; /* QEMU spawned; 0 unknown */
  bool has_timings;
  vm_timings timings;
} vm_runtime;

/* "last_exit": how the last run ended. */
typedef struct vm_exit {
  char *reason; /* stopped, shutdown, killed, forced, signal, error, lost, expired */
  bool clean;
  char *detail;
  bool has_exit_code;
  int exit_code;         /* 0..255 */
  int signal;            /* 1..64; 0 none */
  char *shutdown_reason; /* QEMU's SHUTDOWN event reason; NULL none */
  int run_status;        /* QVM_RUN_EXIT_*, 0..255 */
  char at[40];           /* RFC 3339 */
  int64_t at_us;         /* 0 unknown (schema 1 "lost" records) */
} vm_exit;

/* "up": what `qvm up` was asked for, normalized (absolute paths, file
 * digests, defaults filled in), to tell a repeated up from a changed one. */
typedef struct vm_strv {
  char **v;
  size_t n;
} vm_strv;

typedef struct vm_up {
  char *image, *kernel, *initrd; /* absolute; NULL unset */
  bool has_memory, has_disk;
  uint64_t memory, disk; /* bytes */
  vm_strv cloud_config;  /* "PATH (sha256 0123456789ab)" */
  vm_strv ssh_keys;      /* the same */
  char *append;
  unsigned cpus;
  char *net, *firmware, *accel, *machine, *user, *hostname, *hostkey, *image_format;
  char *cpu; /* NULL: auto (a record from before --cpu has none) */
  bool allow_backing, cloud_init, nat;
  vm_strv ports, provision, drives, cdroms;
  bool provisioned, ready; /* phases that passed once */
} vm_up;

/* "snapshots": one entry per snapshot qvm made of disk.qcow2 (an internal
 * qcow2 snapshot; with RAM, its vmstate too). The name follows the VM-name
 * rule. parent: the snapshot restored or taken last before it ("" none). */
#define VM_SNAPSHOT_MAX 256
typedef struct vm_snapshot {
  char name[64];
  char created_at[40];    /* RFC 3339 */
  bool ram;               /* vmstate and device state, restorable into a running VM */
  char vm_state[16];      /* the VM's state when it was taken: "running", "stopped", ... */
  uint64_t vm_state_size; /* bytes of RAM and device state (QEMU's vm-state-size); 0 disk-only */
  uint64_t disk_bytes;    /* the disk's virtual size then */
  char parent[64];
} vm_snapshot;

typedef struct vm_record {
  int schema_read; /* the schema the file had (1 or 2); written: always 2 */
  char created_at[40];
  vm_spec *spec;
  bool has_runtime, has_last_exit, has_up;
  vm_runtime runtime;
  vm_exit last_exit;
  vm_up up;
  vm_snapshot *snapshots; /* n_snapshots, in creation order */
  size_t n_snapshots;
  char snapshot_current[64]; /* restored or taken last; "" none */
} vm_record;

void vm_record_free(vm_record *rec);
QVM_DEFINE_CLEANUP(vm_record, vm_record_free)
void vm_runtime_clear(vm_runtime *rt);
void vm_exit_clear(vm_exit *x);
void vm_up_clear(vm_up *up);
/* Copies src's strings; *out is cleared first. */
int vm_up_copy(vm_up *out, const vm_up *src, qvm_error **err);
int vm_strv_add(vm_strv *v, const char *s, qvm_error **err);

const char *vm_run_status_name(vm_run_status s);

/* The codec. from_json validates every member it reads (vm.json is a user
 * file); unknown members are ignored and not written back. A newer schema is
 * QVM_EINVAL naming it and this qvm's version. */
struct json_object *vm_record_to_json(const vm_record *rec);
int vm_record_from_json(vm_record **out, struct json_object *doc, qvm_error **err);
/* The parts, for `qvm info`, events and the up diff. */
struct json_object *vm_runtime_to_json(const vm_runtime *rt);
struct json_object *vm_timings_to_json(const vm_timings *t);
struct json_object *vm_exit_to_json(const vm_exit *x);
/* The up request without the phase flags (what the diff compares). */
struct json_object *vm_up_request_to_json(const vm_up *up);
struct json_object *vm_snapshot_to_json(const vm_snapshot *sn);

/* "\n  memory: was 1G, now 2G" for every request member that differs; ""
 * when none, NULL on OOM. */
char *vm_up_diff(const vm_up *was, const vm_up *now);

/* From bytes (NUL at text[len]) or from a file; `what` names it in errors. */
int vm_record_parse(vm_record **out, const char *text, size_t len, const char *what,
                    qvm_error **err);
int vm_record_read(vm_record **out, const char *path, qvm_error **err);
/* Atomic: temp file, fsync, rename; 0600. */
int vm_record_write(const char *path, const vm_record *rec, qvm_error **err);

/* Typed read-modify-write under an flock on the VM's directory. */
typedef int (*vm_record_update_fn)(vm_record *rec, void *ctx, qvm_error **err);
int vm_record_update(const vm_paths *p, vm_record_update_fn fn, void *ctx, qvm_error **err);
/* How long an update waits for that flock in this process: -1 (the
 * default) for as long as it takes; else at most ms, then QVM_EBUSY and the
 * update is not made. The shim sets it (VM_RECORD_SHIM_LOCK_WAIT_MS): its
 * loop must not freeze behind a process suspended while holding the lock. */
void vm_record_set_lock_wait(int ms);
#define VM_RECORD_SHIM_LOCK_WAIT_MS 2000

/* Replaces "runtime" (the shim, once QEMU is spawned and once QMP answers). */
int vm_record_set_runtime(const vm_paths *p, const vm_runtime *rt, qvm_error **err);
/* Sets the status, the shim's process record (NULL: keeps it) and adopted,
 * keeping the rest of "runtime" (created when absent). */
int vm_record_set_status(const vm_paths *p, vm_run_status status, const vm_proc *shim, bool adopted,
                         qvm_error **err);
/* Drops "runtime" and stores x as "last_exit". */
int vm_record_exit(const vm_paths *p, const vm_exit *x, qvm_error **err);
/* Stores the up record (its phase flags as given). */
int vm_record_set_up(const vm_paths *p, const vm_up *up, qvm_error **err);
/* Sets a phase flag of the up record, if there is one. */
int vm_record_mark_up(const vm_paths *p, bool provisioned, bool ready, qvm_error **err);

#endif
