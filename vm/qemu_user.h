/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_QEMU_USER_H
#define QVM_VM_QEMU_USER_H

/*
 * Who QEMU runs as. qvm as root starts QEMU as root (it opens the disks,
 * the fds qvm hands it, the serial log and its sockets), and QEMU then
 * drops to an unprivileged user with -runas before the guest's main loop:
 * a guest that takes QEMU over gets that user, not root.
 */
#include <sys/types.h>

#include "util/error.h"

#define VM_QEMU_USER_DEFAULT "qvm-qemu"

/* "UID:GID" for -runas, or NULL in *out when QEMU keeps qvm's own
 * credentials (qvm does not run as root, or QVM_QEMU_USER=root).
 * The user is $QVM_QEMU_USER, else qvm-qemu; qvm-qemu is created as a
 * system user (no home, no login shell, its own group) when it is missing.
 * A user of QVM_QEMU_USER that does not exist, or whose uid or gid is 0
 * while not named root, is an error. */
int vm_qemu_user_runas(char **out, qvm_error **err);
/* Whether uid:gid may be the default user's: a system uid (below 1000)
 * whose group is its own (named qvm-qemu, no other members). */
int vm_qemu_user_check_default(uid_t uid, gid_t gid, qvm_error **err);

#endif
