/* SPDX-License-Identifier: MIT */
/* The libmicrohttpd side: who is calling (SO_PEERCRED on the UNIX socket,
 * a bearer token on TCP), the body (capped, application/json only), the
 * route and its scope, and the response. libmicrohttpd runs one thread per
 * connection, so a libqvm call that blocks (start, stop, exec) holds up
 * only its own client. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include <qvm/audit.h>

#include "auth.h"
#include "http.h"

typedef struct pending {
  qvmd_caller caller;
  bool authorized;
  char *body;
  size_t len;
  bool too_big;
  size_t discarded; /* body bytes read past the cap */
} pending;

static atomic_int work_running, agent_work_running;
static int work_max = 16;

void qvmd_http_set_work_max(int n) { work_max = n; }

/* Agent tokens together get at most half of the slots (at least one): a
 * tenant's long execs can fill that half, never the operator's. */
static int agent_work_max(void) { return work_max / 2 > 0 ? work_max / 2 : 1; }

static bool is_agent(const qvmd_request *req) {
  return req && req->caller && req->caller->scope == QVMD_SCOPE_AGENT;
}

bool qvmd_work_begin(qvmd_reply *out, const qvmd_request *req) {
  bool agent = is_agent(req);
  if (agent && atomic_fetch_add(&agent_work_running, 1) >= agent_work_max()) {
    atomic_fetch_sub(&agent_work_running, 1);
    qvmd_problem(out, 503, "Busy", "agent tokens have %d operations under way already; try again",
                 agent_work_max());
    out->retry_after_s = 1;
    return false;
  }
  if (atomic_fetch_add(&work_running, 1) >= work_max) {
    atomic_fetch_sub(&work_running, 1);
    if (agent) atomic_fetch_sub(&agent_work_running, 1);
    qvmd_problem(out, 503, "Busy", "%d operations are under way already; try again", work_max);
    out->retry_after_s = 1;
    return false;
  }
  return true;
}

void qvmd_work_end(const qvmd_request *req) {
  atomic_fetch_sub(&work_running, 1);
  if (is_agent(req)) atomic_fetch_sub(&agent_work_running, 1);
}

static enum MHD_Result queue(struct MHD_Connection *c, qvmd_reply *r) {
  const char *body = r->body ? r->body : "";
  size_t len = strlen(body);
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(len, r->body ? r->body : (void *)"",
                                      r->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
  if (!resp) {
    free(r->body);
    r->body = NULL;
    return MHD_NO;
  }
  r->body = NULL; /* libmicrohttpd frees it */
  if (r->content_type) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
  if (r->location[0]) MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r->location);
  if (r->allow[0]) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
  if (r->retry_after_s > 0) {
    char s[16];
    snprintf(s, sizeof s, "%d", r->retry_after_s);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, s);
  }
  if (r->status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  enum MHD_Result ret = MHD_queue_response(c, r->status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* The caller on the UNIX socket: qvmd's own user or root, else 403. */
static bool unix_caller(qvmd_reply *out, struct MHD_Connection *c, qvmd_caller *caller) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (!ci || getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    qvmd_problem(out, 403, "Forbidden", "the caller's credentials cannot be read");
    return false;
  }
  if (cred.uid != 0 && cred.uid != geteuid()) {
    qvmd_problem(out, 403, "Forbidden", "uid %u may not use this qvmd (it serves uid %u and root)",
                 (unsigned)cred.uid, (unsigned)geteuid());
    return false;
  }
  caller->scope = QVMD_SCOPE_FULL;
  caller->agent = NULL;
  return true;
}

/* The caller on TCP: "Authorization: Bearer SECRET", else 401; within its
 * rate, else 429. */
static bool tcp_caller(qvmd_reply *out, struct MHD_Connection *c, qvmd_caller *caller) {
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (!h) {
    qvmd_problem(out, 401, "Unauthorized", "this request needs 'Authorization: Bearer TOKEN'");
    return false;
  }
  const qvmd_token *t = NULL;
  if (strncasecmp(h, "Bearer ", 7) == 0) t = qvmd_token_find(h + 7);
  if (!t) {
    qvmd_problem(out, 401, "Unauthorized", "the bearer token is not valid");
    return false;
  }
  if (!qvmd_token_admit(t)) {
    qvmd_problem(out, 429, "RateLimited", "this token's request rate is over its limit");
    out->retry_after_s = 1;
    return false;
  }
  qvmd_token_caller(caller, t);
  return true;
}

static bool content_type_json(const char *ct) {
  if (!ct) return false;
  size_t n = strlen("application/json");
  return strncasecmp(ct, "application/json", n) == 0 &&
         (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* The first call for a request: its headers. A reply here (401, 403,
 * 413, 415, 429) goes out before any body is read. */
static bool check_headers(qvmd_reply *out, struct MHD_Connection *c, bool tcp, pending *p) {
  if (!(tcp ? tcp_caller(out, c, &p->caller) : unix_caller(out, c, &p->caller))) return false;
  const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  const char *te =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
  if (cl && strtoull(cl, NULL, 10) > QVMD_BODY_MAX) {
    qvmd_problem(out, 413, "TooLarge", "the body is over %u bytes", QVMD_BODY_MAX);
    return false;
  }
  bool has_body = (cl && strtoull(cl, NULL, 10) > 0) || te;
  const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
  if (has_body && !content_type_json(ct)) {
    qvmd_problem(out, 415, "UnsupportedMediaType", "a body must be application/json");
    return false;
  }
  return true;
}

static void dispatch(qvmd_reply *out, struct MHD_Connection *c, const char *url, const char *method,
                     pending *p) {
  qvmd_request req = {.conn = c, .method = method, .path = url, .caller = &p->caller};
  char params[512], allow[64];
  unsigned status = 404;
  if (p->too_big) {
    qvmd_problem(out, 413, "TooLarge", "the body is over %u bytes", QVMD_BODY_MAX);
    return;
  }
  const qvmd_route *r =
      qvmd_route_find(method, url, &req, params, sizeof params, &status, allow, sizeof allow);
  bool agent = p->caller.scope == QVMD_SCOPE_AGENT;
  if (r && agent && !(r->flags & (QVMD_ROUTE_AGENT | QVMD_ROUTE_ANYONE))) r = NULL, status = 404;
  if (!r && (status == 404 || agent)) {
    qvmd_problem(out, 404, "NotFound", "no such resource");
    return;
  }
  if (!r) {
    qvmd_problem(out, 405, "MethodNotAllowed", "this resource takes %s", allow);
    snprintf(out->allow, sizeof out->allow, "%s", allow);
    return;
  }
  if ((r->flags & QVMD_ROUTE_WRITE) && p->caller.scope == QVMD_SCOPE_READ) {
    qvmd_problem(out, 403, "Forbidden", "a read token may not %s %s", method, url);
    return;
  }
  req.body = p->body ? p->body : "";
  req.body_len = p->len;
  req.alias = strncmp(url, "/api/v1/", 8) != 0;
  /* The audit records of an agent token's request name its agent. */
  qvm_audit_set_thread_agent(p->caller.agent, NULL);
  r->handler(out, &req);
  qvm_audit_set_thread_agent(NULL, NULL);
  if (!out->body) qvmd_problem(out, 500, "Internal", "the handler gave no reply");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
  (void)version;
  const qvmd_listener *l = cls;
  pending *p = *con_cls;
  qvmd_reply out = {0};
  if (!p) {
    if (!(p = calloc(1, sizeof *p))) return MHD_NO;
    *con_cls = p;
    if (!check_headers(&out, c, l->tcp, p)) return queue(c, &out);
    return MHD_YES;
  }
  if (*upload_data_size) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (p->too_big || p->len + n > QVMD_BODY_MAX) {
      /* Read on to the end to answer 413 (a chunked body has no length to
       * refuse it by), but not forever: past 16 times the cap the
       * connection is dropped. */
      p->too_big = true;
      free(p->body);
      p->body = NULL;
      p->len = 0;
      p->discarded += n;
      return p->discarded > 16 * (size_t)QVMD_BODY_MAX ? MHD_NO : MHD_YES;
    }
    char *b = realloc(p->body, p->len + n + 1);
    if (!b) return MHD_NO;
    memcpy(b + p->len, upload_data, n);
    p->body = b;
    p->len += n;
    b[p->len] = '\0';
    return MHD_YES;
  }
  if (!strcmp(url, QVMD_MCP_PATH)) /* MCP: not a REST route (mcp.c) */
    return (enum MHD_Result)qvmd_mcp_serve(c, method, p->body ? p->body : "", p->len, p->too_big,
                                           &p->caller);
  dispatch(&out, c, url, method, p);
  return queue(c, &out);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)cls, (void)c, (void)toe;
  pending *p = *con_cls;
  if (!p) return;
  free(p->body);
  free(p);
  *con_cls = NULL;
}

/* For mcp.c, which answers /mcp itself. */
int qvmd_http_queue(struct MHD_Connection *c, qvmd_reply *r) { return queue(c, r); }

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decoding of the path and query in place, as libmicrohttpd's own
 * does, except that "%00" stays as it is: a NUL would end the C string, so
 * "/vms/a%00b" would act on "a". Left undecoded, it is a name that fails
 * its check. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s) {
  (void)cls, (void)c;
  char *w = s;
  for (const char *r = s; *r;) {
    int hi, lo;
    if (r[0] == '%' && (hi = hex_value(r[1])) >= 0 && (lo = hex_value(r[2])) >= 0 && (hi || lo)) {
      *w++ = (char)(hi << 4 | lo);
      r += 3;
    } else {
      *w++ = *r++;
    }
  }
  *w = '\0';
  return (size_t)(w - s);
}

struct MHD_Daemon *qvmd_http_start(const qvmd_listener *l, int fd, const qvmd_http_limits *lim) {
  /* On TCP, one address may not take every connection (the UNIX socket
   * has no address to tell callers apart by). */
  unsigned per_ip = l->tcp ? lim->max_connections_per_ip : 0;
  return MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
          MHD_USE_ERROR_LOG,
      0, NULL, NULL, on_request, (void *)l, MHD_OPTION_LISTEN_SOCKET, fd,
      MHD_OPTION_CONNECTION_TIMEOUT, lim->timeout_s, MHD_OPTION_CONNECTION_LIMIT,
      lim->max_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64u << 10),
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, MHD_OPTION_END);
}
