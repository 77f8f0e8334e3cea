/* SPDX-License-Identifier: MIT */
/* qvm_vm_clone: SRC's disk state imported as an unnamed store image, DST
 * created over it with SRC's settings and a fresh identity (qvm_vm_create
 * gives every VM its own uuid, MAC, keys, instance-id and hostname). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include <qvm/up.h>
#include <qvm/vm.h>

#include "util/cleanup.h"
#include "vm/audit.h"
#include "vm/clone.h"
#include "vm/cpu.h"
#include "vm/handle.h"
#include "vm/images.h"

#define STORE_LOCK_MS 60000

static int oom(qvm_error **err) { return qvm_error_set_errno(err, ENOMEM, "out of memory"); }

void vm_clone_plan_clear(vm_clone_plan *p) {
  free(p->cdroms);
  free(p->drives);
  free(p->keys);
  free(p->egress_text);
  free(p->egress);
  free(p->mounts);
  p->mounts = NULL;
  p->cdroms = NULL;
  p->drives = NULL;
  p->keys = NULL;
  p->egress_text = NULL;
  p->egress = NULL;
}

int vm_clone_plan_init(vm_clone_plan *p, const vm_spec *s, qvm_error **err) {
  qvm_vm_create_options *o = &p->o;
  *o = (qvm_vm_create_options)QVM_VM_CREATE_OPTIONS_INIT;
  o->image = p->image;
  o->cpus = s->cpus;
  o->memory = s->memory_mib << 20;
  o->machine = s->machine;
  /* A fork loads SRC's RAM into the same CPU model. */
  o->cpu = s->cpu ? s->cpu : VM_CPU_LEGACY;
  o->accel = vm_accel_name(s->accel);
  o->firmware = vm_firmware_name(s->firmware);
  o->kernel = s->kernel;
  o->initrd = s->initrd;
  o->append = s->append;
  /* With qvm's cloud-init, seed.iso is SRC's own (its identity): DST gets
   * a new one. Otherwise it is the user's seed file, shared read-only. */
  o->seed_iso = s->cloud_init ? NULL : s->seed_iso;
  o->no_cloud_init = !s->cloud_init;
  o->user = s->user;
  o->hostkey = s->hostkey_tofu ? "tofu" : "pinned";
  /* Networking as SRC's, without its published ports (they would clash). */
  o->net.mode = s->net == VM_NET_NONE     ? QVM_VM_NET_NONE
                : s->net == VM_NET_BRIDGE ? QVM_VM_NET_BRIDGE
                                          : QVM_VM_NET_USER;
  o->net.restricted = s->net_restrict;
  if (s->net == VM_NET_BRIDGE) {
    snprintf(o->net.bridge, sizeof o->net.bridge, "%s", s->bridge ? s->bridge : "");
    snprintf(o->net.subnet, sizeof o->net.subnet, "%s",
             s->bridge_address && !s->dhcp_external ? s->bridge_address : "");
    o->net.dhcp_external = s->dhcp_external;
    o->net.nat = s->nat;
    o->net.isolated = s->isolated;
  }
  if (s->isolated && s->n_egress) {
    if (!(p->egress_text = calloc(s->n_egress, sizeof *p->egress_text)) ||
        !(p->egress = calloc(s->n_egress, sizeof *p->egress)))
      return oom(err);
    for (size_t i = 0; i < s->n_egress; i++) {
      qvm_net_egress_format(p->egress_text[i], &s->egress[i]);
      p->egress[i] = p->egress_text[i];
    }
    o->net.allow_egress = p->egress;
    o->net.n_allow_egress = s->n_egress;
  }
  if (!(p->cdroms = calloc(s->n_drives + 1, sizeof *p->cdroms)) ||
      !(p->drives = calloc(s->n_drives + 1, sizeof *p->drives)) ||
      !(p->keys = calloc(s->n_authorized_keys + 1, sizeof *p->keys)))
    return oom(err);
  for (size_t i = 0; i < s->n_drives; i++) {
    const vm_drive *d = &s->drives[i];
    if (d->media == VM_MEDIA_CDROM) {
      p->cdroms[o->n_cdroms++] = d->path;
    } else if (!strcmp(d->path, "disk.qcow2")) {
      continue; /* the imported image takes its place */
    } else if (!d->readonly) {
      qvm_error_set(err, QVM_EINVAL,
                    "it has a writable drive '%s': a clone cannot share it (both vms would write "
                    "it) and qvm does not copy it; attach it read-only or detach it",
                    d->path);
      return qvm_error_set_hint(err, QVM_EINVAL, "WritableDrive", d->path);
    } else {
      p->drives[o->n_drives++] =
          (qvm_vm_drive){.path = d->path, .format = d->format, .readonly = true};
    }
  }
  /* A shared folder is shared by both: 9p writes go to the host's file
   * system, which serializes them as it does for two host programs. */
  if (s->n_mounts && !(p->mounts = calloc(s->n_mounts, sizeof *p->mounts))) return oom(err);
  for (size_t i = 0; i < s->n_mounts; i++)
    p->mounts[i] = (qvm_vm_mount){.host = s->mounts[i].host,
                                  .guest = s->mounts[i].guest,
                                  .readonly = s->mounts[i].readonly,
                                  /* the disk's fstab line names the source's transport */
                                  .transport = s->mounts[i].virtiofs ? QVM_VM_MOUNT_VIRTIOFS
                                                                     : QVM_VM_MOUNT_9P};
  o->mounts = p->mounts;
  o->n_mounts = s->n_mounts;
  o->cdroms = p->cdroms;
  o->drives = p->drives;
  for (size_t i = 0; i < s->n_authorized_keys; i++) p->keys[i] = s->authorized_keys[i];
  o->authorized_keys = p->keys;
  o->n_authorized_keys = s->n_authorized_keys;
  return 0;
}

static int result_json(char **out, const char *src, const char *dst, const char *snapshot,
                       const char *image, qvm_error **err) {
  qvm_vm *vm = NULL;
  int r = qvm_vm_open(&vm, dst, err);
  if (r < 0) return r;
  struct json_object *o = json_object_new_object();
  if (!o) {
    qvm_vm_free(vm);
    return oom(err);
  }
  json_object_object_add(o, "name", json_object_new_string(dst));
  json_object_object_add(o, "source", json_object_new_string(src));
  json_object_object_add(o, "snapshot", snapshot ? json_object_new_string(snapshot) : NULL);
  json_object_object_add(o, "image", json_object_new_string(image));
  json_object_object_add(o, "uuid", json_object_new_string(vm->spec->uuid));
  json_object_object_add(o, "mac", json_object_new_string(vm->spec->mac));
  json_object_object_add(o, "state",
                         json_object_new_string(qvm_vm_state_name(qvm_vm_get_state(vm))));
  const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
  *out = t ? strdup(t) : NULL;
  json_object_put(o);
  qvm_vm_free(vm);
  return *out ? 0 : oom(err);
}

int vm_name_free(const char *dst, qvm_error **err) {
  vm_paths p = {0};
  int r = vm_paths_init(&p, dst, err);
  if (r < 0) return r;
  if (access(p.dir, F_OK) == 0) r = qvm_error_set(err, QVM_EEXISTS, "vm '%s' already exists", dst);
  vm_paths_clear(&p);
  return r;
}

static int clone_run(char **out_json, const char *src, const char *dst,
                     const qvm_vm_clone_options *opts, qvm_error **err) {
  int r = qvm_vm_name_check(dst, err);
  if (r < 0) return r;
  if (!strcmp(src, dst))
    return qvm_error_set(err, QVM_EEXISTS, "vm '%s' already exists: give the clone another name",
                         dst);
  if ((r = vm_name_free(dst, err)) < 0) return r;
  qvm_vm *svm = NULL;
  if ((r = qvm_vm_open(&svm, src, err)) < 0) return r;
  vm_clone_plan plan = {0};
  /* Refuse what cannot be cloned before the (long) import. */
  r = vm_clone_plan_init(&plan, svm->spec, err);
  _cleanup_(img_store_freep) img_store *s = NULL;
  if (r >= 0) r = images_store_open(&s, err);
  char digest[65] = "";
  bool existed = true;
  qvm_image_import_options io = QVM_IMAGE_IMPORT_OPTIONS_INIT;
  io.progress = opts->progress;
  io.userdata = opts->userdata;
  if (r >= 0) r = vm_image_import(digest, &existed, NULL, s, src, opts->snapshot, NULL, &io, err);
  if (r >= 0) {
    snprintf(plan.image, sizeof plan.image, "sha256:%s", digest);
    /* Shared: a prune (exclusive) cannot take the unnamed image away
     * before DST's vm.json names it. */
    _cleanup_close_ int lock = -1;
    r = img_store_lock(&lock, s, false, STORE_LOCK_MS, err);
    plan.o.tags = opts->tags;
    /* A sandbox never shares SRC's host folders: what it writes there
     * would outlive it, escape its checkpoints and its diff. */
    if (plan.o.tags.sandbox) {
      plan.o.mounts = NULL;
      plan.o.n_mounts = 0;
    }
    if (opts->net) plan.o.net = *opts->net;
    if (r >= 0) r = qvm_vm_create(NULL, dst, &plan.o, err);
    if (r >= 0 && opts->then == QVM_VM_CLONE_UP) {
      vm_paths p = {0};
      r = vm_paths_init(&p, dst, err);
      if (r >= 0) r = vm_up_record_create(&p, &plan.o, err);
      vm_paths_clear(&p);
      if (r < 0) {
        qvm_error *rerr = NULL;
        qvm_vm_remove(dst, true, &rerr);
        qvm_error_free(rerr);
      }
    }
  }
  if (r < 0 && digest[0] && !existed) {
    qvm_error *rerr = NULL;
    images_remove_unused(s, digest, &rerr); /* best effort: prune finds it otherwise */
    qvm_error_free(rerr);
  }
  if (r >= 0 && opts->then == QVM_VM_CLONE_START) {
    qvm_vm *dvm = NULL;
    r = qvm_vm_open(&dvm, dst, err);
    if (r >= 0) r = qvm_vm_start(dvm, opts->start, err);
    qvm_vm_free(dvm);
    if (r < 0) qvm_error_prefix(err, "clone '%s' was created but did not start", dst);
  } else if (r >= 0 && opts->then == QVM_VM_CLONE_UP) {
    qvm_up_result res = {0};
    r = qvm_vm_up(opts->up_result ? opts->up_result : &res, dst, &plan.o, opts->up, err);
    if (r < 0) qvm_error_prefix(err, "clone '%s' was created but did not come up", dst);
  }
  if (r >= 0 && out_json) r = result_json(out_json, src, dst, opts->snapshot, plan.image, err);
  vm_clone_plan_clear(&plan);
  qvm_vm_free(svm);
  return r;
}

int qvm_vm_clone(char **out_json, const char *src, const char *dst,
                 const qvm_vm_clone_options *opts, qvm_error **err) {
  qvm_vm_clone_options defaults = QVM_VM_CLONE_OPTIONS_INIT;
  int r = QVM_OPTIONS_CHECK(opts, qvm_vm_clone_options, QVM_VM_CLONE_OPTIONS_VERSION, err);
  if (r < 0) return r;
  if (!src || !dst) return qvm_error_set(err, QVM_EINVAL, "clone needs a source and a name");
  if (!opts) opts = &defaults;
  if ((unsigned)opts->then > QVM_VM_CLONE_UP)
    return qvm_error_set(err, QVM_EINVAL, "clone: 'then' %d is unknown", (int)opts->then);
  r = clone_run(out_json, src, dst, opts, err);
  vm_audit_clone(src, dst, opts->snapshot, r, (const qvm_error *const *)err);
  if (r < 0) qvm_error_prefix(err, "cannot clone vm '%s' to '%s'", src, dst);
  return r;
}
