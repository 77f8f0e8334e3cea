/* SPDX-License-Identifier: MIT */
/* /mcp: the Model Context Protocol on the streamable HTTP transport, with
 * the messages served by tools/mcp/ (as `qvm mcp` serves them on stdio).
 * Stateless: no Mcp-Session-Id is minted (one sent is ignored), every POST
 * stands alone, GET is 405 (no stream the server starts). The caller is
 * the REST API's: an agent token gets the server `qvm mcp --agent ID`
 * would be, a read token only tools/list and the read-only tools.
 *
 * POST /mcp with one JSON-RPC message: a request is answered with
 * application/json, or with text/event-stream when it is a tools/call with
 * a progress token and the client accepts a stream (its progress frames,
 * then its answer); a notification or a response is 202. A tools/call runs
 * on its own thread, counted in --max-work; the connection's thread waits
 * for it and watches the socket: the client closing it, or posting
 * notifications/cancelled for its id, cancels it (it answers nothing and
 * removes what it made). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include <qvm/audit.h>

#include "http.h"
#include "mcp.h"

#define FRAMES_MAX 64      /* progress frames waiting to be sent; more are dropped */
#define WAIT_MS 200        /* how often a waiting thread looks at the socket */
#define KEEPALIVE_MS 15000 /* an SSE comment when nothing else was sent */
#define MCP_JSON "application/json"

typedef struct job {
  struct job *next; /* in `jobs` while it runs */
  pthread_mutex_t lock;
  pthread_cond_t changed;
  int refs; /* the worker's and the connection's */
  mcp_server srv;
  char agent[QVM_VM_AGENT_MAX + 1];
  qvmd_caller caller; /* for qvmd_work_end */
  qvmd_scope scope;
  char *id_text; /* the request's id as JSON: the key of notifications/cancelled */
  json_object *msg;
  mcp_call call;
  char *frames[FRAMES_MAX]; /* SSE frames to send, in order */
  size_t n_frames;
  char *reply; /* the answer's JSON text; NULL: none (cancelled) */
  bool done;
  /* the stream: the frame being sent and how far */
  char *sending;
  size_t sent;
  bool reply_queued;
  int64_t last_write_ms;
  int fd; /* the connection's socket */
} job;

static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static job *jobs;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *to_text(json_object *o) {
  return strdup(
      json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static void job_release(job *j) {
  pthread_mutex_lock(&j->lock);
  bool last = --j->refs == 0;
  pthread_mutex_unlock(&j->lock);
  if (!last) return;
  for (size_t i = 0; i < j->n_frames; i++) free(j->frames[i]);
  free(j->sending);
  free(j->reply);
  free(j->id_text);
  json_object_put(j->msg);
  pthread_mutex_destroy(&j->lock);
  pthread_cond_destroy(&j->changed);
  free(j);
}

/* notifications/progress from the tool: queued for the stream (a JSON
 * answer drops them). */
static void on_notify(void *ctx, json_object *msg) {
  job *j = ctx;
  char *text = to_text(msg);
  json_object_put(msg);
  pthread_mutex_lock(&j->lock);
  if (text && j->n_frames < FRAMES_MAX) {
    j->frames[j->n_frames++] = text;
    text = NULL;
    pthread_cond_broadcast(&j->changed);
  }
  pthread_mutex_unlock(&j->lock);
  free(text);
}

/* The job is over: out of `jobs`, out of the --max-work count. */
static void job_end(job *j) {
  qvmd_request req = {.caller = &j->caller};
  qvmd_work_end(&req);
  pthread_mutex_lock(&jobs_lock);
  for (job **p = &jobs; *p; p = &(*p)->next)
    if (*p == j) {
      *p = j->next;
      break;
    }
  pthread_mutex_unlock(&jobs_lock);
}

static void *work(void *arg) {
  job *j = arg;
  qvm_audit_set_thread_agent(j->srv.agent, NULL);
  json_object *reply = mcp_handle(&j->call, j->msg);
  char *text = reply ? to_text(reply) : NULL;
  json_object_put(reply);
  qvm_audit_set_thread_agent(NULL, NULL);
  job_end(j);
  pthread_mutex_lock(&j->lock);
  j->reply = text;
  j->done = true;
  pthread_cond_broadcast(&j->changed);
  pthread_mutex_unlock(&j->lock);
  job_release(j);
  return NULL;
}

/* Whether the client closed the connection (or it broke). */
static bool client_gone(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLRDHUP};
  return fd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Waits (j->lock held) up to WAIT_MS for the job to change. */
static void wait_a_while(job *j) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += WAIT_MS * 1000000L;
  ts.tv_sec += ts.tv_nsec / 1000000000L;
  ts.tv_nsec %= 1000000000L;
  pthread_cond_timedwait(&j->changed, &j->lock, &ts);
}

/* ---- replies ------------------------------------------------------------------------ */

static int reply_text(struct MHD_Connection *c, unsigned status, const char *content_type,
                      char *body) {
  qvmd_reply r = {.status = status, .body = body, .content_type = content_type};
  return qvmd_http_queue(c, &r);
}

static int reply_json(struct MHD_Connection *c, unsigned status, json_object *msg) {
  char *text = to_text(msg);
  json_object_put(msg);
  if (!text) return MHD_NO;
  return reply_text(c, status, MCP_JSON, text);
}

static int problem(struct MHD_Connection *c, unsigned status, const char *code, const char *what,
                   const char *allow) {
  qvmd_reply r = {0};
  qvmd_problem(&r, status, code, "%s", what);
  if (allow) snprintf(r.allow, sizeof r.allow, "%s", allow);
  return qvmd_http_queue(c, &r);
}

/* ---- the stream ------------------------------------------------------------------------ */

static char *sse_frame(const char *json) {
  size_t n = strlen(json) + 32;
  char *f = malloc(n);
  if (f) snprintf(f, n, "event: message\ndata: %s\n\n", json);
  return f;
}

/* The next bytes of the event stream: the progress frames as they come,
 * then the answer; a comment now and then to keep the connection. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  job *j = cls;
  pthread_mutex_lock(&j->lock);
  for (;;) {
    if (j->sending) {
      size_t n = strlen(j->sending + j->sent);
      if (n > max) n = max;
      memcpy(buf, j->sending + j->sent, n);
      j->sent += n;
      if (!j->sending[j->sent]) {
        free(j->sending);
        j->sending = NULL;
        j->sent = 0;
      }
      j->last_write_ms = now_ms();
      pthread_mutex_unlock(&j->lock);
      return (ssize_t)n;
    }
    if (j->n_frames) {
      j->sending = sse_frame(j->frames[0]);
      free(j->frames[0]);
      memmove(j->frames, j->frames + 1, --j->n_frames * sizeof *j->frames);
      if (!j->sending) break;
      continue;
    }
    if (j->done) {
      if (j->reply_queued || !j->reply) break; /* answered, or cancelled: the end */
      j->reply_queued = true;
      if (!(j->sending = sse_frame(j->reply))) break;
      continue;
    }
    if (now_ms() - j->last_write_ms >= KEEPALIVE_MS) {
      j->sending = strdup(": qvmd: the call is under way\n\n");
      if (!j->sending) break;
      continue;
    }
    wait_a_while(j);
    if (!j->done && client_gone(j->fd)) {
      mcp_cancel(&j->call);
      pthread_mutex_unlock(&j->lock);
      return MHD_CONTENT_READER_END_WITH_ERROR;
    }
  }
  pthread_mutex_unlock(&j->lock);
  return MHD_CONTENT_READER_END_OF_STREAM;
}

/* The stream is over (sent, or the client left): a call still running is
 * cancelled. */
static void stream_free(void *cls) {
  job *j = cls;
  pthread_mutex_lock(&j->lock);
  bool running = !j->done;
  pthread_mutex_unlock(&j->lock);
  if (running) mcp_cancel(&j->call);
  job_release(j);
}

/* ---- requests ------------------------------------------------------------------------ */

/* Whether "HOST[:PORT]" names this server: a loopback name, or the
 * address the connection came in on (ip: NULL on the UNIX socket). */
static bool host_is_ours(const char *hostport, const char *ip) {
  size_t n;
  if (hostport[0] == '[') {
    const char *close = strchr(hostport, ']');
    if (!close) return false;
    n = (size_t)(close - hostport) + 1;
  } else {
    n = strcspn(hostport, ":");
  }
  const char *port = hostport + n;
  if (*port && (*port != ':' || !port[1] || strspn(port + 1, "0123456789") != strlen(port + 1)))
    return false;
  static const char *const loopback[] = {"localhost", "127.0.0.1", "[::1]"};
  for (size_t i = 0; i < sizeof loopback / sizeof *loopback; i++)
    if (n == strlen(loopback[i]) && !strncasecmp(hostport, loopback[i], n)) return true;
  return ip && n == strlen(ip) && !strncmp(hostport, ip, n);
}

/* DNS rebinding: a web page elsewhere may not drive this server through a
 * browser. On TCP the Host must name this server (a loopback name or the
 * address it listens on), and an Origin header, when there is one, must
 * too (http or https, any port). */
static bool origin_allowed(struct MHD_Connection *c, int fd) {
  struct sockaddr_storage sa;
  socklen_t len = sizeof sa;
  char ip[INET_ADDRSTRLEN] = "";
  bool tcp = fd >= 0 && getsockname(fd, (struct sockaddr *)&sa, &len) == 0 &&
             sa.ss_family == AF_INET &&
             inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, ip, sizeof ip);
  const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
  if (tcp && (!host || !host_is_ours(host, ip))) return false;
  const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
  if (!origin) return true;
  const char *o = !strncmp(origin, "http://", 7)    ? origin + 7
                  : !strncmp(origin, "https://", 8) ? origin + 8
                                                    : NULL;
  return o && *o && !strchr(o, '/') && host_is_ours(o, tcp ? ip : NULL);
}

static bool accepts(struct MHD_Connection *c, const char *type) {
  const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
  return a && strcasestr(a, type);
}

/* notifications/cancelled: the caller's own call of that id, if running. */
static void cancel_job(const qvmd_caller *caller, json_object *id) {
  char *key = to_text(id);
  if (!key) return;
  pthread_mutex_lock(&jobs_lock);
  for (job *j = jobs; j; j = j->next)
    if (j->scope == caller->scope && !strcmp(j->agent, caller->agent ? caller->agent : "") &&
        j->caller.token == caller->token && j->caller.uid == caller->uid &&
        !strcmp(j->id_text, key))
      mcp_cancel(&j->call);
  pthread_mutex_unlock(&jobs_lock);
  free(key);
}

static int connection_fd(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  return ci ? ci->connect_fd : -1;
}

/* A tools/call (msg taken) on its own thread. */
static int start_call(struct MHD_Connection *c, const qvmd_caller *caller, const mcp_server *srv,
                      json_object *msg, const char *version, bool stream) {
  qvmd_request req = {.conn = c, .caller = caller};
  qvmd_reply busy = {0};
  if (!qvmd_work_begin(&busy, &req)) {
    json_object_put(msg);
    return qvmd_http_queue(c, &busy);
  }
  job *j = calloc(1, sizeof *j);
  json_object *id = NULL;
  json_object_object_get_ex(msg, "id", &id);
  if (!j || !(j->id_text = to_text(id))) {
    free(j);
    json_object_put(msg);
    qvmd_work_end(&req);
    return MHD_NO;
  }
  pthread_mutex_init(&j->lock, NULL);
  pthread_cond_init(&j->changed, NULL);
  j->refs = 2;
  j->msg = msg;
  j->scope = caller->scope;
  snprintf(j->agent, sizeof j->agent, "%s", caller->agent ? caller->agent : "");
  j->srv = *srv;
  j->srv.agent = caller->agent ? j->agent : NULL;
  j->caller.scope = caller->scope;
  j->caller.agent = j->srv.agent;
  j->caller.token = caller->token;
  j->caller.uid = caller->uid;
  j->fd = connection_fd(c);
  j->last_write_ms = now_ms();
  mcp_call_init(&j->call, &j->srv, on_notify, j);
  if (version && !strcmp(version, MCP_PROTOCOL_STATELESS)) /* a string of ours, not the header's */
    j->call.transport_version = MCP_PROTOCOL_STATELESS;
  pthread_mutex_lock(&jobs_lock);
  j->next = jobs;
  jobs = j;
  pthread_mutex_unlock(&jobs_lock);
  int err = mcp_thread_start(work, j);
  if (err) {
    job_end(j);
    job_release(j);
    job_release(j);
    return problem(c, 503, "Busy", "no thread for the call: try again", NULL);
  }
  if (stream) {
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, j, stream_free);
    if (!resp) {
      stream_free(j);
      return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    enum MHD_Result r = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    return r;
  }
  /* JSON: wait here, watching the socket. */
  pthread_mutex_lock(&j->lock);
  while (!j->done) {
    wait_a_while(j);
    if (!j->done && client_gone(j->fd)) mcp_cancel(&j->call);
  }
  char *reply = j->reply;
  j->reply = NULL;
  pthread_mutex_unlock(&j->lock);
  job_release(j);
  if (!reply) return MHD_NO; /* cancelled: no answer, the connection closes */
  return reply_text(c, 200, MCP_JSON, reply);
}

int qvmd_mcp_serve(struct MHD_Connection *c, const char *method, const char *body, size_t len,
                   bool too_big, const qvmd_caller *caller) {
  if (!origin_allowed(c, connection_fd(c)))
    return problem(c, 403, "Forbidden",
                   "this Host or Origin is not this server's: it may not use its MCP server", NULL);
  if (strcmp(method, "POST"))
    return problem(c, 405, "MethodNotAllowed",
                   "/mcp takes POST only (this server opens no stream of its own)", "POST");
  const char *version = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "MCP-Protocol-Version");
  if (version && !mcp_protocol_supported(version))
    return problem(c, 400, "BadRequest", "this MCP-Protocol-Version is not supported", NULL);
  if (too_big) return problem(c, 413, "TooLarge", "the body is over 1 MiB", NULL);
  if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT) &&
      !accepts(c, MCP_JSON) && !accepts(c, "*/*") && !accepts(c, "application/*"))
    return problem(c, 406, "NotAcceptable", "Accept must include application/json", NULL);
  json_object *error = NULL, *msg = mcp_parse(body, len, &error);
  if (!msg) return reply_json(c, 400, error);
  mcp_server srv = {.agent = caller->scope == QVMD_SCOPE_AGENT ? caller->agent : NULL,
                    .read_only = caller->scope == QVMD_SCOPE_READ};
  const char *m = NULL;
  json_object *target = mcp_cancel_target(msg);
  if (target) {
    cancel_job(caller, target);
    json_object_put(msg);
    return reply_text(c, 202, NULL, NULL);
  }
  /* The version in the body's _meta and the header's must agree. */
  const char *meta = mcp_meta_protocol(msg);
  if (version && meta && strcmp(version, meta)) {
    json_object_put(msg);
    return problem(c, 400, "BadRequest",
                   "MCP-Protocol-Version and the body's _meta name different versions", NULL);
  }
  if (mcp_is_request(msg, &m) && !strcmp(m, "tools/call")) {
    json_object *params = NULL, *meta_obj = NULL;
    bool progress = json_object_object_get_ex(msg, "params", &params) &&
                    json_object_object_get_ex(params, "_meta", &meta_obj) &&
                    json_object_object_get_ex(meta_obj, "progressToken", NULL);
    return start_call(c, caller, &srv, msg, version, progress && accepts(c, "text/event-stream"));
  }
  mcp_call call;
  mcp_call_init(&call, &srv, NULL, NULL);
  call.transport_version = version;
  json_object *reply = mcp_handle(&call, msg);
  bool request = json_object_object_get_ex(msg, "id", NULL);
  json_object_put(msg);
  if (!reply) return reply_text(c, 202, NULL, NULL); /* a notification or a response */
  /* an invalid message that is no request: 400 with the JSON-RPC error */
  return reply_json(c, request ? 200 : 400, reply);
}
