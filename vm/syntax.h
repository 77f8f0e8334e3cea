/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_SYNTAX_H
#define QVM_VM_SYNTAX_H

/*
 * The typed create options back in the CLI's syntax, for the up record
 * (what `qvm up` was asked for, compared member by member: docs/vm-json.md).
 * The parsers (qvm_vm_*_parse) are declared in include/qvm/vm.h. NULL on
 * OOM.
 */
#include <qvm/vm.h>

char *vm_net_format(const qvm_vm_net *net);
char *vm_publish_format(const qvm_vm_publish *publish);
char *vm_drive_format(const qvm_vm_drive *drive);
char *vm_public_step_format(const qvm_vm_step *step);

#endif
