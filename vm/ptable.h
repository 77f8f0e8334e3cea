/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_PTABLE_H
#define QVM_VM_PTABLE_H

/* Growing a disk's last partition to the end of a larger disk, the way
 * cloud-init's growpart would on the first boot, computed from the disk's
 * first sectors (vm/ptable.c; pure: no I/O). The image is not trusted: every
 * field is checked before it is used, and anything unusual is left to the
 * guest. */

#include <stddef.h>
#include <stdint.h>

#define VM_PTABLE_SECTOR 512u
/* The protective MBR, the GPT header and 128 entries of 128 bytes. */
#define VM_PTABLE_HEAD_SECTORS 34u
#define VM_PTABLE_HEAD_BYTES (VM_PTABLE_HEAD_SECTORS * VM_PTABLE_SECTOR)

typedef enum vm_ptable_kind { VM_PTABLE_MBR = 1, VM_PTABLE_GPT } vm_ptable_kind;

typedef struct vm_ptable_grow {
  vm_ptable_kind kind;
  unsigned number;                    /* the partition grown, as the guest numbers it (vda1) */
  uint64_t first, old_last;           /* its sectors, inclusive, before */
  uint64_t new_last;                  /* and after */
  uint8_t head[VM_PTABLE_HEAD_BYTES]; /* to write at offset 0 */
  size_t head_len;
  uint8_t tail[VM_PTABLE_HEAD_BYTES]; /* GPT: the backup entries and header */
  size_t tail_len;
  uint64_t tail_offset; /* bytes */
} vm_ptable_grow;

/* `head` holds the disk's first `len` bytes (VM_PTABLE_HEAD_BYTES or more
 * for a GPT), the disk had `old_bytes` and now has `new_bytes`. Returns 1
 * and fills *g when the disk's last partition is a Linux file system
 * partition (MBR type 0x83; GPT Linux data or x86-64 root) that can grow
 * into the new space; 0 and a reason in *why when there is nothing to do or
 * the table is not one this code changes (extended partitions, a damaged
 * GPT, overlapping entries, ...): the guest's growpart then decides.
 * old_bytes 0: not known (a later start, after a resize): a GPT's backup
 * header says where the disk ended, an MBR's partitions need only lie
 * within the new size. */
int vm_ptable_plan_grow(vm_ptable_grow *g, const uint8_t *head, size_t len, uint64_t old_bytes,
                        uint64_t new_bytes, const char **why);

/* The CRC-32 (IEEE 802.3) that GPT uses. */
uint32_t vm_ptable_crc32(const void *data, size_t len);

#endif
