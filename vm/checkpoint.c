/* SPDX-License-Identifier: MIT */
/* qvm_vm_checkpoint / qvm_vm_rollback: snapshots named ckpt-N around an
 * agent's commands (issue 14), on top of vm/snapshot.c; and
 * qvm_vm_exec_command, the one entry for user commands that takes them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <qvm/sandbox.h>
#include <qvm/snapshot.h>

#include "vm/audit.h"
#include "vm/handle.h"
#include "vm/record.h"

#define CKPT_PREFIX "ckpt-"

/* N of "ckpt-N" (N: 1 to 9 digits), else 0. */
static unsigned long ckpt_number(const char *name) {
  size_t p = strlen(CKPT_PREFIX), n = strlen(name);
  if (strncmp(name, CKPT_PREFIX, p) || n == p || n > p + 9) return 0;
  if (strspn(name + p, "0123456789") != n - p || name[p] == '0') return 0;
  return strtoul(name + p, NULL, 10);
}

/* The checkpoints, oldest first (vm.json keeps snapshots in creation order). */
static size_t checkpoints(const qvm_vm *vm, unsigned long *max) {
  size_t count = 0;
  *max = 0;
  for (size_t i = 0; i < vm->rec->n_snapshots; i++) {
    unsigned long k = ckpt_number(vm->rec->snapshots[i].name);
    if (!k) continue;
    count++;
    if (k > *max) *max = k;
  }
  return count;
}

int qvm_vm_checkpoint(char out_name[QVM_VM_CHECKPOINT_NAME_MAX], qvm_vm *vm, unsigned keep,
                      qvm_error **err) {
  if (!vm) return qvm_error_set(err, QVM_EINVAL, "no vm given");
  if (!keep) keep = QVM_VM_CHECKPOINT_KEEP;
  int r = 0;
  unsigned long max = 0;
  char name[QVM_VM_CHECKPOINT_NAME_MAX];
  /* Two commands at once (qvmd) may pick the same number: the one that
   * finds it taken takes the next. */
  for (int attempt = 0;; attempt++) {
    if ((r = vm_reload(vm, err)) < 0) return r;
    checkpoints(vm, &max);
    if (max >= 999999999UL)
      return qvm_error_set(err, QVM_EINVAL, "vm '%s' has used up its checkpoint numbers", vm->name);
    snprintf(name, sizeof name, CKPT_PREFIX "%lu", max + 1);
    qvm_error *e = NULL;
    if ((r = qvm_vm_snapshot_create(vm, name, NULL, &e)) >= 0) break;
    if (r != QVM_EEXISTS || attempt == 3) {
      qvm_error_propagate(err, e);
      return qvm_error_prefix(err, "cannot take checkpoint '%s'", name);
    }
    qvm_error_free(e);
  }
  if (out_name) snprintf(out_name, QVM_VM_CHECKPOINT_NAME_MAX, "%s", name);
  /* The oldest beyond keep go; a failure to remove one fails nothing. */
  if (vm_reload(vm, NULL) < 0) return 0;
  size_t count = checkpoints(vm, &max);
  for (size_t i = 0; count > keep && i < vm->rec->n_snapshots;) {
    char old[QVM_VM_CHECKPOINT_NAME_MAX];
    snprintf(old, sizeof old, "%s", vm->rec->snapshots[i].name);
    if (!ckpt_number(old)) {
      i++;
      continue;
    }
    qvm_error *e = NULL;
    bool gone = qvm_vm_snapshot_remove(vm, old, NULL, &e) == 0;
    qvm_error_free(e);
    if (!gone || vm_reload(vm, NULL) < 0) break;
    count--;
  }
  return 0;
}

int qvm_vm_rollback(char out_name[QVM_VM_CHECKPOINT_NAME_MAX], qvm_vm *vm, const char *to,
                    qvm_error **err) {
  if (!vm) return qvm_error_set(err, QVM_EINVAL, "no vm given");
  int r = vm_reload(vm, err);
  if (r < 0) return r;
  char name[QVM_VM_CHECKPOINT_NAME_MAX];
  unsigned long max = 0;
  if (!to) {
    if (!checkpoints(vm, &max)) {
      qvm_error_set(err, QVM_ENOTFOUND, "vm '%s' has no checkpoint", vm->name);
      return qvm_error_set_hint(err, QVM_ENOTFOUND, "NoCheckpoint", vm->name);
    }
    snprintf(name, sizeof name, CKPT_PREFIX "%lu", max);
  } else if (to[0] && strspn(to, "0123456789") == strlen(to) && strlen(to) <= 9) {
    snprintf(name, sizeof name, CKPT_PREFIX "%s", to);
  } else {
    snprintf(name, sizeof name, "%.63s", to);
  }
  r = qvm_vm_snapshot_restore(vm, name, NULL, err);
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "to", json_object_new_string(name));
  vm_audit_note(vm->name, "rollback", r, (const qvm_error *const *)err, d);
  if (r < 0) return qvm_error_prefix(err, "cannot roll vm '%s' back", vm->name);
  if (out_name) snprintf(out_name, QVM_VM_CHECKPOINT_NAME_MAX, "%s", name);
  return 0;
}

bool qvm_vm_checkpoint_each(const qvm_vm *vm) {
  return vm && vm->spec->sandbox && vm->spec->checkpoint_each;
}

int qvm_vm_exec_command(qvm_ssh_exec_result *out, char out_checkpoint[QVM_VM_CHECKPOINT_NAME_MAX],
                        qvm_vm *vm, qvm_ssh *ssh, const qvm_ssh_exec_options *opts, unsigned flags,
                        qvm_error **err) {
  if (out_checkpoint) out_checkpoint[0] = '\0';
  if (flags & ~QVM_VM_EXEC_CHECKPOINT)
    return qvm_error_set(err, QVM_EINVAL, "exec flags 0x%x are unknown", flags);
  if (!vm || !ssh) return qvm_error_set(err, QVM_EINVAL, "exec needs a vm and its connection");
  int r = vm_exec_options_check(opts, err);
  /* vm.json as it is now: what decides is the sandbox's setting, not an old
   * handle's copy of it */
  if (r >= 0) r = vm_reload(vm, err);
  if (r < 0) return r;
  char ckpt[QVM_VM_CHECKPOINT_NAME_MAX] = "";
  if ((flags & QVM_VM_EXEC_CHECKPOINT) || qvm_vm_checkpoint_each(vm)) {
    r = qvm_vm_checkpoint(ckpt, vm, 0, err);
    if (r < 0) {
      qvm_error_prefix(err, "the command did not run: no checkpoint before it");
      vm_exec_refused(vm, opts, r, (const qvm_error *const *)err);
      return qvm_error_set_hint(err, r, "CheckpointFailed", vm->name);
    }
  }
  if (out_checkpoint) snprintf(out_checkpoint, QVM_VM_CHECKPOINT_NAME_MAX, "%s", ckpt);
  return vm_exec_user(out, vm, ssh, opts, ckpt, err);
}
