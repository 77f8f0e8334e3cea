/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_IMAGE_H
#define QVM_VM_IMAGE_H

/* Disk images through qemu-img (part of the QEMU suite). */
#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"
#include "vm/spec.h"

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
 * unless allow_backing: the message names that file; the error's class is
 * "ImageNamesFile" (allow_backing would accept it) or "ImageDataFile" (only
 * a raw format would), its subject `drive` (the drive's path as the user
 * gave it; NULL for the vm's image), so that a program can say how to give
 * either. `what` names the image ("disk image", "drive"). */
int vm_image_check(vm_image_info *out, const char *what, const char *path, const char *format,
                   bool allow_backing, const char *drive, qvm_error **err);
/* What a raw image's first n bytes hold that a guest can boot or use ("an
 * ext2/3/4 file system", "a blank disk", ...), or NULL. */
const char *vm_image_raw_kind(const unsigned char *b, size_t n);
/* 0 if a raw image starts like a disk a guest can boot (MBR, GPT, boot
 * sector, ext/xfs/btrfs/iso9660 file system), else QVM_EINVAL: `qvm up
 * --image /etc/passwd` is a mistake to catch at create, not a raw disk to
 * boot until a phase times out. */
int vm_image_raw_looks_like_disk(const char *path, qvm_error **err);
/* A qcow2 overlay at `overlay` on `base` (absolute, never written to),
 * grown to `size` bytes when that is larger than the base (0: keep). */
int vm_image_overlay(const char *overlay, const char *base, const char *base_format,
                     uint64_t base_size, uint64_t size, qvm_error **err);
/* What vm_image_grow_partition() did: grown (and which partition), or
 * why not. */
typedef struct vm_image_grown {
  bool grown;
  unsigned number; /* the partition grown (vdaN) */
  const char *why; /* not grown: the reason (static, or points into reason) */
  char reason[256];
} vm_image_grown;
/* After vm_image_overlay() grew the disk: the partition table read from the
 * overlay (the base, opened with "backing": null unless allow_backing) and,
 * when vm/ptable.c finds the last partition a Linux one that can grow into
 * the new space, the new table written into the overlay, never the base.
 * Not grown (0, out->why set): an unusual table, or one the overlay's tools
 * could not read; the guest's growpart then does it. < 0: the write failed. */
int vm_image_grow_partition(vm_image_grown *out, const char *overlay, const char *base,
                            const char *base_format, bool allow_backing, uint64_t base_size,
                            uint64_t size, qvm_error **err);
/* Image formats qvm hands QEMU: raw, qcow2, vmdk, vdi, vhdx, vpc; never a
 * protocol or filter driver (nbd, vvfat, blkdebug, ...). */
bool vm_image_format_allowed(const char *format);
/* QVM_EINVAL, naming what and path, for a format that is not allowed. */
int vm_image_format_check(const char *what, const char *path, const char *format, qvm_error **err);
/* vm_image_format_check(), and a writable vmdk drive refused: its
 * descriptor names extents qvm does not check at each start. */
int vm_image_drive_check(const char *path, const char *format, bool readonly, qvm_error **err);
/* Before each start, as root: every qcow2 drive's header, read by qvm's own
 * parser (vm/qcow2.c), names only what it may. The VM's disk.qcow2 must name
 * exactly spec->image as its backing file, with spec->image_format; a
 * user's qcow2 drive no backing file unless spec->allow_backing; none an
 * external data file. A QEMU the guest took over can rewrite these headers,
 * and QEMU opens what they name before it drops root. */
int vm_image_verify_drives(const vm_spec *spec, const char *vm_dir, qvm_error **err);
/* A blank qcow2 image. */
int vm_image_blank(const char *path, uint64_t size, qvm_error **err);
/* Runs argv (no shell); *out gets stdout (may be NULL). On a non-zero exit the
 * error holds the last line of stderr. */
int vm_run_program(char **out, char *const argv[], qvm_error **err);

#endif
