/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_QCOW2_H
#define QVM_VM_QCOW2_H

/*
 * qvm's own reader of a qcow2 header: which other files QEMU would open for
 * it (a backing file, an external data file). A QEMU the guest took over
 * holds the image read-write and can rewrite that header; qvm reads it with
 * this parser, not with qemu-img as root, before every start.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* What qvm reads of a file: the header, its extensions and the backing
 * file's name must all lie in these first bytes (qemu-img puts them in the
 * first few hundred). */
#define VM_QCOW2_HEAD 65536

typedef struct vm_qcow2_header {
  uint32_t version;      /* 2 or 3 */
  uint32_t cluster_bits; /* 9 to 21 */
  uint64_t size;         /* virtual size in bytes */
  uint64_t incompatible; /* incompatible_features (v3; 0 for v2) */
  bool has_backing;
  char backing[1024]; /* the backing file's name, NUL-free, as in the header */
  bool has_backing_format;
  char backing_format[64];
  /* An external data file: incompatible bit 2 or a data-file name
   * extension; data_file holds the name ("" if the header gives none). */
  bool has_data_file;
  char data_file[1024];
} vm_qcow2_header;

/* True if buf starts with the qcow2 magic QFI\xfb. */
bool vm_qcow2_magic(const uint8_t *buf, size_t len);
/* Parses the first len bytes of a qcow2 image, bounds-checked; pure. Refuses
 * (QVM_EINVAL) a bad magic or version, a header or extension that runs out
 * of range, a backing name longer than 1023 bytes or with a NUL in it, and
 * incompatible feature bits other than dirty, corrupt, external data file,
 * compression type and extended L2. */
int vm_qcow2_parse(vm_qcow2_header *out, const uint8_t *buf, size_t len, qvm_error **err);

/* What a qcow2 file may name. */
typedef struct vm_qcow2_policy {
  const char *what;           /* "drive", "disk image": for messages */
  const char *backing;        /* the backing file it must name, or NULL */
  const char *backing_format; /* with backing: the backing format it must pin */
  bool allow_backing;         /* backing NULL: any backing file is fine */
  const char *why;            /* appended to a refusal, e.g. how it happened */
} vm_qcow2_policy;

/* Checks a parsed header against a policy; the message names path. An
 * external data file is always refused. */
int vm_qcow2_check(const vm_qcow2_header *h, const char *path, const vm_qcow2_policy *policy,
                   qvm_error **err);
/* Reads the first VM_QCOW2_HEAD bytes of fd (never blocks on a FIFO: the
 * caller opens with O_NONBLOCK and this refuses what is not a regular file
 * or a block device) and parses them. */
int vm_qcow2_read_fd(vm_qcow2_header *out, int fd, const char *path, qvm_error **err);
/* Opens path, reads, parses and checks it. */
int vm_qcow2_check_file(const char *path, const vm_qcow2_policy *policy, qvm_error **err);

#endif
