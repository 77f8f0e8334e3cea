/* SPDX-License-Identifier: MIT */
/* qvm_vm_resize: the VM's disk.qcow2 grows, offline with qemu-img or, while
 * QEMU runs, with QMP block_resize on its "disk" node (docs/vm-json.md,
 * "Block nodes"), and vm.json records the size (spec.disk_bytes). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "vm/handle.h"
#include "vm/image.h"
#include "vm/qcow2.h"
#include "vm/shim_ctl.h"

/* block_resize and the size query go through the shim, which waits at most
 * SHIM_CTL_QMP_TIMEOUT_MS on QEMU; this adds the connection's own time. */
#define RESIZE_QMP_TIMEOUT_MS (SHIM_CTL_QMP_TIMEOUT_MS + 5000)

static bool has_vm_disk(const vm_spec *s) {
  for (size_t i = 0; i < s->n_drives; i++)
    if (!strcmp(s->drives[i].path, "disk.qcow2")) return true;
  return false;
}

/* The size in disk.qcow2's header, read by qvm's own parser after the
 * header is checked: qemu-img runs as root and opens what the header names,
 * which a guest that took its QEMU over may have rewritten. */
static int size_offline(uint64_t *out, const qvm_vm *vm, const char *path, qvm_error **err) {
  vm_qcow2_policy policy = {.what = "vm disk",
                            .backing = vm->spec->image,
                            .backing_format = vm->spec->image_format,
                            .why = ": qemu-img would open it as root; qvm did not resize the disk"};
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open vm disk '%s'", path);
  _cleanup_free_ vm_qcow2_header *h = calloc(1, sizeof *h);
  if (!h) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  int r = vm_qcow2_read_fd(h, fd, path, err);
  if (r >= 0) r = vm_qcow2_check(h, path, &policy, err);
  if (r >= 0) *out = h->size;
  return r;
}

static int resize_offline(const char *path, uint64_t bytes, qvm_error **err) {
  char size[32];
  snprintf(size, sizeof size, "%" PRIu64, bytes);
  char *argv[] = {"qemu-img", "resize", "-q", "-f", "qcow2", (char *)path, size, NULL};
  return vm_run_program(NULL, argv, err);
}

/* The "disk" node's virtual size, as QEMU reports it (bounded: the shim's
 * reply is at most 1 MiB, and every member is type-checked). */
static int size_online(uint64_t *out, const qvm_vm *vm, qvm_error **err) {
  struct json_object *args = json_object_new_object(), *nodes = NULL;
  if (!args) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  json_object_object_add(args, "flat", json_object_new_boolean(true));
  int r =
      vm_ctl_qmp(&nodes, &vm->paths, "query-named-block-nodes", args, RESIZE_QMP_TIMEOUT_MS, err);
  json_object_put(args);
  if (r < 0) return r;
  bool found = false;
  size_t n = json_object_is_type(nodes, json_type_array) ? json_object_array_length(nodes) : 0;
  for (size_t i = 0; i < n && !found; i++) {
    struct json_object *node = json_object_array_get_idx(nodes, i), *name = NULL, *image = NULL,
                       *size = NULL;
    found = json_object_object_get_ex(node, "node-name", &name) &&
            json_object_is_type(name, json_type_string) &&
            !strcmp(json_object_get_string(name), "disk") &&
            json_object_object_get_ex(node, "image", &image) &&
            json_object_object_get_ex(image, "virtual-size", &size) &&
            json_object_is_type(size, json_type_int) && json_object_get_int64(size) >= 0;
    if (found) *out = (uint64_t)json_object_get_int64(size);
  }
  json_object_put(nodes);
  if (!found)
    return qvm_error_set(err, QVM_EQMP,
                         "qemu reports no block node 'disk' with a size (was the vm started by "
                         "a qvm that gave its disk no node names? restart it)");
  return 0;
}

static int resize_online(const qvm_vm *vm, uint64_t bytes, qvm_error **err) {
  struct json_object *args = json_object_new_object(), *ret = NULL;
  if (!args) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  json_object_object_add(args, "node-name", json_object_new_string("disk"));
  json_object_object_add(args, "size", json_object_new_int64((int64_t)bytes));
  int r = vm_ctl_qmp(&ret, &vm->paths, "block_resize", args, RESIZE_QMP_TIMEOUT_MS, err);
  json_object_put(args);
  json_object_put(ret);
  return r;
}

static int record_disk_bytes(vm_record *rec, void *ctx, qvm_error **err) {
  (void)err;
  rec->spec->disk_bytes = *(const uint64_t *)ctx;
  return 0;
}

static int resize_locked(qvm_vm *vm, uint64_t bytes, qvm_error **err) {
  int r = vm_reconcile_locked(vm, err);
  if (r < 0) return r;
  if (!has_vm_disk(vm->spec))
    return qvm_error_set(err, QVM_EINVAL,
                         "it has no disk of its own (disk.qcow2) to resize: it boots a kernel, "
                         "a cdrom or drives it does not own");
  qvm_vm_state state = qvm_vm_get_state(vm);
  if (state == QVM_VM_STARTING || state == QVM_VM_STOPPING)
    return qvm_error_set(err, QVM_ECONFLICT, "it is %s: resize it once it runs or has stopped",
                         qvm_vm_state_name(state));
  bool online = state == QVM_VM_RUNNING;
  _cleanup_free_ char *path = NULL;
  if (asprintf(&path, "%s/disk.qcow2", vm->paths.dir) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  uint64_t now = 0, after = 0;
  r = online ? size_online(&now, vm, err) : size_offline(&now, vm, path, err);
  if (r < 0) return r;
  if (bytes < now)
    return qvm_error_set(err, QVM_EINVAL,
                         "its disk is %" PRIu64 " bytes and %" PRIu64
                         " is smaller: shrinking would cut off what the guest stored at the end "
                         "(qvm only grows disks)",
                         now, bytes);
  if (bytes > now) {
    r = online ? resize_online(vm, bytes, err) : resize_offline(path, bytes, err);
    if (r >= 0) r = online ? size_online(&after, vm, err) : size_offline(&after, vm, path, err);
    if (r >= 0 && after != bytes)
      r = qvm_error_set(err, QVM_EQMP, "its disk is %" PRIu64 " bytes after resizing to %" PRIu64,
                        after, bytes);
    if (r < 0) return r;
  }
  r = vm_record_update(&vm->paths, record_disk_bytes, &bytes, err);
  /* The handle keeps the state read under the lock: qvm_vm_get_state()
   * afterwards says whether the resize was online. */
  if (r >= 0) vm->spec->disk_bytes = bytes;
  return r;
}

int qvm_vm_resize(qvm_vm *vm, uint64_t bytes, qvm_error **err) {
  int fd = -1, r = 0;
  if (bytes == 0 || bytes > INT64_MAX || bytes % 512)
    r = qvm_error_set(err, QVM_EINVAL,
                      "disk size %" PRIu64 " bytes is invalid: give a whole number of 512-byte "
                      "sectors, such as 20G",
                      bytes);
  if (r >= 0) r = vm_lock_acquire(&fd, &vm->paths, "resize", VM_LOCK_TIMEOUT_MS, err);
  if (r >= 0) r = resize_locked(vm, bytes, err);
  vm_lock_release(fd);
  if (r < 0) qvm_error_prefix(err, "cannot resize vm '%s'", vm->name);
  return r;
}
