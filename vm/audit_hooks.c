/* SPDX-License-Identifier: MIT */
/* The records libqvm's actions append to the audit log (include/qvm/audit.h):
 * what each one says beyond actor, VM and action. */
#include "vm/audit.h"

#include <qvm/vm.h>

static void add_string(struct json_object *d, const char *key, const char *v) {
  json_object_object_add(d, key, vm_audit_string(v, VM_AUDIT_PATH_MAX, NULL));
}

void vm_audit_create(const char *vm, const qvm_vm_create_options *o) {
  struct json_object *d = json_object_new_object();
  if (o) {
    add_string(d, "image", o->image);
    if (o->kernel) add_string(d, "kernel", o->kernel);
    json_object_object_add(d, "cpus", json_object_new_int64(o->cpus ? o->cpus : 1));
    json_object_object_add(d, "memory", json_object_new_int64((int64_t)o->memory));
    json_object_object_add(d, "disk", json_object_new_int64((int64_t)o->disk));
  }
  vm_audit_note(vm, "create", 0, NULL, d);
}

void vm_audit_remove(const char *vm, bool force, int r, const qvm_error *const *err) {
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "force", json_object_new_boolean(force));
  vm_audit_note(vm, "rm", r, err, d);
}

void vm_audit_run(const char *vm, int r, const int *status, const qvm_error *const *err) {
  struct json_object *d = json_object_new_object();
  if (r >= 0 && status) json_object_object_add(d, "exit", json_object_new_int(*status));
  vm_audit_note(vm, "run", r, err, d);
}

void vm_audit_clone(const char *src, const char *dst, const char *snapshot, int r,
                    const qvm_error *const *err) {
  if (!qvm_vm_name_valid(dst)) return; /* refused before anything was made */
  struct json_object *d = json_object_new_object();
  add_string(d, "source", src);
  add_string(d, "snapshot", snapshot);
  vm_audit_note(dst, "clone", r, err, d);
}

void vm_audit_provision(const char *vm, size_t steps, const size_t *failed, int r,
                        const qvm_error *const *err) {
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "steps", json_object_new_int64((int64_t)steps));
  if (failed && *failed)
    json_object_object_add(d, "failed_step", json_object_new_int64((int64_t)*failed));
  vm_audit_note(vm, "provision", r, err, d);
}
