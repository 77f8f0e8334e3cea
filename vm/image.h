/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_IMAGE_H
#define QVM_VM_IMAGE_H

/* Disk images through qemu-img (part of the QEMU suite). */
#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

typedef struct vm_image_info {
  char *format; /* "qcow2", "raw", ... */
  uint64_t size;
  /* Another file the image makes QEMU open (backing file, qcow2 data file,
   * vmdk extent), neutralized for a terminal; NULL: none. */
  char *reference;
  const char *reference_kind; /* "backing file", "data file", "extent" */
} vm_image_info;

void vm_image_info_clear(vm_image_info *info);
/* `qemu-img info` of the image as `format`; format NULL detects it from the
 * content. Detect only a file the user named, once, at create: a guest can
 * write any header into a raw disk, so the format is recorded and never
 * probed again. */
int vm_image_inspect(vm_image_info *out, const char *path, const char *format, qvm_error **err);
/* vm_image_inspect(), and QVM_EINVAL for an image that names another file
 * unless allow_backing: the message names that file, --allow-backing and
 * raw_hint (how to say "raw", e.g. "--image-format raw"). `what` names the
 * image ("disk image", "drive"). */
int vm_image_check(vm_image_info *out, const char *what, const char *path, const char *format,
                   bool allow_backing, const char *raw_hint, qvm_error **err);
/* 0 if a raw image starts like a disk a guest can boot (MBR, GPT, boot
 * sector, ext/xfs/btrfs/iso9660 file system), else QVM_EINVAL: `qvm up
 * --image /etc/passwd` is a mistake to catch at create, not a raw disk to
 * boot until a phase times out. */
int vm_image_raw_looks_like_disk(const char *path, const char *raw_hint, qvm_error **err);
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
