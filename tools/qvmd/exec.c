/* SPDX-License-Identifier: MIT */
/* POST /api/v1/vms/{name}/exec and /api/v1/sandboxes/{name}/exec: one
 * command over the VM's SSH, its result as JSON. The guest's output is
 * hostile and unbounded: each stream keeps at most QVMD_OUTPUT_MAX bytes
 * (then "stdoutTruncated"), and bytes that are not UTF-8 come as
 * neutralized text plus the exact bytes in base64 ("stdoutBase64").
 *
 * With "Accept: application/x-ndjson" (or "stream": true) the answer is a
 * stream of JSON lines as the command runs (docs/qvmd.md, "Exec as a
 * stream"): a worker thread runs the exec and queues frames, bounded; the
 * connection's thread hands them to libmicrohttpd. A client that goes away
 * ends the response at once; the worker then stops at the command's next
 * output (the channel is closed; the command is not killed, it gets EOF or
 * SIGPIPE), or at its end or timeout, whichever comes first, and frees the
 * SSH session, the VM handle and its work slot. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <qvm/audit.h>

#include <qvm/sandbox.h>
#include <qvm/ssh.h>
#include <qvm/text.h>
#include <qvm/vm.h>

#include "mcp.h"
#include "qvmd.h"

_Static_assert(QVMD_OUTPUT_MAX == MCP_OUTPUT_MAX, "exec keeps what the JSON answer says it keeps");

#define ARGV_MAX 256
#define ARG_MAX_BYTES (64u << 10)
#define CONNECT_TIMEOUT_MS 30000
#define EXEC_TIMEOUT_MS_DEFAULT 60000
#define EXEC_TIMEOUT_MS_MAX (3600 * 1000)

typedef struct exec_output {
  mcp_capture out, err;
} exec_output;

static int on_output(void *ctx, int stream, const void *data, size_t len) {
  exec_output *o = ctx;
  return mcp_capture_add(stream == QVM_SSH_STDERR ? &o->err : &o->out, data, len);
}

/* argv from the body: 1..ARGV_MAX strings; NULL-terminated, borrowed. */
static const char **read_argv(qvmd_reply *out, json_object *body) {
  json_object *v = NULL;
  size_t n;
  if (!json_object_object_get_ex(body, "argv", &v) || !json_object_is_type(v, json_type_array) ||
      (n = json_object_array_length(v)) == 0 || n > ARGV_MAX) {
    qvmd_problem_field(out, "argv", "'argv' must be an array of 1 to %d strings", ARGV_MAX);
    return NULL;
  }
  const char **argv = calloc(n + 1, sizeof *argv);
  if (!argv) {
    qvmd_problem(out, 500, "ESYS", "out of memory");
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    json_object *a = json_object_array_get_idx(v, i);
    if (!json_object_is_type(a, json_type_string) ||
        strlen(json_object_get_string(a)) != (size_t)json_object_get_string_len(a) ||
        (size_t)json_object_get_string_len(a) > ARG_MAX_BYTES) {
      qvmd_problem_field(out, "argv", "argv[%zu] must be a string without NUL, at most %u bytes", i,
                         ARG_MAX_BYTES);
      free(argv);
      return NULL;
    }
    argv[i] = json_object_get_string(a);
  }
  return argv;
}

static void reply_result(qvmd_reply *out, const qvm_ssh_exec_result *res, const exec_output *o,
                         const char *checkpoint) {
  json_object *r = json_object_new_object();
  mcp_json_exec_result(r, res, &o->out, &o->err, checkpoint);
  qvmd_reply_json(out, 200, r);
}

static void run(qvmd_reply *out, qvm_vm *vm, const char *const *argv, int timeout_ms) {
  qvm_error *err = NULL;
  qvm_ssh *ssh = NULL;
  qvm_vm_ssh_options so = QVM_VM_SSH_OPTIONS_INIT;
  so.timeout_ms = timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms : CONNECT_TIMEOUT_MS;
  if (qvm_vm_ssh_connect(&ssh, vm, &so, &err) < 0) {
    qvmd_problem_qvm(out, err, NULL);
    return;
  }
  exec_output o = {0};
  qvm_ssh_exec_options eo = QVM_SSH_EXEC_OPTIONS_INIT;
  eo.argv = argv;
  eo.on_output = on_output;
  eo.ctx = &o;
  eo.timeout_ms = timeout_ms;
  qvm_ssh_exec_result res = {0};
  /* a sandbox created with checkpointEach takes a checkpoint first; one
   * that fails fails the exec before the command runs */
  char ckpt[QVM_VM_CHECKPOINT_NAME_MAX] = "";
  if (qvm_vm_exec_command(&res, ckpt, vm, ssh, &eo, 0, &err) < 0)
    qvmd_problem_qvm(out, err, NULL);
  else
    reply_result(out, &res, &o, ckpt);
  qvm_ssh_free(ssh);
  free(o.out.data);
  free(o.err.data);
}

/* --- the stream ------------------------------------------------------------ */

#define FRAME_MAX (64u << 10)  /* guest bytes in one frame */
#define QUEUE_MAX (256u << 10) /* frames queued for a slow client */

typedef struct xstream {
  pthread_mutex_t mu;
  pthread_cond_t room;
  int efd; /* eventfd: a frame was queued, or the worker is done */
  char *q;
  size_t q_len, q_off, q_cap;
  bool done, gone;
  int refs;
  struct MHD_Connection *conn;
  /* the worker's */
  qvm_vm *vm;
  qvm_ssh *ssh;
  const char **argv;
  json_object *body; /* owns argv's strings */
  int timeout_ms;
  struct timespec deadline; /* CLOCK_REALTIME: a slow client holds the worker until then */
  qvmd_caller caller;
  char agent[QVM_VM_AGENT_MAX + 1];
  char acc[2][FRAME_MAX]; /* guest bytes not framed yet: a UTF-8 sequence is not split */
  size_t acc_len[2], total[2];
  bool truncated[2];
} xstream;

static void xstream_unref(xstream *x) {
  pthread_mutex_lock(&x->mu);
  bool last = --x->refs == 0;
  pthread_mutex_unlock(&x->mu);
  if (!last) return;
  pthread_mutex_destroy(&x->mu);
  pthread_cond_destroy(&x->room);
  if (x->efd >= 0) close(x->efd);
  free(x->q);
  free(x->argv);
  json_object_put(x->body);
  qvm_ssh_free(x->ssh);
  qvm_vm_free(x->vm);
  free(x);
}

static void notify(xstream *x) {
  uint64_t one = 1;
  (void)!write(x->efd, &one, sizeof one);
}

/* Queues one frame (the object, taken) as a line. Waits while the client
 * is QUEUE_MAX behind; QVM_ETIMEOUT past the deadline, QVM_EUNAVAIL when
 * the client is gone. */
static int push(xstream *x, json_object *frame) {
  size_t len = 0;
  const char *s = json_object_to_json_string_length(
      frame, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
  int r = 0;
  pthread_mutex_lock(&x->mu);
  while (!x->gone && x->q_len - x->q_off > 0 && x->q_len - x->q_off + len + 1 > QUEUE_MAX) {
    if (pthread_cond_timedwait(&x->room, &x->mu, &x->deadline) == ETIMEDOUT) {
      r = QVM_ETIMEOUT;
      break;
    }
  }
  if (x->gone) r = QVM_EUNAVAIL;
  if (!r && x->q_off > 0) {
    memmove(x->q, x->q + x->q_off, x->q_len - x->q_off);
    x->q_len -= x->q_off;
    x->q_off = 0;
  }
  if (!r && x->q_len + len + 1 > x->q_cap) {
    size_t cap = x->q_len + len + 1 + 4096;
    char *q = realloc(x->q, cap);
    if (!q)
      r = QVM_ESYS;
    else
      x->q = q, x->q_cap = cap;
  }
  if (!r) {
    memcpy(x->q + x->q_len, s, len);
    x->q[x->q_len + len] = '\n';
    x->q_len += len + 1;
  }
  pthread_mutex_unlock(&x->mu);
  json_object_put(frame);
  if (!r) notify(x);
  return r;
}

/* Bytes at the end of buf[0, len) that begin a UTF-8 sequence not complete
 * yet (0 to 3). */
static size_t utf8_partial_tail(const unsigned char *buf, size_t len) {
  for (size_t back = 1; back <= 3 && back <= len; back++) {
    unsigned char c = buf[len - back];
    if ((c & 0xC0) == 0x80) continue; /* a continuation byte: look further back */
    size_t need = c >= 0xF0 && c <= 0xF7 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

static const char *const stream_names[2] = {"stdout", "stderr"};

/* Frames what stream s has accumulated: all of it, or all but a UTF-8
 * sequence not complete yet. */
static int flush(xstream *x, int s, bool all) {
  size_t n = x->acc_len[s];
  size_t keep = all ? 0 : utf8_partial_tail((const unsigned char *)x->acc[s], n);
  if (n == keep) return 0;
  json_object *f = json_object_new_object();
  json_object_object_add(f, "stream", json_object_new_string(stream_names[s]));
  qvmd_json_add_guest_bytes(f, "data", x->acc[s], n - keep);
  memmove(x->acc[s], x->acc[s] + n - keep, keep);
  x->acc_len[s] = keep;
  return push(x, f);
}

static int stream_output(void *ctx, int stream, const void *data, size_t len) {
  xstream *x = ctx;
  int s = stream == QVM_SSH_STDERR ? 1 : 0;
  pthread_mutex_lock(&x->mu);
  bool gone = x->gone;
  pthread_mutex_unlock(&x->mu);
  if (gone) return QVM_EUNAVAIL; /* closes the channel */
  if (x->truncated[s]) return 0;
  size_t room = QVMD_OUTPUT_MAX - x->total[s];
  size_t take = len < room ? len : room;
  x->total[s] += take;
  const char *p = data;
  for (size_t left = take; left;) {
    size_t n = FRAME_MAX - x->acc_len[s];
    if (n > left) n = left;
    memcpy(x->acc[s] + x->acc_len[s], p, n);
    x->acc_len[s] += n, p += n, left -= n;
    if (x->acc_len[s] == FRAME_MAX) {
      int r = flush(x, s, false);
      if (r < 0) return r;
    }
  }
  int r = flush(x, s, take < len);
  if (r < 0) return r;
  if (take < len) {
    x->truncated[s] = true;
    json_object *f = json_object_new_object();
    json_object_object_add(f, "truncated", json_object_new_string(stream_names[s]));
    return push(x, f);
  }
  return 0;
}

static json_object *exit_frame(const qvm_ssh_exec_result *res, const char *checkpoint) {
  json_object *e = json_object_new_object();
  mcp_json_exit_status(e, res);
  json_object_object_add(e, "durationMs", json_object_new_int64(res->duration_ms));
  json_object_object_add(e, "checkpoint",
                         checkpoint[0] ? json_object_new_string(checkpoint) : NULL);
  json_object *f = json_object_new_object();
  json_object_object_add(f, "exit", e);
  return f;
}

/* {"error": problem} for a libqvm error (taken). */
static json_object *error_frame(qvm_error *err) {
  qvmd_reply r = {0};
  qvmd_problem_qvm(&r, err, NULL);
  json_object *p = r.body ? json_tokener_parse(r.body) : NULL;
  free(r.body);
  json_object *f = json_object_new_object();
  json_object_object_add(f, "error", p ? p : json_object_new_object());
  return f;
}

static void *worker(void *arg) {
  xstream *x = arg;
  qvm_audit_set_thread_agent(x->agent[0] ? x->agent : NULL, NULL);
  qvm_ssh_exec_options eo = QVM_SSH_EXEC_OPTIONS_INIT;
  eo.argv = x->argv;
  eo.on_output = stream_output;
  eo.ctx = x;
  eo.timeout_ms = x->timeout_ms;
  qvm_ssh_exec_result res = {0};
  qvm_error *err = NULL;
  char ckpt[QVM_VM_CHECKPOINT_NAME_MAX] = "";
  int r = qvm_vm_exec_command(&res, ckpt, x->vm, x->ssh, &eo, 0, &err);
  for (int s = 0; s < 2 && r >= 0; s++)
    if (flush(x, s, true) < 0) r = QVM_EUNAVAIL;
  if (r >= 0) {
    push(x, exit_frame(&res, ckpt));
  } else {
    pthread_mutex_lock(&x->mu);
    bool gone = x->gone;
    pthread_mutex_unlock(&x->mu);
    if (gone)
      qvm_error_free(err);
    else
      push(x, error_frame(err));
  }
  qvm_audit_set_thread_agent(NULL, NULL);
  qvmd_request req = {.caller = &x->caller};
  qvmd_work_end(&req);
  pthread_mutex_lock(&x->mu);
  x->done = true;
  pthread_mutex_unlock(&x->mu);
  notify(x);
  xstream_unref(x);
  return NULL;
}

static long stream_read(void *cls, char *buf, size_t max) {
  xstream *x = cls;
  for (;;) {
    uint64_t junk;
    (void)!read(x->efd, &junk, sizeof junk); /* non-blocking: clears it */
    pthread_mutex_lock(&x->mu);
    size_t n = x->q_len - x->q_off;
    if (n > max) n = max;
    if (n) {
      memcpy(buf, x->q + x->q_off, n);
      x->q_off += n;
      pthread_cond_signal(&x->room);
    }
    bool done = x->done;
    pthread_mutex_unlock(&x->mu);
    if (n) return (long)n;
    if (done) return QVMD_STREAM_END;
    if (qvmd_stream_wait(x->conn, x->efd, -1) < 0) return QVMD_STREAM_ERROR;
  }
}

static void stream_free(void *cls) {
  xstream *x = cls;
  pthread_mutex_lock(&x->mu);
  x->gone = !x->done;
  pthread_cond_broadcast(&x->room);
  pthread_mutex_unlock(&x->mu);
  xstream_unref(x);
}

/* Connects (an error is still an HTTP error), then hands vm, argv and body
 * to a worker and out to the stream. */
static void run_stream(qvmd_reply *out, const qvmd_request *req, qvm_vm **vm, const char ***argv,
                       json_object **body, int timeout_ms) {
  xstream *x = calloc(1, sizeof *x);
  if (!x) {
    qvmd_problem(out, 500, "ESYS", "out of memory");
    return;
  }
  qvm_error *err = NULL;
  qvm_vm_ssh_options so = QVM_VM_SSH_OPTIONS_INIT;
  so.timeout_ms = timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms : CONNECT_TIMEOUT_MS;
  if ((x->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
    free(x);
    qvmd_problem(out, 500, "ESYS", "cannot make an eventfd");
    return;
  }
  if (qvm_vm_ssh_connect(&x->ssh, *vm, &so, &err) < 0) {
    close(x->efd);
    free(x);
    qvmd_problem_qvm(out, err, NULL);
    return;
  }
  pthread_mutex_init(&x->mu, NULL);
  pthread_cond_init(&x->room, NULL);
  x->refs = 2;
  x->conn = req->conn;
  x->vm = *vm, x->argv = *argv, x->body = *body, x->timeout_ms = timeout_ms;
  x->caller = *req->caller;
  if (req->caller->agent) {
    snprintf(x->agent, sizeof x->agent, "%s", req->caller->agent);
    x->caller.agent = x->agent;
  }
  clock_gettime(CLOCK_REALTIME, &x->deadline);
  x->deadline.tv_sec += timeout_ms / 1000 + 30;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  int e = pthread_create(&t, &attr, worker, x);
  pthread_attr_destroy(&attr);
  if (e) {
    x->vm = NULL, x->argv = NULL, x->body = NULL; /* still the caller's */
    x->refs = 1;
    xstream_unref(x);
    qvmd_problem(out, 503, "Busy", "cannot start a thread for the stream; try again");
    out->retry_after_s = 1;
    return;
  }
  *vm = NULL, *argv = NULL, *body = NULL;
  out->status = 200;
  out->content_type = "application/x-ndjson";
  out->stream_read = stream_read;
  out->stream_free = stream_free;
  out->stream_cls = x;
  /* the command may be quiet for its whole timeout; the worker's deadline
   * bounds a client that does not read */
  out->stream_timeout_s = (unsigned)(timeout_ms / 1000) + 60;
}

void qvmd_vms_exec(qvmd_reply *out, const qvmd_request *req) {
  bool sandbox_route = !strncmp(req->path, "/api/v1/sandboxes/", 18);
  qvm_vm *vm = qvmd_sandbox_open(out, req, sandbox_route);
  if (!vm) return;
  json_object *body = qvmd_body_object(out, req);
  const char **argv = NULL;
  static const char *const known[] = {"argv", "timeoutMs", "stream", NULL};
  bool set = false, stream = false;
  int64_t timeout_ms = EXEC_TIMEOUT_MS_DEFAULT;
  if (body && qvmd_body_known(out, body, known) && (argv = read_argv(out, body)) &&
      qvmd_body_int(out, body, "timeoutMs", 1, EXEC_TIMEOUT_MS_MAX, &set, &timeout_ms) &&
      qvmd_body_bool(out, body, "stream", &stream) && qvmd_work_begin(out, req)) {
    stream = stream || qvmd_accepts(req, "application/x-ndjson");
    if (stream) {
      run_stream(out, req, &vm, &argv, &body, (int)timeout_ms);
      if (vm) qvmd_work_end(req); /* not handed to a worker */
    } else {
      run(out, vm, argv, (int)timeout_ms);
      qvmd_work_end(req);
    }
  }
  free(argv);
  json_object_put(body);
  qvm_vm_free(vm);
}
