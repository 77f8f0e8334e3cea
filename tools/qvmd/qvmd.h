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
#include <sys/types.h>

#include <json-c/json.h>

#include <qvm/error.h>
#include <qvm/vm.h>

#define QVMD_BODY_MAX (1u << 20)   /* request bodies: 413 above */
#define QVMD_OUTPUT_MAX (1u << 20) /* exec: stdout and stderr each */
#define QVMD_PARAMS_MAX 4
#define QVMD_UPLOAD_MAX (64u << 20) /* QVMD_ROUTE_UPLOAD bodies (files): 413 above */

typedef enum qvmd_scope {
  QVMD_SCOPE_READ,  /* GET only */
  QVMD_SCOPE_FULL,  /* everything */
  QVMD_SCOPE_AGENT, /* only its own agent's sandboxes; all else is 404 */
} qvmd_scope;

typedef struct qvmd_caller {
  qvmd_scope scope;
  const char *agent; /* QVMD_SCOPE_AGENT: the agent id */
  /* Who exactly: the token (TCP), or the peer's uid (the UNIX socket;
   * token NULL). Two callers of one scope are still told apart by it. */
  const void *token;
  int64_t uid;
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
  /* A QVMD_ROUTE_UPLOAD route: the body (application/octet-stream, at most
   * QVMD_UPLOAD_MAX bytes, body_len of them) is in the 0600 file
   * upload_path, in a 0700 directory of its own, both removed when the
   * request ends; body is "". NULL for other routes. */
  const char *upload_path;
} qvmd_request;

/* A streaming reply's source, called from the connection's thread as
 * libmicrohttpd's content reader: fills buf (at most max bytes) and returns
 * how many, or QVMD_STREAM_END / QVMD_STREAM_ERROR. It may block (each
 * connection has its own thread); it should watch the client's socket
 * (qvmd_stream_wait) so that a client that went away ends it. free is
 * called once, when the response is done with (the client gone or not). */
#define QVMD_STREAM_END (-1)
#define QVMD_STREAM_ERROR (-2)
typedef long (*qvmd_stream_read_fn)(void *cls, char *buf, size_t max);
typedef void (*qvmd_stream_free_fn)(void *cls);

typedef struct qvmd_reply {
  unsigned status;
  char *body;      /* malloc'd */
  size_t body_len; /* 0: strlen(body) */
  const char *content_type;
  char location[160];      /* "" or a Location header */
  char allow[64];          /* 405: the Allow header */
  int retry_after_s;       /* 429, 503: > 0 sets Retry-After */
  bool preference_applied; /* "Preference-Applied: respond-async" (RFC 7240) */
  /* A streaming reply instead of body (status and content_type still
   * apply): stream_size bytes, or chunked when it is 0. stream_timeout_s >
   * 0 replaces the connection's idle timeout (a stream that is quiet for a
   * while, but alive). */
  qvmd_stream_read_fn stream_read;
  qvmd_stream_free_fn stream_free;
  void *stream_cls;
  uint64_t stream_size;
  unsigned stream_timeout_s;
  bool web; /* the page's files (web.c): strict headers */
} qvmd_reply;

typedef void (*qvmd_handler)(qvmd_reply *out, const qvmd_request *req);

enum {
  QVMD_ROUTE_WRITE = 1 << 0,    /* changes something: read tokens get 403 */
  QVMD_ROUTE_AGENT = 1 << 1,    /* agent tokens may call it (the handler scopes) */
  QVMD_ROUTE_ANYONE = 1 << 2,   /* any authenticated caller (the OpenAPI document) */
  QVMD_ROUTE_UNLISTED = 1 << 3, /* not in the OpenAPI document (vm-provisioner aliases) */
  QVMD_ROUTE_UPLOAD = 1 << 4,   /* a raw body into a temp file (qvmd_request.upload_path) */
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

/* operations.c: long work as operations (docs/qvmd.md, "Operations"). */
typedef struct qvmd_op qvmd_op;
/* An operation's work, on its own thread: it sets out as the synchronous
 * route would (2xx with a body: succeeded, the body its result; an error:
 * failed, or cancelled when a cancel was asked, the problem its error). */
typedef void qvmd_op_fn(qvmd_op *op, qvmd_reply *out, void *arg);
typedef void qvmd_op_free_fn(void *arg);
/* The request asked for "Prefer: respond-async" (never on the
 * vm-provisioner routes: they stay synchronous). */
bool qvmd_prefer_async(const qvmd_request *req);
/* Takes a --max-work slot (a 503 otherwise), records operation `kind` on
 * `target` (source: an image pull's source without credentials, or NULL)
 * and runs fn(op, reply, arg) on a thread; replies 202 with the operation
 * and its Location. arg is freed with free_arg in every case. */
void qvmd_op_start(qvmd_reply *out, const qvmd_request *req, const char *kind, const char *target,
                   const char *source, qvmd_op_fn *fn, void *arg, qvmd_op_free_fn *free_arg);
void qvmd_op_progress(qvmd_op *op, const char *phase, uint64_t done, uint64_t total);
/* A cancel was asked (DELETE): the work stops at its next step. */
bool qvmd_op_cancelled(qvmd_op *op);
/* The reply of work that stopped for a cancel. */
void qvmd_op_cancelled_reply(qvmd_reply *out, const char *what);
/* Startup: the operations directory, the records, and the reconciling of
 * what a qvmd that is gone left running. -1 with msg. */
int qvmd_ops_init(char *msg, size_t size);
/* Stopping: long-polls answer and event streams end now. Operations still
 * running are left to the next qvmd's reconcile. */
void qvmd_ops_stop(void);
/* http.c: for a stream's reader. Waits until fd is readable, the client
 * has gone away (its socket hung up) or timeout_ms passed (-1: no limit):
 * 1, -1 (gone) or 0. */
int qvmd_stream_wait(struct MHD_Connection *conn, int fd, int timeout_ms);
/* Whether the request asks for NDJSON (Accept: application/x-ndjson). */
bool qvmd_accepts(const qvmd_request *req, const char *media_type);

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
void qvmd_operations_list(qvmd_reply *out, const qvmd_request *req);
void qvmd_operations_get(qvmd_reply *out, const qvmd_request *req);
void qvmd_operations_cancel(qvmd_reply *out, const qvmd_request *req);
void qvmd_operations_events(qvmd_reply *out, const qvmd_request *req);
/* images.c */
/* src without a URL's "user:password@" (what an operation shows and
 * records of an image source). */
void qvmd_url_without_userinfo(char *dst, size_t size, const char *src);
void qvmd_images_list(qvmd_reply *out, const qvmd_request *req);
void qvmd_images_catalog(qvmd_reply *out, const qvmd_request *req);
void qvmd_images_get(qvmd_reply *out, const qvmd_request *req);
void qvmd_images_delete(qvmd_reply *out, const qvmd_request *req);
void qvmd_images_pull(qvmd_reply *out, const qvmd_request *req);
/* files.c, console.c, events.c */
void qvmd_files_put(qvmd_reply *out, const qvmd_request *req);
void qvmd_files_get(qvmd_reply *out, const qvmd_request *req);
void qvmd_vms_ip(qvmd_reply *out, const qvmd_request *req);
void qvmd_vms_console(qvmd_reply *out, const qvmd_request *req);
void qvmd_events_get(qvmd_reply *out, const qvmd_request *req);

#endif
