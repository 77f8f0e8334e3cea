/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_CPU_H
#define QVM_VM_CPU_H

/*
 * The guest CPU model (QEMU's -cpu). A VM records "auto" (qvm chooses at
 * each start from the accelerator it got), a QEMU model with optional
 * features ("Nehalem", "qemu64,+sse4.2"), or "legacy": the choice of qvm
 * before issue 20 ("max" under TCG), which a record without "cpu" reads as,
 * so that a VM's RAM snapshots and forks keep loading into the CPU they were
 * saved from. docs/ARCHITECTURE.md, "CPU model", says why qemu64 under TCG.
 */
#include <stdbool.h>

#include "util/error.h"
#include "vm/spec.h"

#define VM_CPU_AUTO "auto"
#define VM_CPU_LEGACY "legacy"
#define VM_CPU_MAX_LEN 128

/* Checks a --cpu value: "auto", "legacy", or MODEL[,+FEAT|-FEAT|FEAT=VALUE]...
 * of [A-Za-z0-9_.-] (no option QEMU would read as anything but a CPU
 * property). QVM_EINVAL naming the problem. */
int vm_cpu_check(const char *text, qvm_error **err);

/* The -cpu argument for a VM whose recorded model is cpu (NULL: legacy)
 * under accel (resolved: KVM or TCG), and why, in a few words for qvm info. */
const char *vm_cpu_model(const char *cpu, vm_accel accel, const char **why);

#endif
