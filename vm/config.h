/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_CONFIG_H
#define QVM_VM_CONFIG_H

#include <stddef.h>

#include "util/error.h"
#include <qvm/up.h>

/* qvm_vm_file_load from bytes (text[len] is NUL): `label` names the file in
 * messages, relative paths are taken from `dir`. For tests and fuzzing. */
int vm_file_parse(qvm_vm_file **out, const char *label, const char *dir, const char *text,
                  size_t len, qvm_error **err);

#endif
