/* SPDX-License-Identifier: MIT */
#ifndef QVM_SNAPSHOT_H
#define QVM_SNAPSHOT_H

/*
 * Snapshots of a VM's own disk (disk.qcow2), kept inside it as internal
 * qcow2 snapshots, with their metadata in vm.json ("snapshots",
 * docs/vm-json.md). On a running VM a snapshot holds RAM and device state
 * too (QEMU's snapshot-save job), unless disk_only; restoring one into the
 * running VM makes it continue from that moment (snapshot-load). On a
 * stopped VM a snapshot is of the disk only (qemu-img snapshot, after qvm
 * checked the disk's header).
 *
 * Errors (include/qvm/error.h): QVM_EINVAL (a bad snapshot name, a VM
 * without disk.qcow2), QVM_ENOTFOUND (no such snapshot), QVM_EEXISTS (the
 * name is taken), QVM_ECONFLICT (the VM is starting or stopping, or the
 * snapshot cannot be restored in the VM's state: the message says what to
 * do), QVM_EBUSY (the VM's lock), QVM_EQMP (QEMU's reason for a failed
 * job), QVM_ESYS with errno EINTR (create interrupted through the progress
 * callback; the snapshot was removed again).
 */
#include <stdbool.h>

#include <qvm/error.h>
#include <qvm/export.h>
#include <qvm/vm.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Called with QEMU's job status ("created", "running", "concluded", ...)
 * each time it changes, and about every 100 ms while a job runs. Returning
 * non-zero asks to interrupt: a create then waits for QEMU's job to end (in
 * QEMU 7.2 these jobs run in one piece in QEMU's main loop and cannot be
 * cancelled half-way) and removes the snapshot it made; a restore or a
 * remove runs to its end. */
typedef int (*qvm_vm_snapshot_progress_fn)(const char *status, void *ctx);

#define QVM_VM_SNAPSHOT_OPTIONS_VERSION 1
typedef struct qvm_vm_snapshot_options {
  unsigned version; /* QVM_VM_SNAPSHOT_OPTIONS_VERSION */
  bool disk_only;   /* create on a running VM: the disk only (no RAM), at once */
  qvm_vm_snapshot_progress_fn progress; /* NULL: none */
  void *progress_ctx;
  int timeout_ms; /* for QEMU's job; 0: 600000 */
} qvm_vm_snapshot_options;
#define QVM_VM_SNAPSHOT_OPTIONS_INIT                                                               \
  { .version = QVM_VM_SNAPSHOT_OPTIONS_VERSION }

/* Names follow the VM-name rule ([a-z0-9][a-z0-9-]{0,62}). opts may be NULL. */
QVM_API int qvm_vm_snapshot_create(qvm_vm *vm, const char *snapshot,
                                   const qvm_vm_snapshot_options *opts, qvm_error **err);
/* A running VM continues from a RAM snapshot's state. A stopped VM gets a
 * disk-only snapshot's disk back. Refused (QVM_ECONFLICT): a RAM snapshot
 * on a stopped VM (start it, then restore) and a disk-only snapshot on a
 * running VM (stop it, then restore). */
QVM_API int qvm_vm_snapshot_restore(qvm_vm *vm, const char *snapshot,
                                    const qvm_vm_snapshot_options *opts, qvm_error **err);
QVM_API int qvm_vm_snapshot_remove(qvm_vm *vm, const char *snapshot,
                                   const qvm_vm_snapshot_options *opts, qvm_error **err);
/* A JSON array (*out_json the caller's; free()), oldest first:
 * [{"name","created_at","ram","vm_state","vm_state_size","disk_bytes",
 *   "parent","current"}] from vm.json as the handle last read it. */
QVM_API int qvm_vm_snapshot_list(char **out_json, qvm_vm *vm, qvm_error **err);

/* ---- checkpoints and rollback (vm/checkpoint.c) ----------------------------- */

/* A checkpoint is a snapshot named "ckpt-N" (N counts up per VM) taken just
 * before a command (qvm exec --checkpoint), so that qvm_vm_rollback can undo
 * what the command did: with RAM on a running VM (it continues from that
 * moment), of the disk on a stopped one. keep (0: QVM_VM_CHECKPOINT_KEEP)
 * checkpoints are kept; older ones are removed, other snapshots never.
 * *out_name (may be NULL) gets the new checkpoint's name. */
#define QVM_VM_CHECKPOINT_KEEP 5
#define QVM_VM_CHECKPOINT_NAME_MAX 64
QVM_API int qvm_vm_checkpoint(char out_name[QVM_VM_CHECKPOINT_NAME_MAX], qvm_vm *vm, unsigned keep,
                              qvm_error **err);
/* Restores the latest checkpoint (to NULL), checkpoint N (to "N"), or any
 * snapshot by name, as qvm_vm_snapshot_restore does; *out_name (may be
 * NULL) gets the one restored. QVM_ENOTFOUND (class "NoCheckpoint") when
 * the VM has no checkpoint. */
QVM_API int qvm_vm_rollback(char out_name[QVM_VM_CHECKPOINT_NAME_MAX], qvm_vm *vm, const char *to,
                            qvm_error **err);

#ifdef __cplusplus
}
#endif
#endif
