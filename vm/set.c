/* SPDX-License-Identifier: MIT */
/* qvm_vm_set: cpus, memory and CPU model changed in vm.json, for the next start. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <qvm/vm.h>

#include "vm/audit.h"
#include "vm/cpu.h"
#include "vm/defaults.h"
#include "vm/handle.h"
#include "vm/record.h"

#define SET_LOCK_MS 10000

typedef struct set_ctx {
  const qvm_vm_set_options *o;
  unsigned cpus_was;
  uint64_t memory_mib_was, memory_mib;
  char *cpu_was;
} set_ctx;

static int apply(vm_record *rec, void *ctx, qvm_error **err) {
  set_ctx *c = ctx;
  c->cpus_was = rec->spec->cpus;
  c->memory_mib_was = rec->spec->memory_mib;
  if (c->o->cpus) rec->spec->cpus = c->o->cpus;
  if (c->o->memory) rec->spec->memory_mib = c->memory_mib;
  if (c->o->cpu) {
    char *cpu = strdup(c->o->cpu);
    if (!cpu) return qvm_error_set_errno(err, ENOMEM, "out of memory");
    free(c->cpu_was);
    c->cpu_was = rec->spec->cpu; /* NULL: legacy */
    rec->spec->cpu = cpu;
  }
  return 0;
}

static struct json_object *pair(uint64_t was, uint64_t now) {
  struct json_object *a = json_object_new_array();
  json_object_array_add(a, json_object_new_uint64(was));
  json_object_array_add(a, json_object_new_uint64(now));
  return a;
}

static int set_locked(char **out_json, qvm_vm *vm, const qvm_vm_set_options *o, qvm_error **err) {
  int r = vm_reconcile_locked(vm, err);
  if (r < 0) return r;
  qvm_vm_state st = qvm_vm_get_state(vm);
  if (st == QVM_VM_STARTING || st == QVM_VM_STOPPING)
    return qvm_error_set(err, QVM_ECONFLICT, "it is %s: change it once it runs or has stopped",
                         qvm_vm_state_name(st));
  set_ctx c = {.o = o, .memory_mib = (o->memory + (1u << 20) - 1) >> 20};
  r = vm_record_update(&vm->paths, apply, &c, err);
  if (r >= 0) r = vm_reload(vm, err);
  if (r < 0) {
    free(c.cpu_was);
    return r;
  }
  size_t ram = 0;
  for (size_t i = 0; i < vm->rec->n_snapshots; i++) ram += vm->rec->snapshots[i].ram;
  struct json_object *res = json_object_new_object(), *ch = json_object_new_object();
  json_object_object_add(res, "name", json_object_new_string(vm->name));
  if (o->cpus) json_object_object_add(ch, "cpus", pair(c.cpus_was, o->cpus));
  if (o->memory) json_object_object_add(ch, "memory_mib", pair(c.memory_mib_was, c.memory_mib));
  if (o->cpu) {
    struct json_object *a = json_object_new_array();
    json_object_array_add(a, json_object_new_string(c.cpu_was ? c.cpu_was : VM_CPU_LEGACY));
    json_object_array_add(a, json_object_new_string(o->cpu));
    json_object_object_add(ch, "cpu", a);
    free(c.cpu_was);
  }
  json_object_object_add(res, "changes", ch);
  json_object_object_add(res, "running", json_object_new_boolean(st == QVM_VM_RUNNING));
  json_object_object_add(res, "ram_snapshots", json_object_new_uint64(ram));
  const char *t = json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN);
  if (out_json && !(*out_json = t ? strdup(t) : NULL))
    r = qvm_error_set_errno(err, ENOMEM, "out of memory");
  vm_audit_note(vm->name, "set", r, (const qvm_error *const *)err, json_object_get(ch));
  json_object_put(res);
  return r;
}

int qvm_vm_set(char **out_json, qvm_vm *vm, const qvm_vm_set_options *opts, qvm_error **err) {
  int r = QVM_OPTIONS_CHECK(opts, qvm_vm_set_options, QVM_VM_SET_OPTIONS_VERSION, err);
  if (r < 0) return r;
  if (!vm || !opts || (!opts->cpus && !opts->memory && !opts->cpu))
    return qvm_error_set(err, QVM_EINVAL, "nothing to change: give cpus, memory or cpu");
  if (opts->cpu && (r = vm_cpu_check(opts->cpu, err)) < 0) return r;
  if (opts->cpus > 255)
    return qvm_error_set(err, QVM_EINVAL, "cpus '%u' is out of range: use 1 to 255", opts->cpus);
  if (opts->memory && (opts->memory < VM_MEMORY_MIN || opts->memory > VM_MEMORY_MAX))
    return qvm_error_set(err, QVM_EINVAL,
                         "memory size %" PRIu64 " bytes is out of range: use 16M to 16T",
                         opts->memory);
  int fd = -1;
  r = vm_lock_acquire(&fd, &vm->paths, "set", SET_LOCK_MS, err);
  if (r >= 0) r = set_locked(out_json, vm, opts, err);
  vm_lock_release(fd);
  if (r < 0) qvm_error_prefix(err, "cannot change vm '%s'", vm->name);
  return r;
}
