/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_MOUNT_H
#define QVM_VM_MOUNT_H

/*
 * Host folder mounts (--mount HOST:GUEST[:ro]): a host directory shared
 * with the guest over virtiofs (a virtiofsd per mount, run by the shim in
 * an unprivileged user namespace under a seccomp filter) when virtiofsd is
 * installed, else over virtio-9p, QEMU's local backend with
 * security_model=mapped-xattr (docs/ARCHITECTURE.md, "Host folder mounts").
 * The spec keeps each mount's resolved host path and transport; its mount
 * tag is "qvm" + its index, so no user text reaches the tag or the guest's
 * fstab but the checked guest path.
 */
#include <sys/types.h>

#include <json-c/json.h>

#include "util/error.h"
#include "vm/spec.h"
#include <qvm/vm.h>

#define VM_MOUNT_TAG_PREFIX "qvm"
/* 9p's msize on the guest side: Lima's default, which Linux 6.1 takes. */
#define VM_MOUNT_MSIZE 131072
/* A virtiofs mount's vhost-user socket: RUN_DIR/qvmN.vfs */
#define VM_MOUNT_SOCK_SUFFIX ".vfs"
/* Where Debian's QEMU (7.2) installs the C virtiofsd; QVM_VIRTIOFSD names
 * another. */
#define VM_VIRTIOFSD_DEFAULT "/usr/lib/qemu/virtiofsd"

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

/* Whether any mount of spec uses virtiofs. */
bool vm_mounts_virtiofs(const vm_spec *spec);
/* The virtiofsd binary: $QVM_VIRTIOFSD, else VM_VIRTIOFSD_DEFAULT. */
const char *vm_virtiofsd_path(void);
/* The transport a new mount gets (create): $QVM_MOUNT_TRANSPORT ("9p" or
 * "virtiofs") when set, else virtiofs when vm_virtiofsd_path() is an
 * executable, else 9p. *virtiofs set; an invalid value is an error. */
int vm_mount_transport_default(bool *virtiofs, qvm_error **err);

/* The shim, before QEMU: one virtiofsd per virtiofs mount, listening on
 * sock_dir/qvmN.vfs (made here, mode 0600 in a 0700 directory). Each runs
 * as runas ("UID:GID"; NULL: this process's ids, refused for root) in a
 * new user namespace mapping only that uid and gid (as its root), a mount
 * namespace where a :ro directory is a read-only bind mount, and a seccomp
 * filter that makes the credential switches no-ops and refuses symlinks,
 * device nodes, FIFOs, xattrs and setuid/setgid modes. log_fd: its stderr.
 * pids[QVM_VM_MOUNTS_MAX] filled, *n_pids set (0 when none). On error
 * whatever was started is stopped. */
int vm_virtiofsd_start(pid_t *pids, size_t *n_pids, const vm_spec *spec, const char *sock_dir,
                       const char *runas, int log_fd, qvm_error **err);
/* SIGTERM, up to 2 s, then SIGKILL; every one reaped; the sockets removed
 * (sock_dir NULL: kept). *n_pids set to 0. */
void vm_virtiofsd_stop(pid_t *pids, size_t *n_pids, const vm_spec *spec, const char *sock_dir);

#endif
