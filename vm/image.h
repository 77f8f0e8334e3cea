/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_IMAGE_H
#define QVM_VM_IMAGE_H

/* Disk images through qemu-img (part of the QEMU suite). */
#include <stdint.h>

#include "util/error.h"

/* Format ("qcow2", "raw", ...) and virtual size of an image. */
int vm_image_probe(char **out_format, uint64_t *out_size, const char *path, qvm_error **err);
/* A qcow2 overlay at `overlay` on `base` (absolute, never written to),
 * grown to `size` bytes when that is larger than the base (0: keep). */
int vm_image_overlay(const char *overlay, const char *base, const char *base_format,
                     uint64_t base_size, uint64_t size, qvm_error **err);
/* A blank qcow2 image. */
int vm_image_blank(const char *path, uint64_t size, qvm_error **err);
/* Runs argv (no shell); *out gets stdout (may be NULL). On a non-zero exit the
 * error holds the last line of stderr. */
int vm_run_program(char **out, char *const argv[], qvm_error **err);

#endif
