/* SPDX-License-Identifier: MIT */
#ifndef QVM_TOOLS_QVMD_H
#define QVM_TOOLS_QVMD_H

/*
 * qvmd, the REST daemon: a thin HTTP front (libmicrohttpd) on libqvm. It
 * holds no VM state: every request opens what it needs through the public
 * API (include/qvm/) and lets it go. docs/qvmd.md has the routes, the
 * authentication and the error format.
 *
 * Shape: http.c takes a request from libmicrohttpd (caller, body, limits),
 * router.c finds its route, one file per resource (vms.c, exec.c,
 * sandboxes.c, audit.c, openapi.c) answers it, problem.c writes errors as
 * application/problem+json.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include <qvm/error.h>
#include <qvm/vm.h>

#define QVMD_BODY_MAX (1u << 20)   /* request bodies: 413 above */
#define QVMD_OUTPUT_MAX (1u << 20) /* exec: stdout and stderr each */
#define QVMD_PARAMS_MAX 4

typedef enum qvmd_scope {
  QVMD_SCOPE_READ,  /* GET only */
  QVMD_SCOPE_FULL,  /* everything */
  QVMD_SCOPE_AGENT, /* only its own agent's sandboxes; all else is 404 */
} qvmd_scope;

typedef struct qvmd_caller {
  qvmd_scope scope;
  const char *agent; /* QVMD_SCOPE_AGENT: the agent id */
} qvmd_caller;

struct MHD_Connection;

typedef struct qvmd_request {
  struct MHD_Connection *conn;
  const char *method;
  const char *path;
  const char *params[QVMD_PARAMS_MAX]; /* the route's {name} segments, in order */
  const char *body;                    /* NUL-terminated; "" without a body */
  size_t body_len;
  const qvmd_caller *caller;
  bool alias; /* a Datamancy vm-provisioner route (/api/vms) */
} qvmd_request;

typedef struct qvmd_reply {
  unsigned status;
  char *body;      /* malloc'd */
  size_t body_len; /* 0: strlen(body) */
  const char *content_type;
  char location[160]; /* "" or a Location header */
  char allow[64];     /* 405: the Allow header */
  int retry_after_s;  /* 429, 503: > 0 sets Retry-After */
  bool web;           /* the page's files (web.c): strict headers */
} qvmd_reply;

typedef void (*qvmd_handler)(qvmd_reply *out, const qvmd_request *req);

enum {
  QVMD_ROUTE_WRITE = 1 << 0,    /* changes something: read tokens get 403 */
  QVMD_ROUTE_AGENT = 1 << 1,    /* agent tokens may call it (the handler scopes) */
  QVMD_ROUTE_ANYONE = 1 << 2,   /* any authenticated caller (the OpenAPI document) */
  QVMD_ROUTE_UNLISTED = 1 << 3, /* not in the OpenAPI document (vm-provisioner aliases) */
};

typedef struct qvmd_route {
  const char *method;
  const char *pattern; /* "/api/v1/vms/{name}/start" */
  qvmd_handler handler;
  unsigned flags;
} qvmd_route;

extern const qvmd_route qvmd_routes[];
extern const size_t qvmd_n_routes;

/* router.c: the route for (method, path); NULL and *out_status 404 (no
 * path) or 405 (the path, another method: *allow lists them). */
const qvmd_route *qvmd_route_find(const char *method, const char *path, qvmd_request *req,
                                  char *param_buf, size_t param_buf_size, unsigned *out_status,
                                  char *allow, size_t allow_size);

/* problem.c: replies. Each sets out->status, body and content type. */
void qvmd_reply_json(qvmd_reply *out, unsigned status, json_object *body); /* takes body */
void qvmd_reply_empty(qvmd_reply *out, unsigned status);
void qvmd_problem(qvmd_reply *out, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* 422 naming the field. */
void qvmd_problem_field(qvmd_reply *out, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A libqvm error, mapped to its status (and frees it). field may be NULL;
 * with one, a QVM_EINVAL names it (422). */
void qvmd_problem_qvm(qvmd_reply *out, qvm_error *err, const char *field);
unsigned qvmd_status_for_code(int qvm_code);
/* 404 for a thing an agent token may not see, worded as for one that does
 * not exist. */
void qvmd_problem_not_found(qvmd_reply *out, const char *what, const char *name);

/* json.c: request bodies and JSON helpers. */
/* Parses the body as one JSON object; otherwise a 400 into out and NULL. */
json_object *qvmd_body_object(qvmd_reply *out, const qvmd_request *req);
/* Fails (422 naming the member) on a member not in `known` (NULL-ended). */
bool qvmd_body_known(qvmd_reply *out, json_object *body, const char *const *known);
/* Member `key` as a string: absent → *value NULL, true; not a string, empty,
 * with a NUL or over max bytes → 422 naming it, false. */
bool qvmd_body_string(qvmd_reply *out, json_object *body, const char *key, size_t max,
                      const char **value);
bool qvmd_body_int(qvmd_reply *out, json_object *body, const char *key, int64_t min, int64_t max,
                   bool *present, int64_t *value);
bool qvmd_body_bool(qvmd_reply *out, json_object *body, const char *key, bool *value);
/* "labels": an object of at most QVM_VM_LABELS_MAX string values, each
 * checked by qvm_vm_label_check; into labels (borrowing body's strings). */
bool qvmd_body_labels(qvmd_reply *out, json_object *body, qvm_vm_label *labels, size_t *n);
/* libqvm's snake_case JSON text → a new object with camelCase keys; NULL if
 * the text does not parse. */
json_object *qvmd_json_from_lib(const char *text);
/* Bytes from a guest as a JSON string member pair: key = the bytes when
 * they are valid UTF-8, else the neutralized text, plus key+"Base64" with
 * the exact bytes. */
void qvmd_json_add_guest_bytes(json_object *obj, const char *key, const void *bytes, size_t len);

/* A query parameter (NULL: none). */
const char *qvmd_query(const qvmd_request *req, const char *key);

/* Blocking libqvm work (create, start, stop, exec, remove): at most
 * --max-work at once; false with a 503 into out when that many are under
 * way. */
bool qvmd_work_begin(qvmd_reply *out, const qvmd_request *req);
void qvmd_work_end(const qvmd_request *req);

/* The embedded OpenAPI document (openapi_doc.c, generated). */
extern const unsigned char qvmd_openapi_json[];
extern const size_t qvmd_openapi_json_len;

/* sandboxes.c: the VM of the route's {name}, opened, when the caller may
 * see it: an agent token (or sandbox_only) only its own sandboxes, 404
 * otherwise. NULL with the reply set. */
struct qvm_vm;
struct qvm_vm *qvmd_sandbox_open(qvmd_reply *out, const qvmd_request *req, bool sandbox_only);

/* web.c: the review page's static files, served without a token at "/"
 * and "/ui/..." (GET, HEAD) from the --web-dir dir. */
void qvmd_web_set_dir(const char *dir);
const char *qvmd_web_get_dir(void);
bool qvmd_web_path(const char *url);
void qvmd_web_serve(qvmd_reply *out, const char *method, const char *url);

/* Handlers. */
void qvmd_vms_list(qvmd_reply *out, const qvmd_request *req);
void qvmd_vms_create(qvmd_reply *out, const qvmd_request *req);
void qvmd_vms_get(qvmd_reply *out, const qvmd_request *req);
void qvmd_vms_delete(qvmd_reply *out, const qvmd_request *req);
void qvmd_vms_start(qvmd_reply *out, const qvmd_request *req);
void qvmd_vms_stop(qvmd_reply *out, const qvmd_request *req);
void qvmd_vms_restart(qvmd_reply *out, const qvmd_request *req);
void qvmd_vms_exec(qvmd_reply *out, const qvmd_request *req);
/* keys.c */
void qvmd_keys_list(qvmd_reply *out, const qvmd_request *req);
void qvmd_keys_create(qvmd_reply *out, const qvmd_request *req);
void qvmd_keys_get(qvmd_reply *out, const qvmd_request *req);
void qvmd_keys_inject(qvmd_reply *out, const qvmd_request *req);
/* snapshots.c */
void qvmd_snapshots_list(qvmd_reply *out, const qvmd_request *req);
void qvmd_snapshots_create(qvmd_reply *out, const qvmd_request *req);
void qvmd_snapshots_restore(qvmd_reply *out, const qvmd_request *req);
void qvmd_snapshots_delete(qvmd_reply *out, const qvmd_request *req);
void qvmd_vms_clone(qvmd_reply *out, const qvmd_request *req);
void qvmd_vms_fork(qvmd_reply *out, const qvmd_request *req);
void qvmd_sandbox_snapshots_list(qvmd_reply *out, const qvmd_request *req);
void qvmd_sandboxes_checkpoint(qvmd_reply *out, const qvmd_request *req);
void qvmd_sandboxes_rollback(qvmd_reply *out, const qvmd_request *req);
void qvmd_sandboxes_list(qvmd_reply *out, const qvmd_request *req);
void qvmd_sandboxes_create(qvmd_reply *out, const qvmd_request *req);
void qvmd_sandboxes_get(qvmd_reply *out, const qvmd_request *req);
void qvmd_sandboxes_delete(qvmd_reply *out, const qvmd_request *req);
void qvmd_audit_list(qvmd_reply *out, const qvmd_request *req);
/* reviews.c */
void qvmd_reviews_list(qvmd_reply *out, const qvmd_request *req);
void qvmd_reviews_create(qvmd_reply *out, const qvmd_request *req);
void qvmd_reviews_get(qvmd_reply *out, const qvmd_request *req);
void qvmd_reviews_diff(qvmd_reply *out, const qvmd_request *req);
void qvmd_reviews_playbook_get(qvmd_reply *out, const qvmd_request *req);
void qvmd_reviews_playbook_put(qvmd_reply *out, const qvmd_request *req);
void qvmd_reviews_approve(qvmd_reply *out, const qvmd_request *req);
void qvmd_reviews_reject(qvmd_reply *out, const qvmd_request *req);
void qvmd_reviews_apply(qvmd_reply *out, const qvmd_request *req);
void qvmd_openapi_get(qvmd_reply *out, const qvmd_request *req);

#endif
