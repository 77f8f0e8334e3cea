/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_IMAGES_H
#define QVM_VM_IMAGES_H

/* What vm/images.c (the public qvm_image_*) and vm/image_pull.c share. */
#include <stdbool.h>

#include <json-c/json.h>

#include <qvm/image.h>
#include <qvm/vm.h>

#include "image/store.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "vm/spec.h"

QVM_DEFINE_CLEANUP(img_store, img_store_free)

/* The store at <vm_state_root>/images. */
int images_store_open(img_store **out, qvm_error **err);
/* An image's public record (see qvm_image_list), with used_by. */
int images_record(struct json_object **out, img_store *s, const img_meta *m, qvm_error **err);
/* The VMs whose spec's image is `path` (the store file): a JSON array. */
int images_used_by(struct json_object **out, const char *path, qvm_error **err);
/* A URL without its userinfo ("https://u:p@h/x" -> "https://h/x"). */
char *images_url_without_userinfo(const char *url);

/* The import behind qvm_image_import_vm, into the open store s:
 * out_digest (may be NULL) gets the image's hex digest, *out_existed
 * (may be NULL) whether the store had it before (vm/image_import.c). */
int vm_image_import(char out_digest[65], bool *out_existed, char **out_json, img_store *s,
                    const char *vm_name, const char *snapshot, const char *name,
                    const qvm_image_import_options *opts, qvm_error **err);
/* The same for vm, open and under its lock (held by the caller), with no
 * name and no JSON: the fork's import of its temporary snapshot. */
int vm_image_import_held(char out_digest[65], bool *out_existed, img_store *s, qvm_vm *vm,
                         const char *snapshot, const qvm_image_import_options *opts,
                         qvm_error **err);
/* A temporary internal snapshot's name ("qvm-import-" and 12 random hex
 * digits): under the VM's lock, the next import deletes one left over. */
int vm_tmp_snapshot_name(char out[32], qvm_error **err);
/* Removes the image unless it has a name or a VM uses it. */
int images_remove_unused(img_store *s, const char *digest, qvm_error **err);
/* vm/image_import.c's steps, also for qvm diff (diff/diff.c): */
/* disk.qcow2 (or a copy of it) as qemu-img's --image-opts: its backing
 * file given explicitly (spec's image and format), never taken from a
 * header a guest's QEMU may have rewritten; with_backing false: none. */
char *vm_disk_image_opts(const vm_spec *spec, const char *disk, bool with_backing);
/* QMP command (blockdev-snapshot-internal-sync, ...-delete-...) on the
 * running vm's "disk" with snapshot name. */
int vm_disk_qmp_snapshot(const qvm_vm *vm, const char *command, const char *name, qvm_error **err);
/* A private copy (0600, O_EXCL) of disk as it is now, for a running vm. */
int vm_disk_copy(const char *disk, const char *to, qvm_error **err);
/* The internal snapshots' names from `qemu-img info` of image opts. */
int vm_disk_snapshots(char ***out, size_t *out_n, const char *opts, qvm_error **err);
void vm_disk_snapshots_free(char **names, size_t n);
/* A snapshot name qvm passes to qemu-img: [A-Za-z0-9][A-Za-z0-9._-]{0,63}. */
bool vm_snapshot_name_valid(const char *name);

#endif
