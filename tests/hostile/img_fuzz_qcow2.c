/* SPDX-License-Identifier: MIT */
/*
 * A qcow2 header is written by the guest's QEMU (which a guest may own):
 * parse arbitrary bytes as one, and check what parses against the policies
 * the start applies.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vm/qcow2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > VM_QCOW2_HEAD) size = VM_QCOW2_HEAD;
  /* An exact-size copy: ASan sees any read past the end. */
  uint8_t *buf = malloc(size ? size : 1);
  if (!buf) return 0;
  memcpy(buf, data, size);
  vm_qcow2_header h;
  qvm_error *err = NULL;
  if (vm_qcow2_parse(&h, buf, size, &err) == 0) {
    if (strlen(h.backing) >= sizeof h.backing || strlen(h.data_file) >= sizeof h.data_file ||
        strlen(h.backing_format) >= sizeof h.backing_format)
      abort();
    vm_qcow2_policy overlay = {.what = "vm disk", .backing = "/b", .backing_format = "raw"};
    vm_qcow2_policy drive = {.what = "drive", .allow_backing = true};
    qvm_error *e1 = NULL, *e2 = NULL;
    vm_qcow2_check(&h, "/d", &overlay, &e1);
    if (vm_qcow2_check(&h, "/d", &drive, &e2) == 0 && h.has_data_file) abort();
    qvm_error_free(e1);
    qvm_error_free(e2);
  } else if (!err) {
    abort();
  }
  qvm_error_free(err);
  free(buf);
  return 0;
}
