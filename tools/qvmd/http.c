/* SPDX-License-Identifier: MIT */
/* The libmicrohttpd side: who is calling (SO_PEERCRED on the UNIX socket,
 * a bearer token on TCP), the body (capped, application/json only), the
 * route and its scope, and the response. libmicrohttpd runs one thread per
 * connection, so a libqvm call that blocks (start, stop, exec) holds up
 * only its own client. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>

#include <qvm/audit.h>

#include "auth.h"
#include "http.h"

typedef struct pending {
  qvmd_caller caller;
  int64_t peer_uid; /* a group member on the UNIX socket, else -1 */
  bool authorized;
  char *body;
  size_t len;
  bool too_big;
  size_t discarded; /* body bytes read past the cap */
  /* a QVMD_ROUTE_UPLOAD route: the body goes to upload_fd */
  bool upload, agent_upload;
  int upload_fd;
  char upload_dir[96], upload_path[128];
  bool web; /* a file of the page (web.c): no token, no body */
} pending;

/* Uploads being received at once: each may fill QVMD_UPLOAD_MAX of the
 * temp directory's file system. */
#define UPLOADS_MAX 8
static atomic_int uploads_running, agent_uploads_running;

static atomic_int work_running, agent_work_running, read_work_running;
static int work_max = 16;

void qvmd_http_set_work_max(int n) { work_max = n; }

/* Agent tokens together get at most half of the slots (at least one), and
 * so do read tokens (their downloads and reads can be long too): a
 * tenant's long execs, or a reader's, can fill that half, never the
 * operator's. */
static int agent_work_max(void) { return work_max / 2 > 0 ? work_max / 2 : 1; }

static atomic_int *half_counter(const qvmd_request *req) {
  if (!req || !req->caller) return NULL;
  if (req->caller->scope == QVMD_SCOPE_AGENT) return &agent_work_running;
  if (req->caller->scope == QVMD_SCOPE_READ) return &read_work_running;
  return NULL;
}

bool qvmd_work_begin(qvmd_reply *out, const qvmd_request *req) {
  atomic_int *half = half_counter(req);
  if (half && atomic_fetch_add(half, 1) >= agent_work_max()) {
    atomic_fetch_sub(half, 1);
    qvmd_problem(out, 503, "Busy", "%s tokens have %d operations under way already; try again",
                 half == &agent_work_running ? "agent" : "read", agent_work_max());
    out->retry_after_s = 1;
    return false;
  }
  if (atomic_fetch_add(&work_running, 1) >= work_max) {
    atomic_fetch_sub(&work_running, 1);
    if (half) atomic_fetch_sub(half, 1);
    qvmd_problem(out, 503, "Busy", "%d operations are under way already; try again", work_max);
    out->retry_after_s = 1;
    return false;
  }
  return true;
}

void qvmd_work_end(const qvmd_request *req) {
  atomic_fetch_sub(&work_running, 1);
  atomic_int *half = half_counter(req);
  if (half) atomic_fetch_sub(half, 1);
}

typedef struct stream {
  qvmd_stream_read_fn read;
  qvmd_stream_free_fn free;
  void *cls;
} stream;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  stream *st = cls;
  long n = st->read(st->cls, buf, max);
  if (n == QVMD_STREAM_END) return MHD_CONTENT_READER_END_OF_STREAM;
  if (n <= 0) return MHD_CONTENT_READER_END_WITH_ERROR; /* 0 would spin */
  return (ssize_t)n;
}

static void stream_free(void *cls) {
  stream *st = cls;
  if (st->free) st->free(st->cls);
  free(st);
}

int qvmd_stream_wait(struct MHD_Connection *conn, int fd, int timeout_ms) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN},
                          {.fd = ci ? ci->connect_fd : -1, .events = POLLRDHUP}};
  for (;;) {
    int n = poll(pfd, 2, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) return 0;
    if (pfd[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return -1;
    return 1;
  }
}

bool qvmd_accepts(const qvmd_request *req, const char *media_type) {
  const char *h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
  size_t n = strlen(media_type);
  for (const char *p = h; p && *p;) {
    p += strspn(p, " \t,");
    if (strncasecmp(p, media_type, n) == 0 && strchr(" \t;,", p[n])) return true;
    p += strcspn(p, ",");
  }
  return false;
}

static struct MHD_Response *stream_response(qvmd_reply *r) {
  stream *st = calloc(1, sizeof *st);
  struct MHD_Response *resp = NULL;
  if (st) {
    *st = (stream){.read = r->stream_read, .free = r->stream_free, .cls = r->stream_cls};
    resp = MHD_create_response_from_callback(r->stream_size ? r->stream_size : MHD_SIZE_UNKNOWN,
                                             32u << 10, stream_read, st, stream_free);
  }
  if (!resp) {
    free(st);
    if (r->stream_free) r->stream_free(r->stream_cls);
  }
  r->stream_read = NULL, r->stream_free = NULL, r->stream_cls = NULL;
  return resp;
}

static enum MHD_Result queue(struct MHD_Connection *c, qvmd_reply *r) {
  struct MHD_Response *resp;
  if (r->stream_read) {
    free(r->body);
    r->body = NULL;
    if (r->stream_timeout_s)
      MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, r->stream_timeout_s);
    if (!(resp = stream_response(r))) return MHD_NO;
  } else {
    const char *body = r->body ? r->body : "";
    size_t len = r->body && r->body_len ? r->body_len : strlen(body);
    resp =
        MHD_create_response_from_buffer(len, r->body ? r->body : (void *)"",
                                        r->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
      free(r->body);
      r->body = NULL;
      return MHD_NO;
    }
    r->body = NULL; /* libmicrohttpd frees it */
  }
  if (r->content_type) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
  if (r->location[0]) MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r->location);
  if (r->allow[0]) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
  if (r->preference_applied) MHD_add_response_header(resp, "Preference-Applied", "respond-async");
  if (r->retry_after_s > 0) {
    char s[16];
    snprintf(s, sizeof s, "%d", r->retry_after_s);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, s);
  }
  if (r->status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  if (r->web) {
    /* the page's files: only its own scripts and styles, never framed,
     * no referrer (a token never travels in a URL, but neither does the
     * page's address) */
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'self'; base-uri 'none'; form-action 'self'; "
                            "frame-ancestors 'none'");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
  }
  enum MHD_Result ret = MHD_queue_response(c, r->status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* Whether the peer on fd (whose effective gid the kernel gave as gid) is in
 * group: that gid, or one of the supplementary groups it had when it
 * connected (SO_PEERGROUPS: the kernel's record, not the group database's
 * say). More than 256 groups, or a kernel without it: only the gid counts. */
static bool peer_in_group(int fd, gid_t gid, gid_t group) {
  if (gid == group) return true;
  gid_t groups[256];
  socklen_t len = sizeof groups;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) return false;
  for (size_t i = 0; i < len / sizeof groups[0]; i++)
    if (groups[i] == group) return true;
  return false;
}

/* The caller on the UNIX socket: qvmd's own user or root (full), a member
 * of --socket-group (its scope), else 403. */
static bool unix_caller(qvmd_reply *out, struct MHD_Connection *c, const qvmd_listener *l,
                        pending *p) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (!ci || getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    qvmd_problem(out, 403, "Forbidden", "the caller's credentials cannot be read");
    return false;
  }
  p->caller.agent = NULL;
  p->caller.token = NULL;
  p->caller.uid = (int64_t)cred.uid;
  p->peer_uid = -1;
  if (cred.uid == 0 || cred.uid == geteuid()) {
    p->caller.scope = QVMD_SCOPE_FULL;
    return true;
  }
  if (l->group_set && peer_in_group(ci->connect_fd, cred.gid, l->group)) {
    p->caller.scope = l->group_scope;
    p->peer_uid = (int64_t)cred.uid;
    return true;
  }
  qvmd_problem(out, 403, "Forbidden", "uid %u may not use this qvmd (it serves uid %u, root%s)",
               (unsigned)cred.uid, (unsigned)geteuid(),
               l->group_set ? " and its socket group's members" : "");
  return false;
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

static bool content_type_is(const char *ct, const char *type) {
  if (!ct) return false;
  size_t n = strlen(type);
  return strncasecmp(ct, type, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* An upload route's body file: a 0600 file in a 0700 directory of its own. */
static bool upload_open(qvmd_reply *out, pending *p) {
  /* Agent tokens together get at most half of the slots, as with work. */
  bool agent = p->caller.scope == QVMD_SCOPE_AGENT;
  if (agent && atomic_fetch_add(&agent_uploads_running, 1) >= UPLOADS_MAX / 2) {
    atomic_fetch_sub(&agent_uploads_running, 1);
    qvmd_problem(out, 503, "Busy", "agent tokens have %d uploads under way already; try again",
                 UPLOADS_MAX / 2);
    out->retry_after_s = 1;
    return false;
  }
  p->agent_upload = agent;
  if (atomic_fetch_add(&uploads_running, 1) >= UPLOADS_MAX) {
    atomic_fetch_sub(&uploads_running, 1);
    if (agent) atomic_fetch_sub(&agent_uploads_running, 1);
    p->agent_upload = false;
    qvmd_problem(out, 503, "Busy", "%d uploads are under way already; try again", UPLOADS_MAX);
    out->retry_after_s = 1;
    return false;
  }
  p->upload = true;
  const char *tmp = getenv("TMPDIR");
  if (!tmp || tmp[0] != '/' || strlen(tmp) > 64) tmp = "/tmp";
  snprintf(p->upload_dir, sizeof p->upload_dir, "%s/qvmd-upload-XXXXXX", tmp);
  if (!mkdtemp(p->upload_dir)) {
    p->upload_dir[0] = '\0';
    qvmd_problem(out, 500, "ESYS", "cannot make a temp directory for the upload");
    return false;
  }
  snprintf(p->upload_path, sizeof p->upload_path, "%s/body", p->upload_dir);
  p->upload_fd =
      open(p->upload_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, S_IRUSR | S_IWUSR);
  if (p->upload_fd < 0) {
    qvmd_problem(out, 500, "ESYS", "cannot make a temp file for the upload");
    return false;
  }
  return true;
}

/* The first call for a request: its headers. A reply here (401, 403,
 * 413, 415, 429) goes out before any body is read. */
static bool check_headers(qvmd_reply *out, struct MHD_Connection *c, const qvmd_listener *l,
                          pending *p, const char *url, const char *method) {
  p->peer_uid = -1;
  if (!(l->tcp ? tcp_caller(out, c, &p->caller) : unix_caller(out, c, l, p))) return false;
  /* A route that takes a raw body (files) has its own cap and type; its
   * scope is checked now, before the body is stored. */
  qvmd_request req = {0};
  char params[512], allow[64];
  unsigned status = 404;
  const qvmd_route *r =
      qvmd_route_find(method, url, &req, params, sizeof params, &status, allow, sizeof allow);
  bool upload = r && (r->flags & QVMD_ROUTE_UPLOAD);
  if (upload && p->caller.scope == QVMD_SCOPE_AGENT && !(r->flags & QVMD_ROUTE_AGENT)) {
    qvmd_problem(out, 404, "NotFound", "no such resource");
    return false;
  }
  if (upload && p->caller.scope == QVMD_SCOPE_READ) {
    qvmd_problem(out, 403, "Forbidden", "a read token may not %s %s", method, url);
    return false;
  }
  if (upload) {
    /* The VM must be one the caller may write to before a byte is stored:
     * else an agent could fill the upload slots and the disk with bodies
     * for other tenants' sandboxes, each refused only once it arrived. */
    req.conn = c;
    req.method = method;
    req.path = url;
    req.caller = &p->caller;
    struct qvm_vm *vm = qvmd_sandbox_open(out, &req, !strncmp(url, "/api/v1/sandboxes/", 18));
    if (!vm) return false;
    qvm_vm_free(vm);
  }
  unsigned cap = upload ? QVMD_UPLOAD_MAX : QVMD_BODY_MAX;
  const char *type = upload ? "application/octet-stream" : "application/json";
  const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  const char *te =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
  if (cl && strtoull(cl, NULL, 10) > cap) {
    qvmd_problem(out, 413, "TooLarge", "the body is over %u bytes", cap);
    return false;
  }
  bool has_body = (cl && strtoull(cl, NULL, 10) > 0) || te;
  const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
  if (has_body && !content_type_is(ct, type)) {
    qvmd_problem(out, 415, "UnsupportedMediaType", "a body must be %s", type);
    return false;
  }
  return upload ? upload_open(out, p) : true;
}

static void dispatch(qvmd_reply *out, struct MHD_Connection *c, const char *url, const char *method,
                     pending *p) {
  qvmd_request req = {.conn = c, .method = method, .path = url, .caller = &p->caller};
  char params[512], allow[64];
  unsigned status = 404;
  if (p->too_big) {
    qvmd_problem(out, 413, "TooLarge", "the body is over %u bytes",
                 p->upload ? QVMD_UPLOAD_MAX : QVMD_BODY_MAX);
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
  if (p->upload) {
    if (p->upload_fd >= 0 && close(p->upload_fd) < 0) {
      p->upload_fd = -1;
      qvmd_problem(out, 500, "ESYS", "cannot write the upload's temp file");
      return;
    }
    p->upload_fd = -1;
    req.upload_path = p->upload_path;
  }
  /* The audit records of an agent token's request name its agent. */
  qvm_audit_set_thread_agent(p->caller.agent, NULL);
  qvm_audit_set_thread_peer(p->peer_uid); /* a --socket-group member: named as actor.peer */
  r->handler(out, &req);
  qvm_audit_set_thread_agent(NULL, NULL);
  qvm_audit_set_thread_peer(-1);
  if (!out->body && !out->stream_read)
    qvmd_problem(out, 500, "Internal", "the handler gave no reply");
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
    p->upload_fd = -1;
    *con_cls = p;
    if (qvmd_web_path(url)) {
      /* The page's files hold no data: no token. No body either. */
      p->web = true;
      const char *cl =
          MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
      if ((cl && strtoull(cl, NULL, 10) > 0) ||
          MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        out.web = true;
        qvmd_problem(&out, 413, "TooLarge", "the page's files take no body");
        return queue(c, &out);
      }
      return MHD_YES;
    }
    if (!check_headers(&out, c, l, p, url, method)) return queue(c, &out);
    return MHD_YES;
  }
  if (*upload_data_size && p->upload && !p->too_big) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (p->len + n > QVMD_UPLOAD_MAX) {
      p->too_big = true;
      p->discarded += n;
      return MHD_YES;
    }
    if (p->upload_fd < 0) return MHD_NO;
    for (size_t off = 0; off < n;) {
      ssize_t w = write(p->upload_fd, upload_data + off, n - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return MHD_NO; /* a full disk: the connection is dropped */
      off += (size_t)w;
    }
    p->len += n;
    return MHD_YES;
  }
  if (p->web) {
    if (*upload_data_size) return MHD_NO; /* refused above; never read */
    qvmd_web_serve(&out, method, url);
    return queue(c, &out);
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
  if (p->upload) {
    if (p->upload_fd >= 0) close(p->upload_fd);
    if (p->upload_path[0]) unlink(p->upload_path);
    if (p->upload_dir[0]) rmdir(p->upload_dir);
    atomic_fetch_sub(&uploads_running, 1);
    if (p->agent_upload) atomic_fetch_sub(&agent_uploads_running, 1);
  }
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
  bool tls = l->tcp && l->tls_cert;
  /* TLS 1.2 and 1.3 only, GnuTLS's secure defaults otherwise. A listener
   * without TLS passes no certificate options (libmicrohttpd ignores the
   * priorities then; MHD_OPTION_END before them ends the list). */
  return MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
          MHD_USE_ERROR_LOG | (tls ? MHD_USE_TLS : 0),
      0, NULL, NULL, on_request, (void *)l, MHD_OPTION_LISTEN_SOCKET, fd,
      MHD_OPTION_CONNECTION_TIMEOUT, lim->timeout_s, MHD_OPTION_CONNECTION_LIMIT,
      lim->max_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64u << 10),
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END,
      l->tls_cert, MHD_OPTION_HTTPS_MEM_KEY, l->tls_key, MHD_OPTION_HTTPS_PRIORITIES,
      "SECURE256:+SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2", MHD_OPTION_END);
}
