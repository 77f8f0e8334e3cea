/* SPDX-License-Identifier: MIT */
#ifndef QVM_DIFF_DISK_H
#define QVM_DIFF_DISK_H

/* One disk state, exported read-only over NBD by qemu-storage-daemon on a
 * private socket and read with libnbd. */
#include <stdint.h>

#include "util/error.h"

typedef struct diff_disk_spec {
  const char *file;   /* the image */
  const char *format; /* "raw" or "qcow2" */
  /* A qcow2's backing file, given to QEMU explicitly (the header's name is
   * never used), or NULL: none. */
  const char *backing;
  const char *backing_format;
} diff_disk_spec;

typedef struct diff_disk diff_disk;

/* Starts qemu-storage-daemon (as the qemu user where it can read the
 * files, see vm/qemu_user.h; it dies with its parent) and connects. A
 * qcow2 file must name no external data file (QVM_EINVAL). */
int diff_disk_open(diff_disk **out, const diff_disk_spec *spec, qvm_error **err);
uint64_t diff_disk_size(const diff_disk *d);
/* 0, or -1 with the reason kept for diff_disk_error(). Reads go through a
 * cache of up to 128 chunks of 256 KiB (libext2fs reads a block at a time). */
int diff_disk_read(diff_disk *d, void *buf, uint32_t len, uint64_t off);
const char *diff_disk_error(const diff_disk *d);
/* The daemon's pid (tests check that it is gone after close). */
int diff_disk_pid(const diff_disk *d);
/* Disconnects, kills the daemon, waits for it and removes the socket dir. */
void diff_disk_close(diff_disk *d);

#endif
