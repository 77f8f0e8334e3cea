/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_CLONE_H
#define QVM_VM_CLONE_H

/* What a clone (clone.c) or a fork (fork.c) takes over from SRC's spec. */
#include <qvm/vm.h>

#include "util/error.h"
#include "vm/spec.h"

/* qvm_vm_create options for a VM made from SRC's disk state; the arrays
 * point into SRC's spec, which must outlive the plan. */
typedef struct vm_clone_plan {
  qvm_vm_create_options o;
  char image[72]; /* "sha256:HEX", filled in by the caller */
  const char **cdroms;
  qvm_vm_drive *drives;
  const char **keys;
  /* An isolated SRC's allow-list, as text for o.net (a clone stays isolated). */
  char (*egress_text)[QVM_NET_EGRESS_STR_MAX];
  const char **egress;
  qvm_vm_mount *mounts; /* SRC's host folder mounts, shared as they are */
} vm_clone_plan;

/* QVM_EINVAL (class WritableDrive) when SRC has a writable drive of its
 * own besides disk.qcow2: two VMs would write it. */
int vm_clone_plan_init(vm_clone_plan *p, const vm_spec *s, qvm_error **err);
void vm_clone_plan_clear(vm_clone_plan *p);
/* QVM_EEXISTS when a VM (or its directory) named name exists. */
int vm_name_free(const char *name, qvm_error **err);

#endif
