/* SPDX-License-Identifier: MIT */
/* Long operations (docs/qvmd.md, "Operations"): work that answers 202 with
 * an operation to poll (GET, ?waitMs), to follow (events, an SSE stream)
 * and to cancel (DELETE). Each runs on a thread of its own and holds one
 * --max-work slot while it runs.
 *
 * Durable: every operation is a file <state>/qvmd/operations/<id>.json
 * (dir 0700, files 0600, written as tmp + rename) naming the qvmd that runs
 * it (pid and process start time). At startup, an operation left running
 * by a qvmd that is gone is marked interrupted and its target reconciled
 * (qvmd_ops_init): a VM that was made completely counts as made; a
 * half-made one is removed; an image pull's partial download is removed.
 * At most OPS_KEEP finished operations are kept, the oldest dropped. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <sodium.h>

#include <qvm/audit.h>
#include <qvm/image.h>
#include <qvm/sandbox.h>
#include <qvm/vm.h>

#include "qvmd.h"

#define OPS_KEEP 200 /* finished operations kept */
#define OPS_FILE_MAX (256u << 10)
#define WAIT_MS_MAX 60000
#define LIST_DEFAULT 50
#define KEEPALIVE_MS 10000
#define SAVE_EVERY_MS 1000 /* progress is written at most this often */

typedef enum op_state { RUNNING, SUCCEEDED, FAILED, CANCELLED, INTERRUPTED } op_state;
static const char *const state_names[] = {"running", "succeeded", "failed", "cancelled",
                                          "interrupted"};

struct qvmd_op {
  char id[40];
  char kind[32];
  char target[256];
  char source[4096];   /* image.pull: the source without credentials */
  bool target_existed; /* vm.create: a VM of the name was there before */
  bool has_agent;
  char agent[QVM_VM_AGENT_MAX + 1];
  qvmd_caller caller; /* who started it (agent points at .agent) */
  op_state state;
  bool interrupted;
  int64_t created_ms, updated_ms, saved_ms;
  char phase[32];
  uint64_t done, total;
  json_object *result, *error;
  bool cancel;
  unsigned seq; /* bumped at every change */
  long pid;
  unsigned long long pid_start;
  bool owner_stopping; /* its qvmd was stopping (SIGTERM) when it last wrote */
  qvmd_op_fn *fn;
  void *arg;
  qvmd_op_free_fn *free_arg;
  unsigned refs;
  struct qvmd_op *next; /* the list, newest first */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static qvmd_op *ops; /* newest first */
static char ops_dir[PATH_MAX];
static bool ops_ready;
static bool stopping; /* qvmd is stopping: long-polls and streams end */
static unsigned long long self_start;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Field 22 of /proc/PID/stat (the start time in ticks): with the pid, it
 * names one process, not whichever got its number later. 0: gone. */
static unsigned long long proc_start(long pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char *p = strrchr(buf, ')'); /* the name may hold spaces and ')' */
  if (!p) return 0;
  unsigned long long v = 0;
  /* after ") " come fields 3..; the start time is field 22 */
  int field = 2;
  for (p++; *p && field < 22; p++)
    if (*p == ' ') field++;
  if (field == 22) v = strtoull(p, NULL, 10);
  return v;
}

/* ---- the JSON of an operation ---- */

static const char *iso_time(char *buf, size_t size, int64_t ms) {
  time_t s = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, size - n, ".%03dZ", (int)(ms % 1000));
  return buf;
}

/* The public object; with `private`, what the file keeps besides. Called
 * with mu held. */
static json_object *op_json(const qvmd_op *op, bool private) {
  json_object *o = json_object_new_object(), *p = json_object_new_object();
  char t[40];
  json_object_object_add(o, "id", json_object_new_string(op->id));
  json_object_object_add(o, "kind", json_object_new_string(op->kind));
  json_object_object_add(o, "target", json_object_new_string(op->target));
  json_object_object_add(o, "state", json_object_new_string(state_names[op->state]));
  json_object_object_add(o, "interrupted", json_object_new_boolean(op->interrupted));
  json_object_object_add(o, "cancelRequested", json_object_new_boolean(op->cancel));
  json_object_object_add(o, "createdAt",
                         json_object_new_string(iso_time(t, sizeof t, op->created_ms)));
  json_object_object_add(o, "updatedAt",
                         json_object_new_string(iso_time(t, sizeof t, op->updated_ms)));
  json_object_object_add(p, "phase", json_object_new_string(op->phase));
  json_object_object_add(p, "done", json_object_new_uint64(op->done));
  json_object_object_add(p, "total", json_object_new_uint64(op->total));
  json_object_object_add(o, "progress", p);
  json_object_object_add(o, "result", op->result ? json_object_get(op->result) : NULL);
  json_object_object_add(o, "error", op->error ? json_object_get(op->error) : NULL);
  if (private) {
    json_object *q = json_object_new_object();
    json_object_object_add(q, "pid", json_object_new_int64(op->pid));
    json_object_object_add(q, "pidStart", json_object_new_uint64(op->pid_start));
    json_object_object_add(q, "createdMs", json_object_new_int64(op->created_ms));
    json_object_object_add(q, "updatedMs", json_object_new_int64(op->updated_ms));
    json_object_object_add(q, "agent", op->has_agent ? json_object_new_string(op->agent) : NULL);
    json_object_object_add(q, "source", json_object_new_string(op->source));
    json_object_object_add(q, "targetExisted", json_object_new_boolean(op->target_existed));
    json_object_object_add(q, "ownerStopping", json_object_new_boolean(op->owner_stopping));
    json_object_object_add(o, "qvmd", q);
  }
  return o;
}

/* ---- the files ---- */

static bool id_valid(const char *id) {
  if (strncmp(id, "op-", 3) || strlen(id) != 35) return false;
  for (const char *p = id + 3; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return false;
  return true;
}

/* Writes op's file (tmp + rename, 0600). Called with mu held; a failure is
 * logged, not fatal: the operation goes on. */
static void op_save(qvmd_op *op) {
  if (!ops_ready) return;
  char path[PATH_MAX + 64], tmp[PATH_MAX + 80];
  snprintf(path, sizeof path, "%s/%s.json", ops_dir, op->id);
  snprintf(tmp, sizeof tmp, "%s/.%s.json.tmp", ops_dir, op->id);
  json_object *o = op_json(op, true);
  const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  bool ok = fd >= 0;
  size_t len = strlen(text), done = 0;
  while (ok && done < len) {
    ssize_t w = write(fd, text + done, len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      ok = false;
    else
      done += (size_t)w;
  }
  if (ok && fsync(fd) < 0) ok = false;
  if (fd >= 0) close(fd);
  if (ok && rename(tmp, path) < 0) ok = false;
  if (!ok) {
    fprintf(stderr, "qvmd: cannot write '%s': %s\n", path, strerror(errno));
    unlink(tmp);
  }
  json_object_put(o);
  op->saved_ms = now_ms();
}

static void op_unlink(const qvmd_op *op) {
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/%s.json", ops_dir, op->id);
  unlink(path);
}

static void op_free(qvmd_op *op) {
  json_object_put(op->result);
  json_object_put(op->error);
  if (op->free_arg) op->free_arg(op->arg);
  free(op);
}

static void op_unref(qvmd_op *op) {
  pthread_mutex_lock(&mu);
  bool last = --op->refs == 0;
  pthread_mutex_unlock(&mu);
  if (last) op_free(op);
}

/* Drops finished operations past OPS_KEEP (oldest first). mu held. */
static void trim(void) {
  unsigned finished = 0;
  for (qvmd_op **pp = &ops; *pp;) {
    qvmd_op *op = *pp;
    if (op->state != RUNNING && ++finished > OPS_KEEP) {
      *pp = op->next;
      op_unlink(op);
      if (--op->refs == 0) op_free(op);
      continue;
    }
    pp = &op->next;
  }
}

static void touch(qvmd_op *op) {
  op->updated_ms = now_ms();
  op->seq++;
  pthread_cond_broadcast(&changed);
}

/* ---- running one ---- */

static json_object *problem_object(const qvmd_reply *r) {
  json_object *o = r->body ? json_tokener_parse(r->body) : NULL;
  if (!o || !json_object_is_type(o, json_type_object)) {
    json_object_put(o);
    o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("urn:qvm:problem:Internal"));
    json_object_object_add(o, "title", json_object_new_string("Internal Server Error"));
    json_object_object_add(o, "status", json_object_new_int(500));
    json_object_object_add(o, "detail", json_object_new_string("the operation gave no outcome"));
    json_object_object_add(o, "code", json_object_new_string("Internal"));
  }
  return o;
}

static json_object *problem_make(unsigned status, const char *code, const char *detail) {
  qvmd_reply r = {0};
  qvmd_problem(&r, status, code, "%s", detail);
  json_object *o = problem_object(&r);
  free(r.body);
  return o;
}

static void *op_thread(void *arg) {
  qvmd_op *op = arg;
  qvmd_request req = {.caller = &op->caller};
  qvm_audit_set_thread_agent(op->has_agent ? op->agent : NULL, NULL);
  qvmd_reply out = {0};
  op->fn(op, &out, op->arg);
  qvm_audit_set_thread_agent(NULL, NULL);
  qvmd_work_end(&req);
  pthread_mutex_lock(&mu);
  if (out.body && out.status >= 200 && out.status < 300) {
    op->state = SUCCEEDED;
    op->result = out.body[0] ? json_tokener_parse(out.body) : NULL;
    snprintf(op->phase, sizeof op->phase, "done");
  } else {
    op->state = op->cancel ? CANCELLED : FAILED;
    op->error = problem_object(&out);
  }
  touch(op);
  op_save(op);
  trim();
  pthread_mutex_unlock(&mu);
  free(out.body);
  op_unref(op);
  return NULL;
}

bool qvmd_prefer_async(const qvmd_request *req) {
  if (req->alias || !req->conn) return false;
  const char *h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Prefer");
  if (!h) return false;
  /* Prefer: a comma-separated list of preferences (RFC 7240) */
  for (const char *p = h; *p;) {
    p += strspn(p, " \t,");
    size_t n = strcspn(p, ",");
    size_t m = strcspn(p, ";=, \t");
    if (m == 13 && m <= n && !strncasecmp(p, "respond-async", 13)) return true;
    p += n;
  }
  return false;
}

void qvmd_op_start(qvmd_reply *out, const qvmd_request *req, const char *kind, const char *target,
                   const char *source, qvmd_op_fn *fn, void *arg, qvmd_op_free_fn *free_arg) {
  qvmd_op *op = calloc(1, sizeof *op);
  if (!op) {
    if (free_arg) free_arg(arg);
    qvmd_problem(out, 500, "ESYS", "out of memory");
    return;
  }
  op->fn = fn, op->arg = arg, op->free_arg = free_arg;
  if (!ops_ready) {
    op_free(op);
    qvmd_problem(out, 503, "EUNAVAIL",
                 "operations are not available: qvmd has no directory to record them in");
    return;
  }
  if (!qvmd_work_begin(out, req)) {
    op_free(op);
    return;
  }
  unsigned char rnd[16];
  randombytes_buf(rnd, sizeof rnd);
  memcpy(op->id, "op-", 3);
  sodium_bin2hex(op->id + 3, sizeof op->id - 3, rnd, sizeof rnd);
  snprintf(op->kind, sizeof op->kind, "%s", kind);
  snprintf(op->target, sizeof op->target, "%s", target ? target : "");
  snprintf(op->source, sizeof op->source, "%s", source ? source : "");
  snprintf(op->phase, sizeof op->phase, "queued");
  op->caller = *req->caller;
  if (req->caller->scope == QVMD_SCOPE_AGENT && req->caller->agent) {
    op->has_agent = true;
    snprintf(op->agent, sizeof op->agent, "%s", req->caller->agent);
    op->caller.agent = op->agent;
  } else {
    op->caller.agent = NULL;
  }
  op->created_ms = op->updated_ms = now_ms();
  op->pid = (long)getpid();
  op->pid_start = self_start;
  op->state = RUNNING;
  op->refs = 2; /* the list and the thread */
  if (!strcmp(kind, "vm.create") || !strcmp(kind, "sandbox.create")) {
    qvm_vm *vm = NULL;
    if (qvm_vm_open(&vm, op->target, NULL) == 0) op->target_existed = true;
    qvm_vm_free(vm);
  }
  pthread_mutex_lock(&mu);
  op->next = ops;
  ops = op;
  op_save(op);
  json_object *o = op_json(op, false);
  pthread_mutex_unlock(&mu);
  pthread_attr_t attr;
  pthread_t t;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int e = pthread_create(&t, &attr, op_thread, op);
  pthread_attr_destroy(&attr);
  if (e) {
    qvmd_work_end(req);
    pthread_mutex_lock(&mu);
    op->state = FAILED;
    op->error = problem_make(500, "ESYS", "cannot start a thread for the operation");
    touch(op);
    op_save(op);
    op->refs--;
    pthread_mutex_unlock(&mu);
    json_object_put(o);
    qvmd_problem(out, 500, "ESYS", "cannot start a thread for the operation: %s", strerror(e));
    return;
  }
  snprintf(out->location, sizeof out->location, "/api/v1/operations/%s", op->id);
  out->preference_applied = qvmd_prefer_async(req);
  qvmd_reply_json(out, 202, o);
}

void qvmd_op_progress(qvmd_op *op, const char *phase, uint64_t done, uint64_t total) {
  pthread_mutex_lock(&mu);
  bool phase_changed = strncmp(op->phase, phase, sizeof op->phase - 1) != 0;
  if (!phase_changed && op->done == done && op->total == total) {
    pthread_mutex_unlock(&mu); /* nothing new: no frame, no write */
    return;
  }
  snprintf(op->phase, sizeof op->phase, "%s", phase);
  op->done = done;
  op->total = total;
  touch(op);
  if (phase_changed || now_ms() - op->saved_ms >= SAVE_EVERY_MS) op_save(op);
  pthread_mutex_unlock(&mu);
}

bool qvmd_op_cancelled(qvmd_op *op) {
  pthread_mutex_lock(&mu);
  bool c = op->cancel;
  pthread_mutex_unlock(&mu);
  return c;
}

void qvmd_op_cancelled_reply(qvmd_reply *out, const char *what) {
  qvmd_problem(out, 409, "Cancelled", "%s was cancelled", what);
}

/* ---- the routes ---- */

/* The caller may see op: an agent token only the operations it started. */
static bool visible(const qvmd_request *req, const qvmd_op *op) {
  if (req->caller->scope != QVMD_SCOPE_AGENT) return true;
  return op->has_agent && req->caller->agent && !strcmp(op->agent, req->caller->agent);
}

/* The route's operation, referenced; NULL with a 404. */
static qvmd_op *find(qvmd_reply *out, const qvmd_request *req) {
  const char *id = req->params[0];
  qvmd_op *found = NULL;
  if (id_valid(id)) {
    pthread_mutex_lock(&mu);
    for (qvmd_op *op = ops; op && !found; op = op->next)
      if (!strcmp(op->id, id) && visible(req, op)) {
        found = op;
        op->refs++;
      }
    pthread_mutex_unlock(&mu);
  }
  if (!found) qvmd_problem(out, 404, "ENOTFOUND", "operation '%.64s' does not exist", id);
  return found;
}

static bool query_uint(qvmd_reply *out, const qvmd_request *req, const char *key, long max,
                       long *value) {
  const char *v = qvmd_query(req, key);
  if (!v) return true;
  char *end = NULL;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (errno || end == v || *end || n < 0 || n > max) {
    qvmd_problem_field(out, key, "'%s' must be a number from 0 to %ld", key, max);
    return false;
  }
  *value = n;
  return true;
}

void qvmd_operations_list(qvmd_reply *out, const qvmd_request *req) {
  long limit = LIST_DEFAULT;
  if (!query_uint(out, req, "limit", OPS_KEEP + 1024, &limit)) return;
  json_object *arr = json_object_new_array();
  pthread_mutex_lock(&mu);
  long n = 0;
  for (qvmd_op *op = ops; op && n < limit; op = op->next)
    if (visible(req, op)) {
      json_object_array_add(arr, op_json(op, false));
      n++;
    }
  pthread_mutex_unlock(&mu);
  qvmd_reply_json(out, 200, arr);
}

void qvmd_operations_get(qvmd_reply *out, const qvmd_request *req) {
  long wait_ms = 0;
  if (!query_uint(out, req, "waitMs", LONG_MAX / 2, &wait_ms)) return;
  if (wait_ms > WAIT_MS_MAX) wait_ms = WAIT_MS_MAX;
  qvmd_op *op = find(out, req);
  if (!op) return;
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += wait_ms / 1000;
  deadline.tv_nsec += (wait_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) deadline.tv_sec++, deadline.tv_nsec -= 1000000000L;
  pthread_mutex_lock(&mu);
  while (wait_ms > 0 && op->state == RUNNING && !stopping)
    if (pthread_cond_timedwait(&changed, &mu, &deadline) == ETIMEDOUT) break;
  json_object *o = op_json(op, false);
  pthread_mutex_unlock(&mu);
  op_unref(op);
  qvmd_reply_json(out, 200, o);
}

void qvmd_operations_cancel(qvmd_reply *out, const qvmd_request *req) {
  qvmd_op *op = find(out, req);
  if (!op) return;
  pthread_mutex_lock(&mu);
  bool running = op->state == RUNNING;
  if (running && !op->cancel) {
    op->cancel = true;
    touch(op);
    op_save(op);
  }
  json_object *o = op_json(op, false);
  op_state st = op->state;
  pthread_mutex_unlock(&mu);
  op_unref(op);
  if (running) {
    qvmd_reply_json(out, 202, o);
    return;
  }
  json_object_put(o);
  qvmd_problem(out, 409, "ECONFLICT", "the operation has ended already (%s)", state_names[st]);
}

/* ---- the events stream (SSE) ---- */

typedef struct stream {
  qvmd_op *op;
  unsigned seq;   /* the last change sent */
  op_state state; /* as last sent */
  bool first, ended;
  char *buf;
  size_t len, off;
} stream;

/* The frames for what changed since the last call. mu held. */
static void frames(stream *s) {
  free(s->buf);
  s->buf = NULL;
  s->len = s->off = 0;
  qvmd_op *op = s->op;
  json_object *o = NULL;
  const char *event = "progress";
  if (s->first || op->state != s->state) {
    o = op_json(op, false);
    event = "state";
  } else {
    o = json_object_new_object();
    json_object_object_add(o, "phase", json_object_new_string(op->phase));
    json_object_object_add(o, "done", json_object_new_uint64(op->done));
    json_object_object_add(o, "total", json_object_new_uint64(op->total));
  }
  const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
  int n = asprintf(&s->buf, "id: %u\nevent: %s\ndata: %s\n\n", op->seq, event, text);
  json_object_put(o);
  s->len = n > 0 ? (size_t)n : 0;
  s->first = false;
  s->seq = op->seq;
  s->state = op->state;
  if (op->state != RUNNING) s->ended = true;
}

static long stream_read(void *cls, char *buf, size_t max) {
  stream *s = cls;
  if (s->off == s->len) {
    if (s->ended) return QVMD_STREAM_END;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += KEEPALIVE_MS / 1000;
    pthread_mutex_lock(&mu);
    bool timed_out = false;
    while (!s->first && s->op->seq == s->seq && !timed_out && !stopping)
      timed_out = pthread_cond_timedwait(&changed, &mu, &deadline) == ETIMEDOUT;
    if (stopping && !s->first && s->op->seq == s->seq) {
      pthread_mutex_unlock(&mu);
      return QVMD_STREAM_END;
    }
    if (timed_out) {
      free(s->buf);
      s->buf = strdup(": keepalive\n\n");
      s->len = s->buf ? strlen(s->buf) : 0;
      s->off = 0;
    } else {
      frames(s);
    }
    pthread_mutex_unlock(&mu);
    if (s->len == 0) return QVMD_STREAM_ERROR;
  }
  size_t n = s->len - s->off < max ? s->len - s->off : max;
  memcpy(buf, s->buf + s->off, n);
  s->off += n;
  return (long)n;
}

static void stream_free(void *cls) {
  stream *s = cls;
  op_unref(s->op);
  free(s->buf);
  free(s);
}

void qvmd_operations_events(qvmd_reply *out, const qvmd_request *req) {
  qvmd_op *op = find(out, req);
  if (!op) return;
  stream *s = calloc(1, sizeof *s);
  if (!s) {
    op_unref(op);
    qvmd_problem(out, 500, "ESYS", "out of memory");
    return;
  }
  s->op = op;
  s->first = true;
  /* the stream is quiet between frames, up to a keep-alive: the
   * connection's idle timeout (--timeout) must not cut it */
  out->stream_timeout_s = (unsigned)(3 * KEEPALIVE_MS / 1000);
  out->status = 200;
  out->content_type = "text/event-stream";
  out->stream_read = stream_read;
  out->stream_cls = s;
  out->stream_free = stream_free;
}

void qvmd_ops_stop(void) {
  pthread_mutex_lock(&mu);
  stopping = true;
  pthread_cond_broadcast(&changed);
  /* What still runs is the next qvmd's to reconcile, even if this process
   * takes a moment to be gone; from now on nothing here writes them. */
  for (qvmd_op *op = ops; op; op = op->next)
    if (op->state == RUNNING && op->pid == (long)getpid()) {
      op->owner_stopping = true;
      op_save(op);
    }
  ops_ready = false;
  pthread_mutex_unlock(&mu);
}

/* ---- startup: load, reconcile ---- */

/* The state dir as libqvm picks it (include/qvm/vm.h). */
static int state_root(char *out, size_t size) {
  const char *d = getenv("QVM_STATE_DIR");
  int n;
  if (d && *d)
    n = snprintf(out, size, "%s", d);
  else if (geteuid() == 0)
    n = snprintf(out, size, "/var/lib/qvm");
  else if ((d = getenv("XDG_DATA_HOME")) && *d)
    n = snprintf(out, size, "%s/qvm", d);
  else if ((d = getenv("HOME")) && *d)
    n = snprintf(out, size, "%s/.local/share/qvm", d);
  else
    return -1;
  return n > 0 && (size_t)n < size && out[0] == '/' ? 0 : -1;
}

/* mkdir 0700, or an existing directory of ours made 0700. */
static int private_dir(const char *path, char *msg, size_t size) {
  if (mkdir(path, 0700) < 0 && errno != EEXIST) {
    snprintf(msg, size, "cannot make '%s': %s", path, strerror(errno));
    return -1;
  }
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0 || st.st_uid != geteuid() || fchmod(fd, 0700) < 0) {
    snprintf(msg, size, "'%s' is not a directory of qvmd's user", path);
    if (fd >= 0) close(fd);
    return -1;
  }
  close(fd);
  return 0;
}

static qvmd_op *op_from_file(const char *path) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return NULL;
  char *text = malloc(OPS_FILE_MAX + 1);
  size_t len = 0;
  ssize_t n;
  while (text && len < OPS_FILE_MAX && (n = read(fd, text + len, OPS_FILE_MAX - len)) > 0)
    len += (size_t)n;
  close(fd);
  if (!text) return NULL;
  text[len] = '\0';
  json_object *o = json_tokener_parse(text), *v, *q = NULL;
  free(text);
  qvmd_op *op = calloc(1, sizeof *op);
  if (!o || !op || !json_object_object_get_ex(o, "qvmd", &q)) goto bad;
#define STR(obj, key, dst)                                                                         \
  (json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_string) &&          \
   snprintf(dst, sizeof dst, "%s", json_object_get_string(v)) < (int)sizeof dst)
  char state[16];
  if (!STR(o, "id", op->id) || !id_valid(op->id) || !STR(o, "kind", op->kind) ||
      !STR(o, "target", op->target) || !STR(o, "state", state) || !STR(q, "source", op->source))
    goto bad;
  op->state = INTERRUPTED + 1;
  for (int i = 0; i <= INTERRUPTED; i++)
    if (!strcmp(state, state_names[i])) op->state = (op_state)i;
  if (op->state > INTERRUPTED) goto bad;
  if (json_object_object_get_ex(q, "agent", &v) && json_object_is_type(v, json_type_string)) {
    op->has_agent = STR(q, "agent", op->agent);
    op->caller.scope = QVMD_SCOPE_AGENT;
    op->caller.agent = op->agent;
  } else {
    op->caller.scope = QVMD_SCOPE_FULL;
  }
  json_object *p = NULL;
  if (json_object_object_get_ex(o, "progress", &p)) {
    if (!STR(p, "phase", op->phase)) op->phase[0] = '\0';
    if (json_object_object_get_ex(p, "done", &v)) op->done = json_object_get_uint64(v);
    if (json_object_object_get_ex(p, "total", &v)) op->total = json_object_get_uint64(v);
  }
#undef STR
  if (json_object_object_get_ex(q, "pid", &v)) op->pid = (long)json_object_get_int64(v);
  if (json_object_object_get_ex(q, "pidStart", &v)) op->pid_start = json_object_get_uint64(v);
  if (json_object_object_get_ex(q, "createdMs", &v)) op->created_ms = json_object_get_int64(v);
  if (json_object_object_get_ex(q, "updatedMs", &v)) op->updated_ms = json_object_get_int64(v);
  if (json_object_object_get_ex(q, "targetExisted", &v))
    op->target_existed = json_object_get_boolean(v);
  if (json_object_object_get_ex(q, "ownerStopping", &v))
    op->owner_stopping = json_object_get_boolean(v);
  if (json_object_object_get_ex(o, "interrupted", &v)) op->interrupted = json_object_get_boolean(v);
  if (json_object_object_get_ex(o, "cancelRequested", &v)) op->cancel = json_object_get_boolean(v);
  if (json_object_object_get_ex(o, "result", &v) && v) op->result = json_object_get(v);
  if (json_object_object_get_ex(o, "error", &v) && v) op->error = json_object_get(v);
  op->refs = 1;
  json_object_put(o);
  return op;
bad:
  json_object_put(o);
  free(op);
  return NULL;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)ftw;
  if (flag == FTW_DP)
    rmdir(path);
  else
    unlink(path);
  return 0;
}

/* What an interrupted qvm_vm_create leaves: <state>/vms/.<name>.create-*
 * (vm/create.c makes the VM under that name and renames it into place). */
static void remove_create_leftovers(const char *root, const char *name) {
  char vms[PATH_MAX], prefix[300];
  snprintf(vms, sizeof vms, "%s/vms", root);
  int n = snprintf(prefix, sizeof prefix, ".%s.create-", name);
  DIR *d = opendir(vms);
  if (!d || n <= 0) {
    if (d) closedir(d);
    return;
  }
  struct dirent *de;
  while ((de = readdir(d))) {
    if (strncmp(de->d_name, prefix, (size_t)n)) continue;
    char path[PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/%s", vms, de->d_name);
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  }
  closedir(d);
}

static void set_failed(qvmd_op *op, const char *detail) {
  json_object_put(op->error);
  op->error = problem_make(500, "Interrupted", detail);
  op->state = FAILED;
}

static json_object *vm_info(qvm_vm *vm) {
  char *text = NULL;
  if (qvm_vm_info(&text, vm, NULL) < 0) return NULL;
  json_object *o = qvmd_json_from_lib(text);
  free(text);
  return o;
}

/* The VM is running, or after a while of starting. */
static bool settles_running(qvm_vm *vm) {
  for (int i = 0; i < 300; i++) {
    qvm_vm_reconcile(vm, NULL);
    qvm_vm_state st = qvm_vm_get_state(vm);
    if (st == QVM_VM_RUNNING) return true;
    if (st != QVM_VM_STARTING) return false;
    usleep(100000);
  }
  return false;
}

/* Whether vm is the one this create made: its agent is the operation's
 * (an agent's operation), a sandbox for a sandbox create, and made after
 * the operation began. A VM of that name made by someone else meanwhile is
 * left alone. */
static bool made_by(qvm_vm *vm, const qvmd_op *op, bool sandbox) {
  if (op->has_agent && (!qvm_vm_agent(vm) || strcmp(qvm_vm_agent(vm), op->agent))) return false;
  char *text = NULL;
  if (qvm_vm_info(&text, vm, NULL) < 0) return false;
  json_object *o = json_tokener_parse(text), *v = NULL;
  free(text);
  bool ok = false;
  struct tm tm = {0};
  json_object *sb = NULL;
  if (sandbox &&
      !(o && json_object_object_get_ex(o, "sandbox", &sb) && json_object_get_boolean(sb))) {
    json_object_put(o);
    return false;
  }
  const char *at =
      o && json_object_object_get_ex(o, "created_at", &v) ? json_object_get_string(v) : NULL;
  if (at && strptime(at, "%Y-%m-%dT%H:%M:%S", &tm)) {
    /* whole seconds: one second of slack */
    int64_t made_ms = (int64_t)timegm(&tm) * 1000;
    ok = made_ms + 1000 >= op->created_ms;
  }
  json_object_put(o);
  return ok;
}

static void reconcile_vm(qvmd_op *op, const char *root, bool sandbox, bool start) {
  const char *what = sandbox ? "sandbox create" : start ? "start" : "create";
  char detail[512];
  if (!start) remove_create_leftovers(root, op->target);
  if (op->target_existed) {
    snprintf(detail, sizeof detail, "qvmd stopped during the %s of '%s'", what, op->target);
    set_failed(op, detail);
    return;
  }
  qvm_vm *vm = NULL;
  qvm_error *err = NULL;
  if (!op->target[0] || qvm_vm_open(&vm, op->target, &err) < 0) {
    bool missing = !op->target[0] || qvm_error_code(err) == QVM_ENOTFOUND;
    qvm_error_free(err);
    if (!missing && !start) qvm_vm_remove(op->target, true, NULL);
    snprintf(detail, sizeof detail, "qvmd stopped during the %s of '%s'; %s", what, op->target,
             start     ? "the vm is gone"
             : missing ? "no vm was made"
                       : "the half-made vm was removed");
    set_failed(op, detail);
    return;
  }
  if (!start && !made_by(vm, op, sandbox)) {
    qvm_vm_free(vm);
    snprintf(detail, sizeof detail,
             "qvmd stopped during the %s of '%s'; a vm of that name that this operation did not "
             "make is there now, left alone",
             what, op->target);
    set_failed(op, detail);
    return;
  }
  bool complete = !sandbox && !start ? true : settles_running(vm);
  if (complete) {
    json_object_put(op->result);
    op->result = NULL;
    if (sandbox) {
      char *text = NULL;
      if (qvm_sandbox_list(&text, NULL, NULL) == 0) {
        json_object *arr = qvmd_json_from_lib(text), *n = NULL;
        for (size_t i = 0; arr && i < json_object_array_length(arr) && !op->result; i++) {
          json_object *s = json_object_array_get_idx(arr, i);
          if (json_object_object_get_ex(s, "name", &n) &&
              !strcmp(json_object_get_string(n), op->target))
            op->result = json_object_get(s);
        }
        json_object_put(arr);
      }
      free(text);
    } else {
      op->result = vm_info(vm);
    }
    op->state = SUCCEEDED;
    snprintf(op->phase, sizeof op->phase, "done");
    qvm_vm_free(vm);
    return;
  }
  qvm_vm_free(vm);
  if (start) {
    snprintf(detail, sizeof detail, "qvmd stopped during the start of '%s'; the vm is not running",
             op->target);
    set_failed(op, detail);
    return;
  }
  /* a sandbox is destroyed as a sandbox only: never a plain vm of its name */
  int r = sandbox ? qvm_sandbox_destroy(op->target, &err) : qvm_vm_remove(op->target, true, &err);
  if (r < 0) {
    snprintf(detail, sizeof detail,
             "qvmd stopped during the %s of '%s'; the half-made vm could not be removed: %s", what,
             op->target, qvm_error_message(err));
    qvm_error_free(err);
  } else {
    snprintf(detail, sizeof detail,
             "qvmd stopped during the %s of '%s'; the half-made vm was removed", what, op->target);
  }
  set_failed(op, detail);
}

static void reconcile_pull(qvmd_op *op) {
  char detail[sizeof op->source + 512];
  /* committed already, just before qvmd stopped? */
  char *text = NULL;
  if (qvm_image_list(&text, NULL) == 0) {
    json_object *arr = json_tokener_parse(text), *v = NULL;
    for (size_t i = 0; arr && i < json_object_array_length(arr) && !op->result; i++) {
      json_object *img = json_object_array_get_idx(arr, i);
      if (json_object_object_get_ex(img, "source", &v) && json_object_get_string(v) &&
          !strcmp(json_object_get_string(v), op->source)) {
        const char *t = json_object_to_json_string_ext(img, JSON_C_TO_STRING_PLAIN);
        op->result = qvmd_json_from_lib(t);
      }
    }
    json_object_put(arr);
    free(text);
  }
  if (op->result && !op->cancel) {
    op->state = SUCCEEDED;
    snprintf(op->phase, sizeof op->phase, "done");
    return;
  }
  json_object_put(op->result);
  op->result = NULL;
  qvm_error *err = NULL;
  bool removed = false;
  if (qvm_image_pull_discard(op->source, &removed, &err) < 0) {
    snprintf(detail, sizeof detail,
             "qvmd stopped during the pull of '%s'; its partial download could not be removed: "
             "%s",
             op->source, qvm_error_message(err));
    qvm_error_free(err);
  } else {
    snprintf(detail, sizeof detail, "qvmd stopped during the pull of '%s'; %s", op->source,
             removed ? "its partial download was removed" : "nothing of it was left");
  }
  set_failed(op, detail);
}

/* A create that pulled its image on first use: what the pull left. */
static void discard_pull(const qvmd_op *op) {
  if (!op->source[0]) return;
  qvm_error *err = NULL;
  bool removed = false;
  if (qvm_image_pull_discard(op->source, &removed, &err) < 0) {
    fprintf(stderr, "qvmd: the partial download of '%s' was not removed: %s\n", op->source,
            qvm_error_message(err));
    qvm_error_free(err);
  }
}

static void reconcile(qvmd_op *op, const char *root) {
  op->interrupted = true;
  op->state = INTERRUPTED;
  op_save(op); /* interrupted, before anything is touched */
  if (!strcmp(op->kind, "image.pull"))
    reconcile_pull(op);
  else if (!strcmp(op->kind, "vm.create"))
    reconcile_vm(op, root, false, false), discard_pull(op);
  else if (!strcmp(op->kind, "sandbox.create"))
    reconcile_vm(op, root, true, false), discard_pull(op);
  else if (!strcmp(op->kind, "vm.start"))
    reconcile_vm(op, root, false, true);
  op->updated_ms = now_ms();
  op_save(op);
  fprintf(stderr, "qvmd: operation %s (%s of '%s') was interrupted: %s\n", op->id, op->kind,
          op->target, state_names[op->state]);
}

static int by_created_desc(const void *a, const void *b) {
  const qvmd_op *x = *(qvmd_op *const *)a, *y = *(qvmd_op *const *)b;
  return x->created_ms < y->created_ms ? 1 : x->created_ms > y->created_ms ? -1 : 0;
}

int qvmd_ops_init(char *msg, size_t size) {
  self_start = proc_start((long)getpid());
  char root[PATH_MAX - 64], path[PATH_MAX];
  if (state_root(root, sizeof root) < 0) {
    snprintf(msg, size, "cannot tell where the state dir is (QVM_STATE_DIR, HOME)");
    return -1;
  }
  if (private_dir(root, msg, size) < 0) return -1;
  snprintf(path, sizeof path, "%s/qvmd", root);
  if (private_dir(path, msg, size) < 0) return -1;
  snprintf(ops_dir, sizeof ops_dir, "%s/qvmd/operations", root);
  if (private_dir(ops_dir, msg, size) < 0) return -1;
  ops_ready = true;
  DIR *d = opendir(ops_dir);
  if (!d) {
    snprintf(msg, size, "cannot list '%s': %s", ops_dir, strerror(errno));
    return -1;
  }
  qvmd_op **list = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    const char *name = de->d_name;
    size_t len = strlen(name);
    char file[PATH_MAX + 300];
    snprintf(file, sizeof file, "%s/%s", ops_dir, name);
    if (name[0] == '.' && len > 4 && !strcmp(name + len - 4, ".tmp")) {
      unlink(file); /* a write that did not finish */
      continue;
    }
    if (len < 6 || strcmp(name + len - 5, ".json")) continue;
    qvmd_op *op = op_from_file(file);
    if (!op) {
      fprintf(stderr, "qvmd: ignoring '%s': not an operation record\n", file);
      continue;
    }
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      qvmd_op **l = realloc(list, cap * sizeof *l);
      if (!l) {
        op_free(op);
        break;
      }
      list = l;
    }
    list[n++] = op;
  }
  closedir(d);
  if (n) qsort(list, n, sizeof *list, by_created_desc);
  pthread_mutex_lock(&mu);
  for (size_t i = n; i-- > 0;) {
    qvmd_op *op = list[i];
    bool owner_alive = op->pid > 0 && op->pid_start && proc_start(op->pid) == op->pid_start &&
                       op->pid != (long)getpid();
    /* a qvmd that was stopping: a moment for it to be gone */
    for (int w = 0; owner_alive && op->owner_stopping && w < 100; w++) {
      usleep(100000);
      owner_alive = proc_start(op->pid) == op->pid_start;
    }
    if ((op->state == RUNNING || op->state == INTERRUPTED) && !owner_alive) reconcile(op, root);
    op->next = ops;
    ops = op;
  }
  trim();
  pthread_mutex_unlock(&mu);
  free(list);
  return 0;
}
