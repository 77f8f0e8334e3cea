/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_DEFAULTS_H
#define QVM_VM_DEFAULTS_H

/* What a VM gets when qvm_vm_create_options leaves a member unset (0 or
 * NULL). The one place these are stated: create (vm/create.c, vm/access.c,
 * vm/net.c) and the up record (vm/up.c) both read them from here, and
 * docs/cli.md documents the same values. */
#include <stdint.h>

#define VM_DEFAULT_CPUS 1u
#define VM_DEFAULT_MEMORY (UINT64_C(1) << 30) /* bytes */
#define VM_MEMORY_MIN (UINT64_C(16) << 20)
#define VM_MEMORY_MAX (UINT64_C(16) << 40)
#define VM_DEFAULT_MACHINE "q35"
#define VM_DEFAULT_FIRMWARE "bios"
#define VM_DEFAULT_ACCEL "auto"
#define VM_DEFAULT_USER "qvm"
#define VM_DEFAULT_HOSTKEY "pinned"
#define VM_NET_DEFAULT_BRIDGE "qvm0"
#define VM_NET_DEFAULT_SUBNET "10.77.0.1/24"

#endif
