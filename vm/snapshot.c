/* SPDX-License-Identifier: MIT */
/* qvm_vm_snapshot_*: internal qcow2 snapshots of the VM's disk.qcow2. A
 * running VM's go through QEMU on the node "disk" (docs/vm-json.md, "Block
 * nodes"): the snapshot-save/-load/-delete jobs (vmstate and devices both
 * "disk": the seed and the base image are read-only and take no snapshot)
 * and blockdev-snapshot-internal-sync for a disk-only one. A stopped VM's
 * go through `qemu-img snapshot` after qvm checked the disk's header, as
 * vm/resize.c does. vm.json keeps the metadata ("snapshots"). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/time.h"
#include "vm/audit.h"
#include "vm/ca_guest.h"
#include "vm/handle.h"
#include "vm/image.h"
#include "vm/qcow2.h"
#include "vm/shim_ctl.h"
#include <qvm/snapshot.h>

#define SNAP_QMP_TIMEOUT_MS (SHIM_CTL_QMP_TIMEOUT_MS + 5000)
#define SNAP_JOB_TIMEOUT_MS 600000
#define SNAP_POLL_MS 100

typedef struct snap_op {
  qvm_vm *vm;
  const char *name;
  const qvm_vm_snapshot_options *opts;
  bool interrupted;
  char path[4096]; /* disk.qcow2 */
} snap_op;

static const vm_snapshot *snap_find(const vm_record *rec, const char *name) {
  for (size_t i = 0; i < rec->n_snapshots; i++)
    if (!strcmp(rec->snapshots[i].name, name)) return &rec->snapshots[i];
  return NULL;
}

static bool has_vm_disk(const vm_spec *s) {
  for (size_t i = 0; i < s->n_drives; i++)
    if (!strcmp(s->drives[i].path, "disk.qcow2")) return true;
  return false;
}

static int qmp(struct json_object **out, snap_op *op, const char *command, struct json_object *args,
               qvm_error **err) {
  struct json_object *ret = NULL;
  int r = vm_ctl_qmp(&ret, &op->vm->paths, command, args, SNAP_QMP_TIMEOUT_MS, err);
  json_object_put(args);
  if (out)
    *out = ret;
  else
    json_object_put(ret);
  return r;
}

static int report(snap_op *op, const char *status) {
  if (op->opts->progress && op->opts->progress(status, op->opts->progress_ctx))
    op->interrupted = true;
  return 0;
}

static void sleep_ms(int ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* The job's entry in query-jobs: *status (borrowed from *list) and, once
 * concluded, *error (NULL none). False when it is not listed. */
static bool job_entry(struct json_object *list, const char *id, const char **status,
                      const char **error) {
  size_t n = json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;
  for (size_t i = 0; i < n; i++) {
    struct json_object *job = json_object_array_get_idx(list, i), *v = NULL;
    if (!json_object_object_get_ex(job, "id", &v) || !json_object_is_type(v, json_type_string) ||
        strcmp(json_object_get_string(v), id))
      continue;
    *status =
        json_object_object_get_ex(job, "status", &v) && json_object_is_type(v, json_type_string)
            ? json_object_get_string(v)
            : "unknown";
    *error = json_object_object_get_ex(job, "error", &v) && json_object_is_type(v, json_type_string)
                 ? json_object_get_string(v)
                 : NULL;
    return true;
  }
  return false;
}

static struct json_object *job_id_args(const char *id) {
  struct json_object *a = json_object_new_object();
  json_object_object_add(a, "id", json_object_new_string(id));
  return a;
}

/* Polls query-jobs until the job concluded, then dismisses it. While QEMU
 * runs the job's work its main loop answers nothing: a query that timed
 * out (or the shim's "busy" for it) is waited through. */
static int job_wait(snap_op *op, const char *id, qvm_error **err) {
  int timeout = op->opts->timeout_ms > 0 ? op->opts->timeout_ms : SNAP_JOB_TIMEOUT_MS;
  int64_t deadline = qvm_now_ms() + timeout;
  char last[32] = "";
  for (;;) {
    struct json_object *list = NULL;
    qvm_error *e = NULL;
    int r = qmp(&list, op, "query-jobs", NULL, &e);
    if (r == QVM_ETIMEOUT || r == QVM_EBUSY) {
      qvm_error_free(e);
      report(op, "running");
    } else if (r < 0) {
      return qvm_error_propagate(err, e);
    } else {
      const char *status = NULL, *error = NULL;
      if (!job_entry(list, id, &status, &error)) {
        json_object_put(list);
        return qvm_error_set(err, QVM_EQMP, "qemu's job '%s' is gone from query-jobs", id);
      }
      if (strcmp(status, last)) snprintf(last, sizeof last, "%s", status);
      report(op, last);
      if (!strcmp(status, "concluded")) {
        r = error ? qvm_error_set(err, QVM_EQMP, "%.1000s", error) : 0;
        json_object_put(list);
        qvm_error *ignored = NULL;
        qmp(NULL, op, "job-dismiss", job_id_args(id), &ignored);
        qvm_error_free(ignored);
        return r;
      }
      json_object_put(list);
    }
    if (qvm_now_ms() >= deadline)
      return qvm_error_set(err, QVM_ETIMEOUT, "qemu's job '%s' did not end within %d s", id,
                           timeout / 1000);
    sleep_ms(SNAP_POLL_MS);
  }
}

/* Starts one of snapshot-save/-load/-delete and waits for it. A job of the
 * same id that a killed qvm left concluded is dismissed first. */
static int job_run(snap_op *op, const char *command, bool vmstate, qvm_error **err) {
  char id[96];
  snprintf(id, sizeof id, "qvm-%s-%s", command, op->name);
  qvm_error *ignored = NULL;
  qmp(NULL, op, "job-dismiss", job_id_args(id), &ignored);
  qvm_error_free(ignored);
  struct json_object *args = json_object_new_object(), *devices = json_object_new_array();
  json_object_object_add(args, "job-id", json_object_new_string(id));
  json_object_object_add(args, "tag", json_object_new_string(op->name));
  if (vmstate) json_object_object_add(args, "vmstate", json_object_new_string("disk"));
  json_object_array_add(devices, json_object_new_string("disk"));
  json_object_object_add(args, "devices", devices);
  int r = qmp(NULL, op, command, args, err);
  if (r >= 0) report(op, "created");
  if (r >= 0) r = job_wait(op, id, err);
  return r;
}

/* disk.qcow2's header, checked like vm/resize.c does, and its size. */
static int disk_check(uint64_t *size, snap_op *op, qvm_error **err) {
  vm_qcow2_policy policy = {.what = "vm disk",
                            .backing = op->vm->spec->image,
                            .backing_format = op->vm->spec->image_format,
                            .why = ": qemu-img would open it as root; qvm did not touch its "
                                   "snapshots"};
  _cleanup_close_ int fd = open(op->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open vm disk '%s'", op->path);
  _cleanup_free_ vm_qcow2_header *h = calloc(1, sizeof *h);
  if (!h) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  int r = vm_qcow2_read_fd(h, fd, op->path, err);
  if (r >= 0) r = vm_qcow2_check(h, op->path, &policy, err);
  if (r >= 0) *size = h->size;
  return r;
}

/* qemu-img 7.2's snapshot takes no -f: --image-opts names the format, so
 * nothing is probed (a comma in the path is doubled, its escape there). */
static void image_opts(char *out, size_t size, const char *path) {
  size_t n = (size_t)snprintf(out, size, "driver=qcow2,file.driver=file,file.filename=");
  for (const char *p = path; *p && n + 3 < size; p++) {
    if (*p == ',') out[n++] = ',';
    out[n++] = *p;
  }
  out[n] = '\0';
}

/* qcow2 lets names repeat (only ids are unique): a snapshot of this name
 * made outside qvm would make the name ambiguous for restore and rm. */
static int offline_name_free(snap_op *op, const char *opts, qvm_error **err) {
  _cleanup_free_ char *text = NULL;
  char *argv[] = {"qemu-img", "info", "--output=json", "-U", "--image-opts", (char *)opts, NULL};
  int r = vm_run_program(&text, argv, err);
  if (r < 0) return r;
  struct json_object *info = json_tokener_parse(text), *snaps = NULL;
  size_t n = json_object_object_get_ex(info, "snapshots", &snaps) &&
                     json_object_is_type(snaps, json_type_array)
                 ? json_object_array_length(snaps)
                 : 0;
  bool taken = false;
  for (size_t i = 0; i < n && !taken; i++) {
    struct json_object *name = NULL;
    taken = json_object_object_get_ex(json_object_array_get_idx(snaps, i), "name", &name) &&
            json_object_is_type(name, json_type_string) &&
            !strcmp(json_object_get_string(name), op->name);
  }
  json_object_put(info);
  if (taken)
    return qvm_error_set(err, QVM_EEXISTS,
                         "its disk holds a snapshot named '%s' that qvm did not record", op->name);
  return 0;
}

static int qemu_img_snapshot(snap_op *op, const char *flag, qvm_error **err) {
  uint64_t size = 0;
  int r = disk_check(&size, op, err);
  if (r < 0) return r;
  char opts[sizeof op->path * 2 + 64];
  image_opts(opts, sizeof opts, op->path);
  if (!strcmp(flag, "-c") && (r = offline_name_free(op, opts, err)) < 0) return r;
  char *argv[] = {"qemu-img",   "snapshot",       "-q", "--image-opts",
                  (char *)flag, (char *)op->name, opts, NULL};
  return vm_run_program(NULL, argv, err);
}

/* The "disk" node's virtual size and, for the snapshot, its vm-state-size
 * (0 when QEMU does not list it). */
static int node_sizes(uint64_t *disk, uint64_t *vmstate, snap_op *op, qvm_error **err) {
  struct json_object *args = json_object_new_object(), *nodes = NULL;
  json_object_object_add(args, "flat", json_object_new_boolean(true));
  int r = qmp(&nodes, op, "query-named-block-nodes", args, err);
  if (r < 0) return r;
  *disk = *vmstate = 0;
  size_t n = json_object_is_type(nodes, json_type_array) ? json_object_array_length(nodes) : 0;
  for (size_t i = 0; i < n; i++) {
    struct json_object *node = json_object_array_get_idx(nodes, i), *v = NULL, *image = NULL,
                       *snaps = NULL;
    if (!json_object_object_get_ex(node, "node-name", &v) ||
        !json_object_is_type(v, json_type_string) || strcmp(json_object_get_string(v), "disk") ||
        !json_object_object_get_ex(node, "image", &image))
      continue;
    if (json_object_object_get_ex(image, "virtual-size", &v) &&
        json_object_is_type(v, json_type_int) && json_object_get_int64(v) > 0)
      *disk = (uint64_t)json_object_get_int64(v);
    size_t m = json_object_object_get_ex(image, "snapshots", &snaps) &&
                       json_object_is_type(snaps, json_type_array)
                   ? json_object_array_length(snaps)
                   : 0;
    for (size_t j = 0; j < m; j++) {
      struct json_object *sn = json_object_array_get_idx(snaps, j), *name = NULL, *sz = NULL;
      if (json_object_object_get_ex(sn, "name", &name) &&
          json_object_is_type(name, json_type_string) &&
          !strcmp(json_object_get_string(name), op->name) &&
          json_object_object_get_ex(sn, "vm-state-size", &sz) &&
          json_object_is_type(sz, json_type_int) && json_object_get_int64(sz) > 0)
        *vmstate = (uint64_t)json_object_get_int64(sz);
    }
  }
  json_object_put(nodes);
  return 0;
}

/* --- vm.json ---------------------------------------------------------------- */

static int record_add(vm_record *rec, void *ctx, qvm_error **err) {
  const vm_snapshot *sn = ctx;
  if (snap_find(rec, sn->name))
    return qvm_error_set(err, QVM_EEXISTS, "snapshot '%s' is recorded already", sn->name);
  if (rec->n_snapshots >= VM_SNAPSHOT_MAX)
    return qvm_error_set(err, QVM_EINVAL, "it has %d snapshots, the most qvm keeps",
                         VM_SNAPSHOT_MAX);
  vm_snapshot *grown = realloc(rec->snapshots, (rec->n_snapshots + 1) * sizeof *grown);
  if (!grown) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  rec->snapshots = grown;
  rec->snapshots[rec->n_snapshots] = *sn;
  snprintf(rec->snapshots[rec->n_snapshots].parent, sizeof sn->parent, "%s", rec->snapshot_current);
  rec->n_snapshots++;
  snprintf(rec->snapshot_current, sizeof rec->snapshot_current, "%s", sn->name);
  return 0;
}

static int record_current(vm_record *rec, void *ctx, qvm_error **err) {
  (void)err;
  snprintf(rec->snapshot_current, sizeof rec->snapshot_current, "%s", (const char *)ctx);
  return 0;
}

/* Children of the removed snapshot get its parent; so does "current". */
static int record_remove(vm_record *rec, void *ctx, qvm_error **err) {
  (void)err;
  const vm_snapshot *gone = snap_find(rec, ctx);
  if (!gone) return 0;
  vm_snapshot removed = *gone;
  size_t k = 0;
  for (size_t i = 0; i < rec->n_snapshots; i++) {
    if (!strcmp(rec->snapshots[i].name, removed.name)) continue;
    if (!strcmp(rec->snapshots[i].parent, removed.name))
      memcpy(rec->snapshots[i].parent, removed.parent, sizeof removed.parent);
    rec->snapshots[k++] = rec->snapshots[i];
  }
  rec->n_snapshots = k;
  if (!strcmp(rec->snapshot_current, removed.name))
    memcpy(rec->snapshot_current, removed.parent, sizeof removed.parent);
  return 0;
}

/* --- the operations --------------------------------------------------------- */

static const qvm_vm_snapshot_options default_opts = QVM_VM_SNAPSHOT_OPTIONS_INIT;

/* Lock, reconcile, the common checks; *state gets the VM's state. */
static int op_begin(int *lock_fd, qvm_vm_state *state, snap_op *op, const char *what,
                    qvm_error **err) {
  if (op->opts->version != QVM_VM_SNAPSHOT_OPTIONS_VERSION)
    return qvm_error_set(err, QVM_EINVAL, "qvm_vm_snapshot_options version %u is unknown",
                         op->opts->version);
  if (!op->name || !qvm_vm_name_valid(op->name))
    return qvm_error_set(err, QVM_EINVAL,
                         "snapshot name '%s' is invalid: use 1-63 of a-z, 0-9 and '-', "
                         "starting with a letter or digit",
                         op->name ? op->name : "");
  int r = vm_lock_acquire(lock_fd, &op->vm->paths, what, VM_LOCK_TIMEOUT_MS, err);
  if (r >= 0) r = vm_reconcile_locked(op->vm, err);
  if (r < 0) return r;
  if (!has_vm_disk(op->vm->spec))
    return qvm_error_set(err, QVM_EINVAL,
                         "it has no disk of its own (disk.qcow2) to snapshot: it boots a "
                         "kernel, a cdrom or drives it does not own");
  snprintf(op->path, sizeof op->path, "%s/disk.qcow2", op->vm->paths.dir);
  *state = qvm_vm_get_state(op->vm);
  if (*state == QVM_VM_STARTING || *state == QVM_VM_STOPPING)
    return qvm_error_set(err, QVM_ECONFLICT, "it is %s: try again once it runs or has stopped",
                         qvm_vm_state_name(*state));
  return 0;
}

static int create_locked(snap_op *op, qvm_vm_state state, qvm_error **err) {
  if (snap_find(op->vm->rec, op->name))
    return qvm_error_set(err, QVM_EEXISTS, "snapshot '%s' exists", op->name);
  bool running = state == QVM_VM_RUNNING;
  vm_snapshot sn = {.ram = running && !op->opts->disk_only};
  snprintf(sn.name, sizeof sn.name, "%s", op->name);
  qvm_format_rfc3339(sn.created_at, qvm_realtime_us());
  snprintf(sn.vm_state, sizeof sn.vm_state, "%s", qvm_vm_state_name(state));
  int r = 0;
  if (!running) {
    r = qemu_img_snapshot(op, "-c", err);
    sn.disk_bytes = op->vm->spec->disk_bytes;
  } else if (!sn.ram) {
    struct json_object *args = json_object_new_object();
    json_object_object_add(args, "device", json_object_new_string("disk"));
    json_object_object_add(args, "name", json_object_new_string(op->name));
    r = qmp(NULL, op, "blockdev-snapshot-internal-sync", args, err);
  } else {
    /* The RAM is for this CPU model only: restore checks it. */
    const vm_runtime *rt = &op->vm->rec->runtime;
    if (op->vm->rec->has_runtime && rt->cpu) snprintf(sn.cpu, sizeof sn.cpu, "%s", rt->cpu);
    r = job_run(op, "snapshot-save", true, err);
  }
  if (r < 0) return r;
  qvm_error *e = NULL;
  if (running && node_sizes(&sn.disk_bytes, &sn.vm_state_size, op, &e) < 0) qvm_error_free(e);
  e = NULL;
  if (!op->interrupted) {
    r = vm_record_update(&op->vm->paths, record_add, &sn, &e);
    if (r >= 0) return vm_reload(op->vm, err);
  }
  /* Nothing half-made: a snapshot the user interrupted, or qvm could not
   * record, goes again. */
  bool interrupted = op->interrupted;
  op->interrupted = false;
  qvm_error *undo_err = NULL;
  int undo = running ? job_run(op, "snapshot-delete", false, &undo_err)
                     : qemu_img_snapshot(op, "-d", &undo_err);
  if (interrupted)
    r = undo < 0 ? qvm_error_set_code_errno(err, QVM_ESYS, EINTR,
                                            "interrupted, and removing the snapshot made "
                                            "meanwhile failed: %s",
                                            qvm_error_message(undo_err))
                 : qvm_error_set_code_errno(err, QVM_ESYS, EINTR,
                                            "interrupted: the snapshot made meanwhile was removed");
  else {
    if (undo < 0)
      qvm_error_prefix(&e, "it is left in the disk (removing it failed: %s)",
                       qvm_error_message(undo_err));
    r = qvm_error_propagate(err, e);
  }
  qvm_error_free(undo_err);
  return r;
}

static int restore_locked(snap_op *op, qvm_vm_state state, qvm_error **err) {
  const vm_snapshot *sn = snap_find(op->vm->rec, op->name);
  if (!sn) return qvm_error_set(err, QVM_ENOTFOUND, "snapshot '%s' not found", op->name);
  bool running = state == QVM_VM_RUNNING;
  int r;
  if (running && !sn->ram) {
    r = qvm_error_set(err, QVM_ECONFLICT,
                      "snapshot '%s' holds the disk only and the vm runs: stop the vm, then "
                      "restore it",
                      op->name);
  } else if (running && sn->ram && sn->cpu[0] && op->vm->rec->has_runtime &&
             op->vm->rec->runtime.cpu && strcmp(sn->cpu, op->vm->rec->runtime.cpu)) {
    /* QEMU would load it: the guest would then run on a CPU its kernel and
     * libraries did not probe (an instruction that is gone kills them). */
    r = qvm_error_set(err, QVM_ECONFLICT,
                      "snapshot '%s' holds RAM saved on cpu model %s and the vm runs on %s: "
                      "make its cpu model %s again and restart it, then restore",
                      op->name, sn->cpu, op->vm->rec->runtime.cpu, sn->cpu);
  } else if (!running && sn->ram) {
    r = qvm_error_set(err, QVM_ECONFLICT,
                      "snapshot '%s' holds the vm's RAM and the vm is %s: start the vm, then "
                      "restore it (it continues from the snapshot)",
                      op->name, qvm_vm_state_name(state));
  } else {
    r = running ? job_run(op, "snapshot-load", true, err) : qemu_img_snapshot(op, "-a", err);
  }
  if (r >= 0) r = vm_record_update(&op->vm->paths, record_current, (void *)op->name, err);
  if (r >= 0) r = vm_reload(op->vm, err);
  return r;
}

static int remove_locked(snap_op *op, qvm_vm_state state, qvm_error **err) {
  if (!snap_find(op->vm->rec, op->name))
    return qvm_error_set(err, QVM_ENOTFOUND, "snapshot '%s' not found", op->name);
  int r = state == QVM_VM_RUNNING ? job_run(op, "snapshot-delete", false, err)
                                  : qemu_img_snapshot(op, "-d", err);
  if (r >= 0) r = vm_record_update(&op->vm->paths, record_remove, (void *)op->name, err);
  if (r >= 0) r = vm_reload(op->vm, err);
  return r;
}

typedef int (*snap_fn)(snap_op *op, qvm_vm_state state, qvm_error **err);

static int snapshot_op(qvm_vm *vm, const char *name, const qvm_vm_snapshot_options *opts,
                       const char *what, snap_fn fn, qvm_error **err) {
  snap_op op = {.vm = vm, .name = name, .opts = opts ? opts : &default_opts};
  int fd = -1;
  qvm_vm_state state = QVM_VM_CREATED;
  int r = op_begin(&fd, &state, &op, what, err);
  if (r >= 0) r = fn(&op, state, err);
  vm_lock_release(fd);
  vm_audit_snapshot(vm->name, what, name, r, (const qvm_error *const *)err);
  if (r < 0)
    qvm_error_prefix(err, "cannot %s snapshot '%s' of vm '%s'", what + strlen("snapshot "),
                     name ? name : "", vm->name);
  return r;
}

int qvm_vm_snapshot_create(qvm_vm *vm, const char *snapshot, const qvm_vm_snapshot_options *opts,
                           qvm_error **err) {
  return snapshot_op(vm, snapshot, opts, "snapshot create", create_locked, err);
}

int qvm_vm_snapshot_restore(qvm_vm *vm, const char *snapshot, const qvm_vm_snapshot_options *opts,
                            qvm_error **err) {
  int r = snapshot_op(vm, snapshot, opts, "snapshot restore", restore_locked, err);
  if (r >= 0) r = vm_reload(vm, err);
  if (r < 0 || (r = vm_ca_repush(vm, err)) >= 0) return r;
  return qvm_error_prefix(err,
                          "vm '%s' is back at snapshot '%s', but its krl from then is still in "
                          "place (certificates revoked since may log in): push it again",
                          vm->name, snapshot);
}

int qvm_vm_snapshot_remove(qvm_vm *vm, const char *snapshot, const qvm_vm_snapshot_options *opts,
                           qvm_error **err) {
  return snapshot_op(vm, snapshot, opts, "snapshot remove", remove_locked, err);
}

int qvm_vm_snapshot_list(char **out_json, qvm_vm *vm, qvm_error **err) {
  const vm_record *rec = vm->rec;
  struct json_object *a = json_object_new_array();
  if (!a) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  for (size_t i = 0; i < rec->n_snapshots; i++) {
    struct json_object *o = vm_snapshot_to_json(&rec->snapshots[i]);
    json_object_object_add(
        o, "current",
        json_object_new_boolean(!strcmp(rec->snapshot_current, rec->snapshots[i].name)));
    json_object_array_add(a, o);
  }
  char *text = strdup(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN));
  json_object_put(a);
  if (!text) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  *out_json = text;
  return 0;
}
