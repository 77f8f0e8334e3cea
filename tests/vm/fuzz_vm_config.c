/* SPDX-License-Identifier: MIT */
/* qvm.yaml is a file a user writes: parse arbitrary bytes as one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vm/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  qvm_vm_file *f = NULL;
  qvm_error *err = NULL;
  if (vm_file_parse(&f, "fuzz.yaml", "/d", text, size, &err) == 0) {
    for (size_t i = 0; i < qvm_vm_file_count(f); i++) {
      const qvm_vm_create_options *o = qvm_vm_file_options(f, i);
      if (!qvm_vm_name_valid(qvm_vm_file_name(f, i)) || (!o->image && !o->kernel)) abort();
    }
    qvm_vm_file_free(f);
  } else if (!err || !qvm_error_message(err)[0]) {
    abort(); /* every failure has a message */
  }
  qvm_error_free(err);
  free(text);
  return 0;
}
