/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_TTL_H
#define QVM_VM_TTL_H

/* A sandbox's deadline outside the shim (vm/ttl.c; the shim's timer is in
 * vm/shim.h). */
#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"
#include "vm/handle.h"
#include "vm/spec.h"

/* A lifetime in seconds: QVM_SANDBOX_TTL_MIN_S (or QVM_TEST_MIN_TTL_S)
 * to QVM_SANDBOX_TTL_MAX_S. */
int vm_ttl_check(int64_t seconds, qvm_error **err);
/* A sandbox whose deadline is at or before now_us (realtime). */
bool vm_spec_expired(const vm_spec *s, int64_t now_us);
/* Under the VM's lock, after reconcile_locked: an expired VM with neither
 * QEMU nor shim alive is removed, and the result is QVM_ENOTFOUND (class
 * "SandboxExpired") saying so; anything else is 0 (a live shim removes
 * its VM itself). */
int vm_expire_locked(qvm_vm *vm, qvm_error **err);
/* For listings: true when VM `name` was expired, idle and is now removed.
 * Never waits for a lock (a holder reconciles on its own). */
bool vm_expire_sweep(const char *name);
/* vm/lifecycle.c's removal, under the lock the caller holds. */
int vm_remove_locked(qvm_vm *vm, qvm_error **err);

#endif
