/* SPDX-License-Identifier: MIT */
/* /api/v1/sandboxes: list, create, get, delete (and exec, in exec.c). An
 * agent token sees only its own agent's sandboxes: another agent's, or a
 * VM that is no sandbox, is 404 exactly as a name that does not exist, so
 * that names cannot be probed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <qvm/image.h>
#include <qvm/sandbox.h>
#include <qvm/vm.h>

#include "qvmd.h"

/* The agent whose sandboxes the caller sees; NULL: all. */
static const char *visible_agent(const qvmd_request *req) {
  return req->caller->scope == QVMD_SCOPE_AGENT ? req->caller->agent : NULL;
}

/* The caller's sandboxes (camelCase array); NULL with the reply set. */
static json_object *sandbox_array(qvmd_reply *out, const qvmd_request *req) {
  qvm_error *err = NULL;
  char *text = NULL;
  if (qvm_sandbox_list(&text, visible_agent(req), &err) < 0) {
    qvmd_problem_qvm(out, err, NULL);
    return NULL;
  }
  json_object *arr = qvmd_json_from_lib(text);
  free(text);
  if (!arr || !json_object_is_type(arr, json_type_array)) {
    json_object_put(arr);
    qvmd_problem(out, 500, "EPROTO", "libqvm's sandbox list did not parse");
    return NULL;
  }
  return arr;
}

/* The caller's sandbox `name` (a new reference); NULL with a 404 or 422. */
static json_object *find_sandbox(qvmd_reply *out, const qvmd_request *req, const char *name) {
  qvm_error *err = NULL;
  if (qvm_vm_name_check(name, &err) < 0) {
    qvmd_problem_qvm(out, err, "name");
    return NULL;
  }
  json_object *arr = sandbox_array(out, req);
  if (!arr) return NULL;
  json_object *found = NULL;
  for (size_t i = 0; i < json_object_array_length(arr) && !found; i++) {
    json_object *s = json_object_array_get_idx(arr, i), *n = NULL;
    if (json_object_object_get_ex(s, "name", &n) && !strcmp(json_object_get_string(n), name))
      found = json_object_get(s);
  }
  json_object_put(arr);
  if (!found) qvmd_problem_not_found(out, "sandbox", name);
  return found;
}

qvm_vm *qvmd_sandbox_open(qvmd_reply *out, const qvmd_request *req, bool sandbox_only) {
  const char *name = req->params[0];
  qvm_error *err = NULL;
  if (sandbox_only || req->caller->scope == QVMD_SCOPE_AGENT) {
    json_object *s = find_sandbox(out, req, name);
    if (!s) return NULL;
    json_object_put(s);
  } else if (qvm_vm_name_check(name, &err) < 0) {
    qvmd_problem_qvm(out, err, "name");
    return NULL;
  }
  qvm_vm *vm = NULL;
  if (qvm_vm_open(&vm, name, &err) < 0) {
    qvmd_problem_qvm(out, err, NULL);
    return NULL;
  }
  /* The name was checked above; the VM opened now must still be the
   * caller's (it may have been destroyed and made again by another agent
   * in between). */
  const char *agent = visible_agent(req), *owner = qvm_vm_agent(vm);
  if (agent && (!owner || strcmp(owner, agent))) {
    qvm_vm_free(vm);
    qvmd_problem_not_found(out, "sandbox", name);
    return NULL;
  }
  return vm;
}

void qvmd_sandboxes_list(qvmd_reply *out, const qvmd_request *req) {
  json_object *arr = sandbox_array(out, req);
  if (arr) qvmd_reply_json(out, 200, arr);
}

void qvmd_sandboxes_get(qvmd_reply *out, const qvmd_request *req) {
  json_object *s = find_sandbox(out, req, req->params[0]);
  if (s) qvmd_reply_json(out, 200, s);
}

void qvmd_sandboxes_delete(qvmd_reply *out, const qvmd_request *req) {
  json_object *s = find_sandbox(out, req, req->params[0]);
  if (!s) return;
  json_object_put(s);
  if (!qvmd_work_begin(out, req)) return;
  qvm_error *err = NULL;
  int r = qvm_sandbox_destroy(req->params[0], &err);
  qvmd_work_end(req);
  if (r < 0)
    qvmd_problem_qvm(out, err, NULL);
  else
    qvmd_reply_empty(out, 204);
}

#define LABELS_MAX QVM_VM_LABELS_MAX

typedef struct sandbox_body {
  const char *name, *from, *ttl, *agent, *network;
  bool wait_cloud_init;
  bool checkpoint_each;
  int64_t timeout_ms;
  bool timeout_set;
  qvm_vm_label labels[LABELS_MAX];
  size_t n_labels;
} sandbox_body;

static bool read_labels(qvmd_reply *out, json_object *body, sandbox_body *b) {
  return qvmd_body_labels(out, body, b->labels, &b->n_labels);
}

static bool read_sandbox_body(qvmd_reply *out, const qvmd_request *req, json_object *body,
                              sandbox_body *b) {
  static const char *const known[] = {"name",           "from",    "ttl",           "agent",
                                      "labels",         "network", "waitCloudInit", "timeoutMs",
                                      "checkpointEach", NULL};
  b->wait_cloud_init = true;
  if (!qvmd_body_known(out, body, known) ||
      !qvmd_body_string(out, body, "name", QVM_VM_NAME_MAX, &b->name) ||
      !qvmd_body_string(out, body, "from", 4096, &b->from) ||
      !qvmd_body_string(out, body, "ttl", 32, &b->ttl) ||
      !qvmd_body_string(out, body, "agent", QVM_VM_AGENT_MAX, &b->agent) ||
      !qvmd_body_string(out, body, "network", 16, &b->network) ||
      !qvmd_body_bool(out, body, "waitCloudInit", &b->wait_cloud_init) ||
      !qvmd_body_bool(out, body, "checkpointEach", &b->checkpoint_each) ||
      !qvmd_body_int(out, body, "timeoutMs", 1000, 3600 * 1000, &b->timeout_set, &b->timeout_ms) ||
      !read_labels(out, body, b))
    return false;
  qvm_error *err = NULL;
  if (!b->from) {
    qvmd_problem_field(out, "from", "'from' is required");
    return false;
  }
  if (b->name && qvm_vm_name_check(b->name, &err) < 0) {
    qvmd_problem_qvm(out, err, "name");
    return false;
  }
  if (b->network && strcmp(b->network, "isolated") && strcmp(b->network, "user")) {
    qvmd_problem_field(out, "network", "'network' must be \"isolated\" or \"user\"");
    return false;
  }
  const char *own = visible_agent(req);
  if (own && b->agent && strcmp(b->agent, own)) {
    qvmd_problem_field(out, "agent", "an agent token makes sandboxes of its own agent only");
    return false;
  }
  if (own) b->agent = own;
  if (own && !qvm_sandbox_agent_may_start_from(b->from, own)) {
    /* one answer for every refusal: it must not tell which names exist */
    qvmd_problem_field(out, "from",
                       "an agent token starts sandboxes from an image in the store, a catalog "
                       "alias, one of its own sandboxes or a vm labelled golden=true");
    return false;
  }
  if (b->agent && qvm_vm_agent_check(b->agent, &err) < 0) {
    qvmd_problem_qvm(out, err, "agent");
    return false;
  }
  return true;
}

/* A sandbox create's body and options; the strings point into body. */
typedef struct sandbox_job {
  json_object *body;
  sandbox_body b;
  qvm_sandbox_create_options o;
  qvm_up_options up;
  bool agent_caller; /* an agent token: a taken name says nothing more */
  char name[QVM_VM_NAME_MAX + 1];
} sandbox_job;

static void sandbox_job_free(void *arg) {
  sandbox_job *j = arg;
  json_object_put(j->body);
  free(j);
}

/* The create itself; op: as an operation (a cancel takes effect before it
 * starts, or after it made the sandbox: then the sandbox is destroyed). */
static void sandbox_run(qvmd_op *op, qvmd_reply *out, void *arg) {
  sandbox_job *j = arg;
  qvm_error *err = NULL;
  const char *name = j->name[0] ? j->name : j->b.name;
  if (op && qvmd_op_cancelled(op)) {
    qvmd_op_cancelled_reply(out, "the sandbox create");
    return;
  }
  if (op) qvmd_op_progress(op, "create", 0, 0);
  char *text = NULL;
  int r = qvm_sandbox_create(&text, name, &j->o, &err);
  if (r < 0 && j->agent_caller && qvm_error_code(err) == QVM_EEXISTS) {
    /* not whose vm has the name, nor what it is */
    qvm_error_free(err);
    qvmd_problem(out, 409, qvm_error_code_name(QVM_EEXISTS),
                 "the name '%s' is not available: choose another", name ? name : "");
    return;
  }
  if (r < 0) {
    if (op && name && qvm_error_code(err) != QVM_EEXISTS) {
      /* an operation leaves nothing half-made behind */
      qvm_error *e2 = NULL;
      if (qvm_sandbox_destroy(name, &e2) < 0) qvm_error_free(e2);
    }
    qvmd_problem_qvm(out, err, NULL);
    return;
  }
  json_object *s = qvmd_json_from_lib(text);
  free(text);
  if (!s) {
    qvmd_problem(out, 500, "EPROTO", "libqvm's sandbox did not parse");
    return;
  }
  json_object *n = NULL;
  if (op && qvmd_op_cancelled(op) && json_object_object_get_ex(s, "name", &n)) {
    qvm_error *e2 = NULL;
    if (qvm_sandbox_destroy(json_object_get_string(n), &e2) < 0) qvm_error_free(e2);
    json_object_put(s);
    qvmd_op_cancelled_reply(out, "the sandbox create");
    return;
  }
  if (json_object_object_get_ex(s, "name", &n))
    snprintf(out->location, sizeof out->location, "/api/v1/sandboxes/%s",
             json_object_get_string(n));
  qvmd_reply_json(out, 201, s);
}

void qvmd_sandboxes_create(qvmd_reply *out, const qvmd_request *req) {
  json_object *body = qvmd_body_object(out, req);
  if (!body) return;
  sandbox_job *j = calloc(1, sizeof *j);
  if (!j) {
    json_object_put(body);
    qvmd_problem(out, 500, "ESYS", "out of memory");
    return;
  }
  j->body = body;
  sandbox_body *b = &j->b;
  if (!read_sandbox_body(out, req, body, b)) goto done;
  qvm_sandbox_create_options init = QVM_SANDBOX_CREATE_OPTIONS_INIT;
  qvm_up_options up_init = QVM_UP_OPTIONS_INIT;
  j->o = init;
  j->up = up_init;
  qvm_sandbox_create_options *o = &j->o;
  qvm_error *err = NULL;
  o->from = b->from;
  o->agent = b->agent;
  o->labels = b->labels;
  o->n_labels = b->n_labels;
  o->checkpoint_each = b->checkpoint_each;
  o->net =
      b->network && !strcmp(b->network, "user") ? QVM_SANDBOX_NET_USER : QVM_SANDBOX_NET_ISOLATED;
  if (b->ttl && qvm_sandbox_duration_parse(&o->ttl_s, b->ttl, &err) < 0) {
    qvmd_problem_qvm(out, err, "ttl");
    goto done;
  }
  j->up.wait_cloud_init = b->wait_cloud_init;
  if (b->timeout_set) j->up.timeout_ms = (int)b->timeout_ms;
  o->up = &j->up;
  j->agent_caller = visible_agent(req) != NULL;
  if (qvmd_prefer_async(req)) {
    /* the name is known before the work starts, so that a qvmd stopped
     * midway knows which vm to look at when it comes back */
    if (b->name) {
      snprintf(j->name, sizeof j->name, "%s", b->name);
    } else {
      unsigned char rnd[4];
      randombytes_buf(rnd, sizeof rnd);
      snprintf(j->name, sizeof j->name, "sb-%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
    }
    char source[4096] = "";
    if (!strncmp(b->from, "http://", 7) || !strncmp(b->from, "https://", 8))
      qvmd_url_without_userinfo(source, sizeof source, b->from);
    qvmd_op_start(out, req, "sandbox.create", j->name, source[0] ? source : NULL, sandbox_run, j,
                  sandbox_job_free);
    return;
  }
  if (!qvmd_work_begin(out, req)) goto done;
  sandbox_run(NULL, out, j);
  qvmd_work_end(req);
done:
  sandbox_job_free(j);
}
