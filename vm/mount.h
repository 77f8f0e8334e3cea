/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_MOUNT_H
#define QVM_VM_MOUNT_H

/*
 * Host folder mounts (--mount HOST:GUEST[:ro]): a host directory shared
 * with the guest over virtio-9p, QEMU's local backend with
 * security_model=mapped-xattr (docs/ARCHITECTURE.md, "Host folder mounts").
 * The spec keeps each mount's resolved host path; its 9p mount tag is
 * "qvm" + its index, so no user text reaches the tag or the guest's fstab
 * but the checked guest path.
 */
#include <json-c/json.h>

#include "util/error.h"
#include "vm/spec.h"
#include <qvm/vm.h>

#define VM_MOUNT_TAG_PREFIX "qvm"
/* 9p's msize on the guest side: Lima's default, which Linux 6.1 takes. */
#define VM_MOUNT_MSIZE 131072

/* [A-Za-z0-9._+@/-], absolute, not "/", no empty, "." or ".." component,
 * at most QVM_VM_MOUNT_GUEST_MAX bytes. */
bool vm_mount_guest_valid(const char *guest);
/* The options' mounts checked (host: an existing directory, resolved; see
 * include/qvm/vm.h) and copied into spec->mounts. */
int vm_spec_set_mounts(vm_spec *spec, const qvm_vm_mount *mounts, size_t n, qvm_error **err);
void vm_spec_mounts_clear(vm_spec *spec);
/* Before each start: every host directory is still a directory at its
 * recorded path (no symlink put in its place), outside qvm's state, and
 * reachable by the user QEMU drops to (runas "UID:GID", NULL: this
 * process's). */
int vm_mounts_verify(const vm_spec *spec, const char *runas, qvm_error **err);
/* "mounts": [{"host", "guest", "readonly"}] (to: added to o only when there
 * are mounts; from: validated, absent is none). */
void vm_mounts_to_json(struct json_object *o, const vm_spec *spec);
int vm_mounts_from_json(vm_spec *spec, struct json_object *o, qvm_error **err);
/* For info JSON: "mounts" (always, [] when none), each with its "tag". */
struct json_object *vm_mounts_info(const vm_spec *spec);
/* "HOST:GUEST[:ro]" for the up record; NULL on OOM. */
char *vm_mount_format(const qvm_vm_mount *mount);
/* The shell lines the seed runs at every boot (bootcmd) to mount them:
 * an fstab line added once, then mount. *out is a NULL-terminated array
 * of n_mounts lines; free with vm_mount_bootcmd_free. */
int vm_mount_bootcmd(char ***out, const vm_spec *spec, qvm_error **err);
void vm_mount_bootcmd_free(char **lines);

#endif
