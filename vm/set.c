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
  struct json_object *ports_was, *ports_now;
} set_ctx;

static bool same_host_port(const vm_forward *a, const vm_forward *b) {
  return a->host_port == b->host_port && a->udp == b->udp && !strcmp(a->host_addr, b->host_addr);
}

static struct json_object *ports_json(const vm_spec *s) {
  struct json_object *a = json_object_new_array();
  for (size_t i = 0; i < s->n_forwards; i++) {
    char buf[40];
    vm_forward_format(buf, &s->forwards[i]);
    json_object_array_add(a, json_object_new_string(buf));
  }
  return a;
}

/* --unpublish, then --publish, on the record's forwards. */
static int apply_ports(vm_spec *s, const qvm_vm_set_options *o, qvm_error **err) {
  if (s->net != VM_NET_USER)
    return qvm_error_set(err, QVM_EINVAL,
                         "published ports need user-mode networking (this vm's is %s)",
                         vm_net_mode_name(s->net));
  int r = 0;
  for (size_t i = 0; r >= 0 && i < o->n_unpublish; i++) {
    qvm_vm_publish p = o->unpublish[i];
    bool any_guest = !p.guest_port;
    if (any_guest) p.guest_port = 1;
    vm_forward f;
    if ((r = vm_forward_from_publish(&f, &p, err)) < 0) break;
    size_t k = 0;
    while (k < s->n_forwards && !(same_host_port(&s->forwards[k], &f) &&
                                  (any_guest || s->forwards[k].guest_port == f.guest_port)))
      k++;
    if (k == s->n_forwards) {
      char guest[16] = "";
      if (!any_guest) snprintf(guest, sizeof guest, " to guest %u", (unsigned)f.guest_port);
      r = qvm_error_set(err, QVM_ENOTFOUND, "host port %s:%u/%s is not published%s", f.host_addr,
                        (unsigned)f.host_port, f.udp ? "udp" : "tcp", guest);
      break;
    }
    vm_forward_clear(&s->forwards[k]);
    memmove(&s->forwards[k], &s->forwards[k + 1], (s->n_forwards - k - 1) * sizeof *s->forwards);
    s->n_forwards--;
  }
  for (size_t i = 0; r >= 0 && i < o->n_publish; i++) {
    vm_forward f;
    if ((r = vm_forward_from_publish(&f, &o->publish[i], err)) < 0) break;
    for (size_t k = 0; r >= 0 && k < s->n_forwards; k++)
      if (same_host_port(&s->forwards[k], &f))
        r = qvm_error_set(err, QVM_EEXISTS,
                          "host port %s:%u/%s is already published (to guest port %u): "
                          "unpublish it first",
                          f.host_addr, (unsigned)f.host_port, f.udp ? "udp" : "tcp",
                          (unsigned)s->forwards[k].guest_port);
    if (r >= 0 && s->n_forwards >= VM_FORWARDS_MAX)
      r = qvm_error_set(err, QVM_EINVAL, "too many published ports: at most %d", VM_FORWARDS_MAX);
    if (r >= 0) r = vm_spec_add_forward(s, &f, err);
  }
  return r;
}

static int apply(vm_record *rec, void *ctx, qvm_error **err) {
  set_ctx *c = ctx;
  c->cpus_was = rec->spec->cpus;
  c->memory_mib_was = rec->spec->memory_mib;
  if (c->o->cpus) rec->spec->cpus = c->o->cpus;
  if (c->o->memory) rec->spec->memory_mib = c->memory_mib;
  if (c->o->n_publish || c->o->n_unpublish) {
    json_object_put(c->ports_was);
    c->ports_was = ports_json(rec->spec);
    int r = apply_ports(rec->spec, c->o, err);
    if (r < 0) return r;
    json_object_put(c->ports_now);
    c->ports_now = ports_json(rec->spec);
  }
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
    json_object_put(c.ports_was);
    json_object_put(c.ports_now);
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
  if (c.ports_was) {
    struct json_object *a = json_object_new_array();
    json_object_array_add(a, c.ports_was);
    json_object_array_add(a, c.ports_now);
    json_object_object_add(ch, "ports", a);
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
  if (!vm || !opts ||
      (!opts->cpus && !opts->memory && !opts->cpu && !opts->n_publish && !opts->n_unpublish))
    return qvm_error_set(err, QVM_EINVAL, "nothing to change: give cpus, memory, cpu or ports");
  if (opts->n_publish > VM_FORWARDS_MAX || opts->n_unpublish > VM_FORWARDS_MAX ||
      (opts->n_publish && !opts->publish) || (opts->n_unpublish && !opts->unpublish))
    return qvm_error_set(err, QVM_EINVAL, "too many or missing ports to publish");
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
