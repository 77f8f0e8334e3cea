/* SPDX-License-Identifier: MIT */
/* Snapshots, clones and forks (issue 13's work, issue 16's routes):
 *   GET    /api/v1/vms/{name}/snapshots
 *   POST   /api/v1/vms/{name}/snapshots             {"name", "diskOnly"}
 *   POST   /api/v1/vms/{name}/snapshots/{snapshot}/restore
 *   DELETE /api/v1/vms/{name}/snapshots/{snapshot}
 *   POST   /api/v1/vms/{name}/clone                  {"name", "snapshot", "start"}
 *   POST   /api/v1/vms/{name}/fork                   {"count", "prefix", "wait"}
 *   POST   /api/v1/sandboxes/{name}/checkpoint
 *   POST   /api/v1/sandboxes/{name}/rollback         {"to"}
 *   GET    /api/v1/sandboxes/{name}/snapshots
 * The sandbox routes are an agent's too (its own sandboxes only, 404 for any
 * other name); the vm routes are not. Synchronous, like vms.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qvm/snapshot.h>
#include <qvm/vm.h>

#include "qvmd.h"

/* The VM named by the route: any VM (vm routes), or the caller's sandbox. */
static qvm_vm *open_target(qvmd_reply *out, const qvmd_request *req, bool sandbox) {
  return qvmd_sandbox_open(out, req, sandbox);
}

static bool snapshot_name(qvmd_reply *out, const char *name, const char *field) {
  qvm_error *err = NULL;
  if (qvm_vm_name_check(name, &err) < 0) {
    qvm_error_free(err);
    qvmd_problem_field(out, field,
                       "'%s' must be a snapshot name: 1 to 63 of a-z, 0-9 and '-', starting "
                       "with a letter or digit",
                       field);
    return false;
  }
  return true;
}

/* qvm_vm_snapshot_list as a camelCase array; NULL with the reply set. */
static json_object *snapshot_array(qvmd_reply *out, qvm_vm *vm) {
  qvm_error *err = NULL;
  char *text = NULL;
  if (qvm_vm_snapshot_list(&text, vm, &err) < 0) {
    qvmd_problem_qvm(out, err, NULL);
    return NULL;
  }
  json_object *arr = qvmd_json_from_lib(text);
  free(text);
  if (!arr || !json_object_is_type(arr, json_type_array)) {
    json_object_put(arr);
    qvmd_problem(out, 500, "EPROTO", "libqvm's snapshot list did not parse");
    return NULL;
  }
  return arr;
}

/* Snapshot `name` of vm (a new reference); NULL with a 500 when it is not
 * listed (it was just made). */
static json_object *snapshot_entry(qvmd_reply *out, qvm_vm *vm, const char *name) {
  json_object *arr = snapshot_array(out, vm), *found = NULL;
  for (size_t i = 0; arr && i < json_object_array_length(arr) && !found; i++) {
    json_object *s = json_object_array_get_idx(arr, i), *n = NULL;
    if (json_object_object_get_ex(s, "name", &n) && !strcmp(json_object_get_string(n), name))
      found = json_object_get(s);
  }
  if (arr && !found) qvmd_problem(out, 500, "EPROTO", "snapshot '%s' is not listed", name);
  json_object_put(arr);
  return found;
}

static void list(qvmd_reply *out, const qvmd_request *req, bool sandbox) {
  qvm_vm *vm = open_target(out, req, sandbox);
  if (!vm) return;
  json_object *arr = snapshot_array(out, vm);
  if (arr) qvmd_reply_json(out, 200, arr);
  qvm_vm_free(vm);
}

void qvmd_snapshots_list(qvmd_reply *out, const qvmd_request *req) { list(out, req, false); }
void qvmd_sandbox_snapshots_list(qvmd_reply *out, const qvmd_request *req) { list(out, req, true); }

void qvmd_snapshots_create(qvmd_reply *out, const qvmd_request *req) {
  json_object *body = qvmd_body_object(out, req);
  if (!body) return;
  static const char *const known[] = {"name", "diskOnly", NULL};
  const char *name = NULL;
  bool disk_only = false;
  qvm_vm *vm = NULL;
  if (!qvmd_body_known(out, body, known) || !qvmd_body_string(out, body, "name", 63, &name) ||
      !qvmd_body_bool(out, body, "diskOnly", &disk_only))
    goto done;
  if (!name) {
    qvmd_problem_field(out, "name", "'name' is required");
    goto done;
  }
  if (!snapshot_name(out, name, "name") || !(vm = open_target(out, req, false))) goto done;
  if (!qvmd_work_begin(out, req)) goto done;
  qvm_vm_snapshot_options o = QVM_VM_SNAPSHOT_OPTIONS_INIT;
  o.disk_only = disk_only;
  qvm_error *err = NULL;
  int r = qvm_vm_snapshot_create(vm, name, &o, &err);
  qvmd_work_end(req);
  if (r < 0) {
    qvmd_problem_qvm(out, err, NULL);
    goto done;
  }
  json_object *s = snapshot_entry(out, vm, name);
  if (s) qvmd_reply_json(out, 201, s);
done:
  qvm_vm_free(vm);
  json_object_put(body);
}

typedef enum { RESTORE, REMOVE } snap_op;

static void snapshot_op(qvmd_reply *out, const qvmd_request *req, snap_op op) {
  const char *snap = req->params[1];
  if (!snapshot_name(out, snap, "snapshot")) return;
  qvm_vm *vm = open_target(out, req, false);
  if (!vm) return;
  if (!qvmd_work_begin(out, req)) {
    qvm_vm_free(vm);
    return;
  }
  qvm_error *err = NULL;
  int r = op == RESTORE ? qvm_vm_snapshot_restore(vm, snap, NULL, &err)
                        : qvm_vm_snapshot_remove(vm, snap, NULL, &err);
  qvmd_work_end(req);
  if (r < 0) {
    qvmd_problem_qvm(out, err, NULL);
  } else if (op == REMOVE) {
    qvmd_reply_empty(out, 204);
  } else {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(req->params[0]));
    json_object_object_add(o, "restored", json_object_new_string(snap));
    qvmd_reply_json(out, 200, o);
  }
  qvm_vm_free(vm);
}

void qvmd_snapshots_restore(qvmd_reply *out, const qvmd_request *req) {
  snapshot_op(out, req, RESTORE);
}
void qvmd_snapshots_delete(qvmd_reply *out, const qvmd_request *req) {
  snapshot_op(out, req, REMOVE);
}

/* libqvm's JSON result text → a camelCase reply with status. */
static void reply_lib(qvmd_reply *out, unsigned status, char *text, const char *what) {
  json_object *o = text ? qvmd_json_from_lib(text) : NULL;
  free(text);
  if (!o)
    qvmd_problem(out, 500, "EPROTO", "libqvm's %s result did not parse", what);
  else
    qvmd_reply_json(out, status, o);
}

void qvmd_vms_clone(qvmd_reply *out, const qvmd_request *req) {
  json_object *body = qvmd_body_object(out, req);
  if (!body) return;
  static const char *const known[] = {"name", "snapshot", "start", NULL};
  const char *dst = NULL, *snap = NULL;
  bool start = false;
  qvm_error *err = NULL;
  if (!qvmd_body_known(out, body, known) || !qvmd_body_string(out, body, "name", 63, &dst) ||
      !qvmd_body_string(out, body, "snapshot", 63, &snap) ||
      !qvmd_body_bool(out, body, "start", &start))
    goto done;
  if (!dst) {
    qvmd_problem_field(out, "name", "'name' (the clone's) is required");
    goto done;
  }
  if (qvm_vm_name_check(dst, &err) < 0) {
    qvmd_problem_qvm(out, err, "name");
    goto done;
  }
  if ((snap && !snapshot_name(out, snap, "snapshot")) ||
      qvm_vm_name_check(req->params[0], &err) < 0) {
    if (err) qvmd_problem_qvm(out, err, NULL);
    goto done;
  }
  if (!qvmd_work_begin(out, req)) goto done;
  qvm_vm_clone_options o = QVM_VM_CLONE_OPTIONS_INIT;
  o.snapshot = snap;
  o.then = start ? QVM_VM_CLONE_START : QVM_VM_CLONE_CREATE;
  char *text = NULL;
  int r = qvm_vm_clone(&text, req->params[0], dst, &o, &err);
  qvmd_work_end(req);
  if (r < 0) {
    free(text);
    qvmd_problem_qvm(out, err, NULL);
    goto done;
  }
  snprintf(out->location, sizeof out->location, "/api/v1/vms/%s", dst);
  reply_lib(out, 201, text, "clone");
done:
  json_object_put(body);
}

void qvmd_vms_fork(qvmd_reply *out, const qvmd_request *req) {
  json_object *body = req->body_len ? qvmd_body_object(out, req) : json_object_new_object();
  if (!body) return;
  static const char *const known[] = {"count", "prefix", "wait", NULL};
  const char *prefix = NULL;
  bool count_set = false, wait = true;
  int64_t count = 1;
  qvm_error *err = NULL;
  if (!qvmd_body_known(out, body, known) ||
      !qvmd_body_int(out, body, "count", 1, QVM_VM_FORK_MAX, &count_set, &count) ||
      !qvmd_body_string(out, body, "prefix", 40, &prefix))
    goto done;
  if (!qvmd_body_bool(out, body, "wait", &wait)) goto done;
  if (prefix && qvm_vm_name_check(prefix, &err) < 0) {
    qvmd_problem_qvm(out, err, "prefix");
    goto done;
  }
  if (qvm_vm_name_check(req->params[0], &err) < 0) {
    qvmd_problem_qvm(out, err, "name");
    goto done;
  }
  if (!qvmd_work_begin(out, req)) goto done;
  qvm_vm_fork_options o = QVM_VM_FORK_OPTIONS_INIT;
  o.count = (unsigned)count;
  o.prefix = prefix;
  o.no_wait = !wait;
  char *text = NULL;
  int r = qvm_vm_fork(&text, req->params[0], &o, &err);
  qvmd_work_end(req);
  if (r < 0) {
    free(text);
    qvmd_problem_qvm(out, err, NULL);
  } else {
    reply_lib(out, 201, text, "fork");
  }
done:
  json_object_put(body);
}

void qvmd_sandboxes_checkpoint(qvmd_reply *out, const qvmd_request *req) {
  if (req->body_len) { /* none, or {} */
    json_object *body = qvmd_body_object(out, req);
    static const char *const known[] = {NULL};
    bool ok = body && qvmd_body_known(out, body, known);
    json_object_put(body);
    if (!ok) return;
  }
  qvm_vm *vm = open_target(out, req, true);
  if (!vm) return;
  if (!qvmd_work_begin(out, req)) {
    qvm_vm_free(vm);
    return;
  }
  char name[QVM_VM_CHECKPOINT_NAME_MAX] = "";
  qvm_error *err = NULL;
  int r = qvm_vm_checkpoint(name, vm, 0, &err);
  qvmd_work_end(req);
  if (r < 0) {
    qvmd_problem_qvm(out, err, NULL);
  } else {
    json_object *s = snapshot_entry(out, vm, name);
    if (s) qvmd_reply_json(out, 201, s);
  }
  qvm_vm_free(vm);
}

void qvmd_sandboxes_rollback(qvmd_reply *out, const qvmd_request *req) {
  json_object *body = req->body_len ? qvmd_body_object(out, req) : json_object_new_object();
  if (!body) return;
  static const char *const known[] = {"to", NULL};
  const char *to = NULL;
  qvm_vm *vm = NULL;
  if (!qvmd_body_known(out, body, known) || !qvmd_body_string(out, body, "to", 63, &to)) goto done;
  /* "N" (checkpoint ckpt-N) or a snapshot name: both are names' bytes */
  if (to && !snapshot_name(out, to, "to")) goto done;
  if (!(vm = open_target(out, req, true)) || !qvmd_work_begin(out, req)) goto done;
  char name[QVM_VM_CHECKPOINT_NAME_MAX] = "";
  qvm_error *err = NULL;
  int r = qvm_vm_rollback(name, vm, to, &err);
  qvmd_work_end(req);
  if (r < 0) {
    qvmd_problem_qvm(out, err, to ? "to" : NULL);
  } else {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(req->params[0]));
    json_object_object_add(o, "restored", json_object_new_string(name));
    qvmd_reply_json(out, 200, o);
  }
done:
  qvm_vm_free(vm);
  json_object_put(body);
}
