/* SPDX-License-Identifier: MIT */
/*
 * QMP connection: greeting, capabilities negotiation, commands matched by id,
 * the event queue, and every wait bounded by a deadline. The byte-level
 * framing lives in qmp_reader.c; this file owns the socket.
 */
#include "qmp/qmp.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "qmp/qmp_reader.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/time.h"

#define QMP_READ_CHUNK 65536
#define QMP_ID_PREFIX "qvm-"
/* Replies to commands that timed out are dropped when they come late. */
#define QMP_ABANDONED_MAX 32
/* next_event reads at most this many chunks per call, so a flood of events
 * cannot keep it from returning. */
#define QMP_POLL_READS_MAX 16

typedef struct qmp_event {
  struct qmp_event *next;
  struct json_object *obj;
} qmp_event;

struct qvm_qmp {
  int fd;
  qvm_qmp_options opts;
  qmp_reader *reader;
  char *version;
  struct json_object *capabilities;
  uint64_t next_id;
  uint64_t abandoned[QMP_ABANDONED_MAX];
  size_t abandoned_next;
  qmp_event *head, *tail;
  size_t nevents;
  size_t dropped;
  bool eof; /* the peer closed its end; buffered lines may remain */
  int broken_code;
  char *broken; /* first fatal error; later calls fail fast with it */
  char chunk[QMP_READ_CHUNK];
};

QVM_DEFINE_CLEANUP(qvm_qmp, qvm_qmp_free)

/* What one pump of the connection is waiting for. */
typedef struct qmp_wait {
  bool greeting;             /* the greeting, before anything else */
  uint64_t reply_id;         /* 0: no command outstanding */
  const char *event;         /* event name wanted, or NULL */
  bool any_event;            /* any event ends the wait */
  struct json_object *found; /* the greeting, reply or event that ended it */
} qmp_wait;

/* ---- fatal errors ------------------------------------------------------ */

/* Latches e as the connection's fatal error and hands it to the caller. */
static int qmp_latch(qvm_qmp *qmp, qvm_error **err, qvm_error *e) {
  if (!qmp->broken) {
    qmp->broken = strdup(qvm_error_message(e));
    qmp->broken_code = qvm_error_code(e);
  }
  return qvm_error_propagate(err, e);
}

QVM_PRINTF(4, 5)
static int qmp_fail(qvm_qmp *qmp, qvm_error **err, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
  va_end(ap);
  qvm_error *e = NULL;
  qvm_error_set(&e, code, "%s", msg ? msg : "qmp connection failed");
  free(msg);
  return qmp_latch(qmp, err, e);
}

static int qmp_check_usable(const qvm_qmp *qmp, qvm_error **err) {
  if (!qmp->broken) return 0;
  return qvm_error_set(err, qmp->broken_code ? qmp->broken_code : QVM_EPROTO,
                       "qmp connection is unusable after an earlier error: %s",
                       qmp->broken ? qmp->broken : "unknown");
}

/* ---- low-level I/O ------------------------------------------------------ */

/* Waits for `events` on the socket. Returns 1 when ready, 0 at the deadline. */
static int qmp_poll(qvm_qmp *qmp, short events, int64_t deadline, qvm_error **err) {
  for (;;) {
    struct pollfd p = {.fd = qmp->fd, .events = events};
    int n = poll(&p, 1, qvm_deadline_left_ms(deadline));
    if (n > 0) return 1;
    if (n == 0) return 0;
    if (errno != EINTR)
      return qmp_fail(qmp, err, QVM_ESYS, "cannot poll the qmp socket: %s", strerror(errno));
  }
}

static ssize_t qmp_sendmsg(int sock, const char *buf, size_t len, int pass_fd) {
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  if (pass_fd >= 0) {
    memset(&control, 0, sizeof(control));
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof(control.buf);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  }
  return sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Sends a whole command line; pass_fd (if >= 0) rides on the first byte. A
 * deadline before the first byte leaves the connection usable; after it the
 * stream is torn, so that is fatal. */
static int qmp_send(qvm_qmp *qmp, const char *buf, size_t len, int pass_fd, const char *command,
                    int64_t deadline, qvm_error **err) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = qmp_sendmsg(qmp->fd, buf + off, len - off, off == 0 ? pass_fd : -1);
    if (n > 0) {
      off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int r = qmp_poll(qmp, POLLOUT, deadline, err);
      if (r < 0) return r;
      if (r == 0 && off == 0)
        return qvm_error_set(err, QVM_ETIMEOUT, "qmp command '%s' could not be sent in time",
                             command);
      if (r == 0)
        return qmp_fail(qmp, err, QVM_ETIMEOUT, "qmp command '%s' was only partly sent in time",
                        command);
      continue;
    }
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
      return qmp_fail(qmp, err, QVM_EPROTO, "qemu closed the qmp connection");
    return qmp_fail(qmp, err, QVM_ESYS, "cannot send qmp command '%s': %s", command,
                    strerror(n < 0 ? errno : EIO));
  }
  return 0;
}

/* Reads what is available into the reader. Returns 1 if bytes (or EOF)
 * arrived, 0 if nothing came before the deadline. */
static int qmp_read_some(qvm_qmp *qmp, int64_t deadline, qvm_error **err) {
  for (;;) {
    ssize_t n = read(qmp->fd, qmp->chunk, sizeof(qmp->chunk));
    if (n > 0) {
      qvm_error *e = NULL;
      if (qmp_reader_feed(qmp->reader, qmp->chunk, (size_t)n, &e) < 0)
        return qmp_latch(qmp, err, e);
      return 1;
    }
    if (n == 0) {
      qmp->eof = true;
      return 1;
    }
    if (errno == EINTR) continue;
    if (errno == ECONNRESET) {
      qmp->eof = true;
      return 1;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return qmp_fail(qmp, err, QVM_ESYS, "cannot read the qmp socket: %s", strerror(errno));
    int r = qmp_poll(qmp, POLLIN, deadline, err);
    if (r <= 0) return r;
  }
}

/* ---- messages ----------------------------------------------------------- */

static void qmp_queue_event(qvm_qmp *qmp, struct json_object *obj) {
  qmp_event *ev = malloc(sizeof(*ev));
  if (!ev) {
    /* Losing one event beats failing the command whose reply follows. */
    qmp->dropped++;
    json_object_put(obj);
    return;
  }
  ev->next = NULL;
  ev->obj = obj;
  if (qmp->tail)
    qmp->tail->next = ev;
  else
    qmp->head = ev;
  qmp->tail = ev;
  if (++qmp->nevents <= qmp->opts.max_events) return;
  qmp_event *old = qmp->head;
  qmp->head = old->next;
  json_object_put(old->obj);
  free(old);
  qmp->nevents--;
  qmp->dropped++;
}

static const char *json_string_member(struct json_object *obj, const char *key) {
  struct json_object *v = NULL;
  if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
    return NULL;
  return json_object_get_string(v);
}

/* "qvm-17" -> 17; 0 for anything this client did not send. */
static uint64_t qmp_parse_id(struct json_object *id) {
  if (!json_object_is_type(id, json_type_string)) return 0;
  const char *s = json_object_get_string(id);
  size_t len = (size_t)json_object_get_string_len(id);
  size_t plen = strlen(QMP_ID_PREFIX);
  if (len <= plen || len > plen + 20 || strncmp(s, QMP_ID_PREFIX, plen) != 0) return 0;
  uint64_t v = 0;
  for (size_t i = plen; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    uint64_t d = (uint64_t)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return 0;
    v = v * 10 + d;
  }
  return v;
}

static bool qmp_take_abandoned(qvm_qmp *qmp, uint64_t id) {
  for (size_t i = 0; i < QMP_ABANDONED_MAX; i++) {
    if (id != 0 && qmp->abandoned[i] == id) {
      qmp->abandoned[i] = 0;
      return true;
    }
  }
  return false;
}

static void qmp_abandon(qvm_qmp *qmp, uint64_t id) {
  qmp->abandoned[qmp->abandoned_next] = id;
  qmp->abandoned_next = (qmp->abandoned_next + 1) % QMP_ABANDONED_MAX;
}

size_t qvm_qmp_abandoned_pending(const qvm_qmp *qmp) {
  size_t n = 0;
  for (size_t i = 0; qmp && i < QMP_ABANDONED_MAX; i++) n += qmp->abandoned[i] != 0;
  return n;
}

static int qmp_dispatch_reply(qvm_qmp *qmp, struct json_object *msg, qmp_wait *w, qvm_error **err) {
  struct json_object *idv = NULL;
  if (!json_object_object_get_ex(msg, "id", &idv)) {
    _cleanup_(qmp_json_putp) struct json_object *owned = msg;
    struct json_object *e = NULL;
    const char *desc =
        json_object_object_get_ex(owned, "error", &e) ? json_string_member(e, "desc") : NULL;
    if (desc)
      return qmp_fail(qmp, err, QVM_EPROTO, "qmp reply has no id (qemu said: %.200s)", desc);
    return qmp_fail(qmp, err, QVM_EPROTO, "qmp reply has no id");
  }
  uint64_t id = qmp_parse_id(idv);
  if (id != 0 && id == w->reply_id) {
    w->found = msg;
    return 1;
  }
  if (qmp_take_abandoned(qmp, id)) {
    json_object_put(msg);
    return 0;
  }
  char shown[64];
  snprintf(shown, sizeof(shown), "%.40s", json_object_to_json_string(idv));
  json_object_put(msg);
  return qmp_fail(qmp, err, QVM_EPROTO, "qmp reply has unknown id %s", shown);
}

static int qmp_dispatch_event(qvm_qmp *qmp, struct json_object *msg, qmp_wait *w, qvm_error **err) {
  const char *name = json_string_member(msg, "event");
  if (!name) {
    json_object_put(msg);
    return qmp_fail(qmp, err, QVM_EPROTO, "qmp event has no name");
  }
  if (w->any_event || (w->event && strcmp(name, w->event) == 0)) {
    w->found = msg;
    return 1;
  }
  qmp_queue_event(qmp, msg);
  return 0;
}

/* Routes one message; takes ownership of msg. Returns 1 if it ends the wait. */
static int qmp_dispatch(qvm_qmp *qmp, struct json_object *msg, qmp_wait *w, qvm_error **err) {
  if (json_object_object_get_ex(msg, "QMP", NULL)) {
    if (w->greeting) {
      w->found = msg;
      return 1;
    }
    json_object_put(msg);
    return qmp_fail(qmp, err, QVM_EPROTO, "unexpected qmp greeting in the middle of a session");
  }
  if (w->greeting) {
    json_object_put(msg);
    return qmp_fail(qmp, err, QVM_EPROTO, "qmp peer did not start with a greeting");
  }
  if (json_object_object_get_ex(msg, "event", NULL)) return qmp_dispatch_event(qmp, msg, w, err);
  if (json_object_object_get_ex(msg, "return", NULL) ||
      json_object_object_get_ex(msg, "error", NULL))
    return qmp_dispatch_reply(qmp, msg, w, err);
  json_object_put(msg);
  return qmp_fail(qmp, err, QVM_EPROTO, "qmp message is neither a reply nor an event");
}

/* Takes every complete buffered message. Returns 1 once the wait is over. */
static int qmp_drain(qvm_qmp *qmp, qmp_wait *w, qvm_error **err) {
  while (qmp_reader_has_line(qmp->reader)) {
    struct json_object *msg = NULL;
    qvm_error *e = NULL;
    int r = qmp_reader_next(&msg, qmp->reader, &e);
    if (r < 0) return qmp_latch(qmp, err, e);
    if (r == 0) break;
    r = qmp_dispatch(qmp, msg, w, err);
    if (r != 0) return r;
  }
  if (!qmp->eof) return 0;
  qvm_error *e = NULL;
  if (qmp_reader_finish(qmp->reader, &e) < 0) return qmp_latch(qmp, err, e);
  return qmp_fail(qmp, err, QVM_EPROTO, "qemu closed the qmp connection");
}

/* Reads and dispatches until the wait is over (1), the deadline passes (0)
 * or the connection fails (< 0). */
static int qmp_pump(qvm_qmp *qmp, qmp_wait *w, int64_t deadline, qvm_error **err) {
  for (;;) {
    int r = qmp_drain(qmp, w, err);
    if (r != 0) return r;
    r = qmp_read_some(qmp, deadline, err);
    if (r <= 0) return r;
  }
}

/* After a reply, takes the events already buffered behind it, so a caller
 * polling qvm_qmp_fd() never misses one that is no longer on the socket. A
 * fault found here is latched for the next call; this one has its reply. */
static void qmp_drain_events(qvm_qmp *qmp) {
  qmp_wait none = {0};
  if (!qmp->broken && !qmp->eof) qmp_drain(qmp, &none, NULL);
}

static int64_t qmp_deadline(int timeout_ms) {
  return timeout_ms < 0 ? -1 : qvm_now_ms() + timeout_ms;
}

/* ---- commands ----------------------------------------------------------- */

static char *qmp_format_command(const char *command, struct json_object *args, uint64_t id) {
  _cleanup_(qmp_json_putp) struct json_object *cmd = json_object_new_object();
  char idbuf[32];
  snprintf(idbuf, sizeof(idbuf), QMP_ID_PREFIX "%" PRIu64, id);
  if (!cmd || json_object_object_add(cmd, "execute", json_object_new_string(command)) < 0 ||
      json_object_object_add(cmd, "id", json_object_new_string(idbuf)) < 0)
    return NULL;
  if (args && json_object_object_add(cmd, "arguments", json_object_get(args)) < 0) return NULL;
  size_t len = 0;
  const char *s = json_object_to_json_string_length(
      cmd, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
  if (!s) return NULL;
  char *line = malloc(len + 2);
  if (!line) return NULL;
  memcpy(line, s, len);
  line[len] = '\n';
  line[len + 1] = '\0';
  return line;
}

/* Turns a matched reply into the caller's result; takes ownership of it. */
static int qmp_reply_result(struct json_object **out, struct json_object *reply,
                            const char *command, qvm_error **err) {
  _cleanup_(qmp_json_putp) struct json_object *msg = reply;
  struct json_object *ret = NULL, *error = NULL;
  if (json_object_object_get_ex(msg, "return", &ret)) {
    if (out) *out = json_object_get(ret);
    return 0;
  }
  json_object_object_get_ex(msg, "error", &error);
  const char *cls = error ? json_string_member(error, "class") : NULL;
  const char *desc = error ? json_string_member(error, "desc") : NULL;
  qvm_error *e = NULL;
  qvm_error_set(&e, QVM_EQMP, "qmp command '%s' failed: %s", command,
                desc ? desc : "qemu gave no description");
  qvm_error_set_class(e, cls ? cls : "GenericError");
  return qvm_error_propagate(err, e);
}

static int qmp_execute_full(struct json_object **out, qvm_qmp *qmp, const char *command,
                            struct json_object *args, int pass_fd, int timeout_ms,
                            qvm_error **err) {
  assert(qmp && command);
  if (out) *out = NULL;
  int r = qmp_check_usable(qmp, err);
  if (r < 0) return r;
  if (args && !json_object_is_type(args, json_type_object))
    return qvm_error_set(err, QVM_EINVAL, "arguments of qmp command '%s' are not an object",
                         command);
  uint64_t id = ++qmp->next_id;
  _cleanup_free_ char *line = qmp_format_command(command, args, id);
  if (!line) return qvm_error_set_errno(err, ENOMEM, "cannot format qmp command '%s'", command);
  int64_t deadline = qmp_deadline(timeout_ms);
  r = qmp_send(qmp, line, strlen(line), pass_fd, command, deadline, err);
  if (r < 0) return r;
  qmp_wait w = {.reply_id = id};
  qvm_error *e = NULL;
  r = qmp_pump(qmp, &w, deadline, &e);
  if (r < 0) {
    qvm_error_prefix(&e, "qmp command '%s'", command);
    return qvm_error_propagate(err, e);
  }
  if (r == 0) {
    qmp_abandon(qmp, id);
    return qvm_error_set(err, QVM_ETIMEOUT, "qmp command '%s' got no reply within %d ms", command,
                         timeout_ms);
  }
  qmp_drain_events(qmp);
  return qmp_reply_result(out, w.found, command, err);
}

int qvm_qmp_execute(struct json_object **out, qvm_qmp *qmp, const char *command,
                    struct json_object *args, qvm_error **err) {
  return qmp_execute_full(out, qmp, command, args, -1, qmp->opts.timeout_ms, err);
}

int qvm_qmp_execute_timeout(struct json_object **out, qvm_qmp *qmp, const char *command,
                            struct json_object *args, int timeout_ms, qvm_error **err) {
  return qmp_execute_full(out, qmp, command, args, -1, timeout_ms, err);
}

int qvm_qmp_execute_with_fd(struct json_object **out, qvm_qmp *qmp, const char *command,
                            struct json_object *args, int fd, qvm_error **err) {
  if (fd < 0)
    return qvm_error_set(err, QVM_EINVAL, "fd %d to pass with '%s' is invalid", fd, command);
  return qmp_execute_full(out, qmp, command, args, fd, qmp->opts.timeout_ms, err);
}

/* ---- events ------------------------------------------------------------- */

/* Removes and returns the oldest queued event named `name` (NULL: any). */
static struct json_object *qmp_take_queued(qvm_qmp *qmp, const char *name) {
  for (qmp_event **pp = &qmp->head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
    qmp_event *ev = *pp;
    const char *evname = json_string_member(ev->obj, "event");
    if (name && (!evname || strcmp(evname, name) != 0)) continue;
    *pp = ev->next;
    if (qmp->tail == ev) qmp->tail = prev;
    struct json_object *obj = ev->obj;
    free(ev);
    qmp->nevents--;
    return obj;
  }
  return NULL;
}

int qvm_qmp_wait_event(struct json_object **out, qvm_qmp *qmp, const char *name, int timeout_ms,
                       qvm_error **err) {
  assert(out && qmp);
  *out = qmp_take_queued(qmp, name);
  if (*out) return 0;
  int r = qmp_check_usable(qmp, err);
  if (r < 0) return r;
  qmp_wait w = {.event = name, .any_event = name == NULL};
  qvm_error *e = NULL;
  r = qmp_pump(qmp, &w, qmp_deadline(timeout_ms), &e);
  if (r < 0) {
    qvm_error_prefix(&e, "waiting for qmp event '%s'", name ? name : "any");
    return qvm_error_propagate(err, e);
  }
  if (r == 0)
    return qvm_error_set(err, QVM_ETIMEOUT, "qmp event '%s' did not arrive within %d ms",
                         name ? name : "any", timeout_ms);
  *out = w.found;
  qmp_drain_events(qmp);
  return 0;
}

int qvm_qmp_next_event(struct json_object **out, qvm_qmp *qmp, qvm_error **err) {
  assert(out && qmp);
  *out = NULL;
  qvm_error *e = NULL;
  if (!qmp->broken) {
    qmp_wait none = {0};
    for (int i = 0; i < QMP_POLL_READS_MAX; i++) {
      int r = qmp_drain(qmp, &none, &e);
      if (r >= 0) r = qmp_read_some(qmp, 0, &e);
      if (r <= 0) break;
    }
    if (!e) qmp_drain(qmp, &none, &e);
  }
  *out = qmp_take_queued(qmp, NULL);
  if (*out) {
    qvm_error_free(e); /* latched: the next call reports it */
    return 0;
  }
  if (e) return qvm_error_propagate(err, e);
  return qmp_check_usable(qmp, err);
}

int qvm_qmp_fd(const qvm_qmp *qmp) { return qmp->fd; }
const char *qvm_qmp_version(const qvm_qmp *qmp) { return qmp->version; }
struct json_object *qvm_qmp_capabilities(const qvm_qmp *qmp) {
  return qmp->capabilities;
}
size_t qvm_qmp_events_dropped(const qvm_qmp *qmp) { return qmp->dropped; }

/* ---- setup -------------------------------------------------------------- */

static int qmp_check_options(const qvm_qmp_options *o, qvm_error **err) {
  if (o->timeout_ms < -1)
    return qvm_error_set(err, QVM_EINVAL, "qmp timeout %d ms is invalid", o->timeout_ms);
  if (o->max_message == 0 || o->max_message > QMP_READER_MAX_MESSAGE)
    return qvm_error_set(err, QVM_EINVAL, "qmp message limit %zu is invalid", o->max_message);
  if (o->max_depth < 2 || o->max_depth > QMP_READER_MAX_DEPTH)
    return qvm_error_set(err, QVM_EINVAL, "qmp depth limit %zu is invalid", o->max_depth);
  if (o->max_events == 0)
    return qvm_error_set(err, QVM_EINVAL, "qmp event queue limit 0 is invalid");
  return 0;
}

static int64_t json_int_member(struct json_object *obj, const char *key) {
  struct json_object *v = NULL;
  if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_int)) return -1;
  return json_object_get_int64(v);
}

/* {"QMP": {"version": {"qemu": {"major", "minor", "micro"}}, "capabilities": []}} */
static int qmp_parse_greeting(qvm_qmp *qmp, struct json_object *greeting, qvm_error **err) {
  struct json_object *qmpv = NULL, *version = NULL, *qemu = NULL, *caps = NULL;
  if (!json_object_object_get_ex(greeting, "QMP", &qmpv) ||
      !json_object_object_get_ex(qmpv, "version", &version) ||
      !json_object_object_get_ex(version, "qemu", &qemu))
    return qmp_fail(qmp, err, QVM_EPROTO, "qmp greeting has no qemu version");
  if (!json_object_object_get_ex(qmpv, "capabilities", &caps) ||
      !json_object_is_type(caps, json_type_array))
    return qmp_fail(qmp, err, QVM_EPROTO, "qmp greeting has no capabilities array");
  int64_t major = json_int_member(qemu, "major"), minor = json_int_member(qemu, "minor"),
          micro = json_int_member(qemu, "micro");
  if (major < 0 || minor < 0 || micro < 0 || major > 9999 || minor > 9999 || micro > 9999)
    return qmp_fail(qmp, err, QVM_EPROTO, "qmp greeting has an invalid qemu version");
  if (asprintf(&qmp->version, "%" PRId64 ".%" PRId64 ".%" PRId64, major, minor, micro) < 0) {
    qmp->version = NULL;
    return qvm_error_set_errno(err, ENOMEM, "cannot store the qemu version");
  }
  qmp->capabilities = json_object_get(caps);
  return 0;
}

static int qmp_handshake(qvm_qmp *qmp, qvm_error **err) {
  qmp_wait w = {.greeting = true};
  int r = qmp_pump(qmp, &w, qmp_deadline(qmp->opts.timeout_ms), err);
  if (r == 0)
    return qvm_error_set(err, QVM_ETIMEOUT, "qmp greeting did not arrive within %d ms",
                         qmp->opts.timeout_ms);
  if (r < 0) return qvm_error_prefix(err, "cannot read the qmp greeting");
  _cleanup_(qmp_json_putp) struct json_object *greeting = w.found;
  r = qmp_parse_greeting(qmp, greeting, err);
  if (r < 0) return r;
  return qvm_qmp_execute(NULL, qmp, "qmp_capabilities", NULL, err);
}

int qvm_qmp_open_fd(qvm_qmp **out, int fd, const qvm_qmp_options *opts, qvm_error **err) {
  assert(out);
  _cleanup_close_ int owned = fd;
  qvm_qmp_options defaults = QVM_QMP_OPTIONS_INIT;
  if (!opts) opts = &defaults;
  int r = qmp_check_options(opts, err);
  if (r < 0) return r;
  if (fd < 0) return qvm_error_set(err, QVM_EINVAL, "qmp socket fd %d is invalid", fd);
  if (qvm_fd_set_nonblock(fd, true) < 0 || qvm_fd_set_cloexec(fd, true) < 0)
    return qvm_error_set_errno(err, errno, "cannot configure qmp socket fd %d", fd);
  _cleanup_(qvm_qmp_freep) qvm_qmp *qmp = calloc(1, sizeof(*qmp));
  if (!qmp) return qvm_error_set_errno(err, ENOMEM, "cannot allocate a qmp connection");
  qmp->fd = TAKE_FD(owned);
  qmp->opts = *opts;
  r = qmp_reader_new(&qmp->reader, opts->max_message, opts->max_depth, err);
  if (r < 0) return r;
  r = qmp_handshake(qmp, err);
  if (r < 0) return r;
  *out = TAKE_PTR(qmp);
  return 0;
}

static int qmp_connect_socket(int *out, const char *path, int64_t deadline, qvm_error **err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(sa.sun_path))
    return qvm_error_set(err, QVM_EINVAL, "qmp socket path '%s' is too long", path);
  strcpy(sa.sun_path, path);
  for (;;) {
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return qvm_error_set_errno(err, errno, "cannot create a unix socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
      *out = TAKE_FD(fd);
      return 0;
    }
    int e = errno;
    if (e != ENOENT && e != ECONNREFUSED && e != EAGAIN && e != EINTR)
      return qvm_error_set_errno(err, e, "cannot connect to qmp socket '%s'", path);
    int left = qvm_deadline_left_ms(deadline);
    if (left == 0)
      return qvm_error_set_code_errno(err, QVM_ETIMEOUT, e,
                                      "qmp socket '%s' did not accept a connection in time", path);
    int nap = left < 0 || left > 20 ? 20 : left;
    nanosleep(&(struct timespec){.tv_nsec = (long)nap * 1000000}, NULL);
  }
}

int qvm_qmp_connect(qvm_qmp **out, const char *path, const qvm_qmp_options *opts, qvm_error **err) {
  assert(out && path);
  qvm_qmp_options defaults = QVM_QMP_OPTIONS_INIT;
  if (!opts) opts = &defaults;
  int r = qmp_check_options(opts, err);
  if (r < 0) return r;
  int fd = -1;
  r = qmp_connect_socket(&fd, path, qmp_deadline(opts->timeout_ms), err);
  if (r < 0) return r;
  r = qvm_qmp_open_fd(out, fd, opts, err);
  if (r < 0) return qvm_error_prefix(err, "qmp socket '%s'", path);
  return 0;
}

void qvm_qmp_free(qvm_qmp *qmp) {
  if (!qmp) return;
  while (qmp->head) {
    qmp_event *ev = qmp->head;
    qmp->head = ev->next;
    json_object_put(ev->obj);
    free(ev);
  }
  json_object_put(qmp->capabilities);
  qmp_reader_free(qmp->reader);
  free(qmp->version);
  free(qmp->broken);
  if (qmp->fd >= 0) close(qmp->fd);
  free(qmp);
}
