/* SPDX-License-Identifier: MIT */
/*
 * ctl.sock: the shim's control socket. JSON lines in both directions, one
 * request per line, served from the shim's poll loop without ever blocking
 * on a client: reads and writes are non-blocking, a client's queued output
 * is bounded (a reader that stops reading is dropped), a request line is
 * bounded. Only a QMP passthrough waits, on QEMU, for at most
 * SHIM_CTL_QMP_TIMEOUT_MS. The protocol is in docs/shim-protocol.md.
 */
#include "vm/shim_ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "vm/shim.h"

#define CTL_JSON_DEPTH 32
#define CTL_ACCEPTS_PER_PASS 16
#define CTL_JOBS_PER_CLIENT 4 /* x SHIM_CTL_CLIENTS = the job table: it never fills */

typedef struct ctl_client {
  int fd;
  char *in;
  size_t in_len;
  char *out;
  size_t out_len, out_off;
  bool closing;                /* close once the output is flushed; read nothing more */
  bool pending;                /* a complete request line waits in `in` for the next pass */
  char *sub_id;                /* the subscribe request's id (JSON text); NULL when none */
  unsigned long long sub_next; /* the next seq this subscriber is owed */
} ctl_client;

typedef struct ctl_job {
  unsigned id;
  ctl_client *client;
  bool used;
} ctl_job;

typedef struct ctl_event {
  unsigned long long seq;
  char *line;
  size_t len;
} ctl_event;

struct shim_ctl {
  int listen_fd;
  ctl_client clients[SHIM_CTL_CLIENTS];
  ctl_job jobs[SHIM_CTL_CLIENTS * CTL_JOBS_PER_CLIENT];
  unsigned next_job;
  ctl_event ring[SHIM_CTL_RING];
  size_t ring_start, ring_count, ring_bytes;
  unsigned long long seq;
};

/* --- setup ------------------------------------------------------------------ */

int shim_ctl_open(shim_ctl **out, const char *path, qvm_error **err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return qvm_error_set(err, QVM_EINVAL, "socket path '%s' is too long", path);
  strcpy(sa.sun_path, path);
  _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot create a socket");
  if (unlink(path) < 0 && errno != ENOENT)
    return qvm_error_set_errno(err, errno, "cannot remove stale socket '%s'", path);
  mode_t old = umask(077);
  int b = bind(fd, (struct sockaddr *)&sa, sizeof sa);
  umask(old);
  if (b < 0 || chmod(path, 0600) < 0 || listen(fd, SHIM_CTL_CLIENTS) < 0)
    return qvm_error_set_errno(err, errno, "cannot listen on '%s'", path);
  shim_ctl *c = calloc(1, sizeof *c);
  if (!c) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  for (size_t i = 0; i < SHIM_CTL_CLIENTS; i++) c->clients[i].fd = -1;
  c->listen_fd = TAKE_FD(fd);
  *out = c;
  return 0;
}

static void client_close(shim_ctl *c, ctl_client *cl) {
  if (cl->fd < 0) return;
  close(cl->fd);
  free(cl->in);
  free(cl->out);
  free(cl->sub_id);
  /* A job is what a client hears of a stop or kill: the stop itself goes on. */
  for (size_t i = 0; i < QVM_ARRAY_SIZE(c->jobs); i++)
    if (c->jobs[i].client == cl) c->jobs[i] = (ctl_job){0};
  *cl = (ctl_client){.fd = -1};
}

void shim_ctl_free(shim_ctl *c) {
  if (!c) return;
  for (size_t i = 0; i < SHIM_CTL_CLIENTS; i++) client_close(c, &c->clients[i]);
  for (size_t i = 0; i < c->ring_count; i++)
    free(c->ring[(c->ring_start + i) % SHIM_CTL_RING].line);
  if (c->listen_fd >= 0) close(c->listen_fd);
  free(c);
}

/* --- output ----------------------------------------------------------------- */

static void client_flush(shim_ctl *c, ctl_client *cl) {
  while (cl->fd >= 0 && cl->out_off < cl->out_len) {
    ssize_t n =
        send(cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      client_close(c, cl);
      return;
    }
    cl->out_off += (size_t)n;
  }
  if (cl->fd >= 0) {
    cl->out_len = cl->out_off = 0;
    if (cl->closing) client_close(c, cl);
  }
}

/* Queues one line (a '\n' is added). A client whose queue would pass
 * SHIM_CTL_OUT_MAX is dropped: the shim never waits for a reader. */
static void client_send(shim_ctl *c, ctl_client *cl, const char *line, size_t len) {
  if (cl->fd < 0) return;
  if (cl->out_off > 0 && cl->out_off == cl->out_len) cl->out_len = cl->out_off = 0;
  size_t queued = cl->out_len - cl->out_off;
  if (queued + len + 1 > SHIM_CTL_OUT_MAX) {
    client_close(c, cl);
    return;
  }
  if (cl->out_off > 0) { /* compact */
    memmove(cl->out, cl->out + cl->out_off, queued);
    cl->out_len = queued;
    cl->out_off = 0;
  }
  char *grown = realloc(cl->out, cl->out_len + len + 1);
  if (!grown) {
    client_close(c, cl);
    return;
  }
  cl->out = grown;
  memcpy(cl->out + cl->out_len, line, len);
  cl->out[cl->out_len + len] = '\n';
  cl->out_len += len + 1;
  client_flush(c, cl);
}

static void client_send_json(shim_ctl *c, ctl_client *cl, struct json_object *o) {
  size_t len = 0;
  const char *s = json_object_to_json_string_length(
      o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
  client_send(c, cl, s, len);
  json_object_put(o);
}

static void reply_ok(shim_ctl *c, ctl_client *cl, struct json_object *id, struct json_object *res) {
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "id", json_object_get(id));
  json_object_object_add(o, "ok", json_object_new_boolean(true));
  json_object_object_add(o, "result", res ? res : json_object_new_object());
  client_send_json(c, cl, o);
}

static void reply_error(shim_ctl *c, ctl_client *cl, struct json_object *id, const char *code,
                        const char *fmt, ...) QVM_PRINTF(5, 6);
static void reply_error(shim_ctl *c, ctl_client *cl, struct json_object *id, const char *code,
                        const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  struct json_object *o = json_object_new_object(), *e = json_object_new_object();
  json_object_object_add(e, "code", json_object_new_string(code));
  json_object_object_add(e, "message", json_object_new_string(msg));
  json_object_object_add(o, "id", json_object_get(id));
  json_object_object_add(o, "ok", json_object_new_boolean(false));
  json_object_object_add(o, "error", e);
  client_send_json(c, cl, o);
}

/* --- events ----------------------------------------------------------------- */

/* A subscriber's queue is filled up to this, then from the ring again as it
 * drains: below SHIM_CTL_OUT_MAX by more than the longest event message. */
#define CTL_SUB_QUEUE_MAX (SHIM_CTL_OUT_MAX / 2)

/* Sends a line built in sb (whose memory it takes), or drops the client
 * when building it ran out of memory. */
static void send_built(shim_ctl *c, ctl_client *cl, qvm_strbuf *sb) {
  char *line = qvm_strbuf_steal(sb);
  if (line)
    client_send(c, cl, line, strlen(line));
  else
    client_close(c, cl);
  free(line);
}
static void sub_send(shim_ctl *c, ctl_client *cl, const ctl_event *ev) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  qvm_strbuf_printf(&sb, "{\"sub\":%s,\"seq\":%llu,\"event\":", cl->sub_id, ev->seq);
  qvm_strbuf_append(&sb, ev->line, ev->len);
  qvm_strbuf_putc(&sb, '}');
  send_built(c, cl, &sb);
}

static void ring_drop_oldest(shim_ctl *c) {
  ctl_event *old = &c->ring[c->ring_start];
  c->ring_bytes -= old->len;
  free(old->line);
  *old = (ctl_event){0};
  c->ring_start = (c->ring_start + 1) % SHIM_CTL_RING;
  c->ring_count--;
}

static void sub_gap(shim_ctl *c, ctl_client *cl, unsigned long long first,
                    unsigned long long last) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  qvm_strbuf_printf(&sb, "{\"sub\":%s,\"gap\":{\"first\":%llu,\"last\":%llu}}", cl->sub_id, first,
                    last);
  send_built(c, cl, &sb);
}

/* Sends a subscriber what it is owed (sub_next up to the newest seq), from
 * the ring, while its queue is below CTL_SUB_QUEUE_MAX; called again as the
 * queue drains and on every new event. What left the ring meanwhile (or
 * never got into it) is one "gap" marker. */
static void sub_pump(shim_ctl *c, ctl_client *cl) {
  while (cl->fd >= 0 && cl->sub_id && !cl->closing && cl->sub_next <= c->seq &&
         cl->out_len - cl->out_off < CTL_SUB_QUEUE_MAX) {
    const ctl_event *ev = NULL;
    for (size_t i = 0; i < c->ring_count && !ev; i++) {
      const ctl_event *e = &c->ring[(c->ring_start + i) % SHIM_CTL_RING];
      if (e->seq >= cl->sub_next) ev = e;
    }
    unsigned long long next = ev ? ev->seq : c->seq + 1;
    if (next > cl->sub_next) {
      sub_gap(c, cl, cl->sub_next, next - 1);
      cl->sub_next = next;
      continue;
    }
    cl->sub_next = ev->seq + 1;
    sub_send(c, cl, ev);
  }
}

void shim_ctl_event(shim_ctl *c, const char *line, size_t len) {
  if (!c) return;
  char *copy = malloc(len + 1);
  c->seq++; /* a seq is used even when the copy fails: subscribers then see a gap */
  if (!copy) return;
  memcpy(copy, line, len);
  copy[len] = '\0';
  while (c->ring_count > 0 &&
         (c->ring_count == SHIM_CTL_RING || c->ring_bytes + len > SHIM_CTL_RING_BYTES))
    ring_drop_oldest(c);
  ctl_event *ev = &c->ring[(c->ring_start + c->ring_count) % SHIM_CTL_RING];
  *ev = (ctl_event){.seq = c->seq, .line = copy, .len = len};
  c->ring_count++;
  c->ring_bytes += len;
  for (size_t i = 0; i < SHIM_CTL_CLIENTS; i++) sub_pump(c, &c->clients[i]);
}

unsigned long long shim_ctl_seq(const shim_ctl *c) { return c ? c->seq : 0; }

/* --- jobs ------------------------------------------------------------------- */

static ctl_job *job_new(shim_ctl *c, ctl_client *cl) {
  size_t mine = 0;
  for (size_t i = 0; i < QVM_ARRAY_SIZE(c->jobs); i++)
    mine += c->jobs[i].used && c->jobs[i].client == cl;
  if (mine >= CTL_JOBS_PER_CLIENT) return NULL;
  for (size_t i = 0; i < QVM_ARRAY_SIZE(c->jobs); i++) {
    if (c->jobs[i].used) continue;
    c->jobs[i] = (ctl_job){.id = ++c->next_job, .client = cl, .used = true};
    return &c->jobs[i];
  }
  return NULL;
}

static void job_message(shim_ctl *c, ctl_job *j, const char *key, struct json_object *val,
                        bool done) {
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "job", json_object_new_int64(j->id));
  if (done) {
    json_object_object_add(o, "done", json_object_new_boolean(true));
    json_object_object_add(o, "ok", json_object_new_boolean(true));
  }
  json_object_object_add(o, key, val);
  if (j->client)
    client_send_json(c, j->client, o);
  else
    json_object_put(o);
}

void shim_ctl_progress(shim_ctl *c, const char *phase) {
  if (!c) return;
  for (size_t i = 0; i < QVM_ARRAY_SIZE(c->jobs); i++) {
    if (!c->jobs[i].used) continue;
    struct json_object *p = json_object_new_object();
    json_object_object_add(p, "phase", json_object_new_string(phase));
    job_message(c, &c->jobs[i], "progress", p, false);
  }
}

void shim_ctl_finish(shim_ctl *c, struct json_object *exit_record, int flush_ms) {
  if (!c) return;
  for (size_t i = 0; i < QVM_ARRAY_SIZE(c->jobs); i++) {
    if (!c->jobs[i].used) continue;
    struct json_object *res = json_object_new_object();
    json_object_object_add(res, "exit", json_object_get(exit_record));
    job_message(c, &c->jobs[i], "result", res, true);
    c->jobs[i] = (ctl_job){0};
  }
  close(c->listen_fd);
  c->listen_fd = -1;
  int64_t deadline = qvm_now_ms() + flush_ms;
  for (;;) {
    struct pollfd pfd[SHIM_CTL_CLIENTS];
    size_t n = 0;
    for (size_t i = 0; i < SHIM_CTL_CLIENTS; i++) {
      ctl_client *cl = &c->clients[i];
      if (cl->fd >= 0 && cl->out_off < cl->out_len)
        pfd[n++] = (struct pollfd){.fd = cl->fd, .events = POLLOUT};
    }
    if (n == 0 || poll(pfd, n, qvm_deadline_left_ms(deadline)) <= 0) break;
    for (size_t i = 0; i < SHIM_CTL_CLIENTS; i++) {
      client_flush(c, &c->clients[i]);
      sub_pump(c, &c->clients[i]);
    }
  }
  for (size_t i = 0; i < SHIM_CTL_CLIENTS; i++) client_close(c, &c->clients[i]);
}

/* --- commands ----------------------------------------------------------------- */

static const char *phase_name(shim_phase p) {
  static const char *const names[] = {"running", "powerdown", "quit", "killed"};
  return (unsigned)p < QVM_ARRAY_SIZE(names) ? names[p] : "unknown";
}

static void cmd_status(shim_ctl *c, ctl_client *cl, struct json_object *id, shim *s) {
  struct json_object *r = json_object_new_object();
  json_object_object_add(r, "name", json_object_new_string(s->vm->name));
  json_object_object_add(r, "state",
                         json_object_new_string(s->phase == SHIM_RUNNING ? "running" : "stopping"));
  json_object_object_add(r, "phase", json_object_new_string(phase_name(s->phase)));
  json_object_object_add(r, "shim_pid", json_object_new_int(getpid()));
  json_object_object_add(r, "qemu_pid", json_object_new_int(s->qemu_pid));
  json_object_object_add(r, "adopted", json_object_new_boolean(!s->child));
  json_object_object_add(r, "accel",
                         json_object_new_string(s->cfg.accel == VM_ACCEL_KVM ? "kvm" : "tcg"));
  if (s->ssh_port) json_object_object_add(r, "ssh_port", json_object_new_int(s->ssh_port));
  json_object_object_add(r, "qmp", json_object_new_boolean(s->qmp != NULL));
  json_object_object_add(r, "seq", json_object_new_uint64(c->seq));
  json_object_object_add(r, "started_at_us", json_object_new_int64(s->t_shim_us));
  reply_ok(c, cl, id, r);
}

static bool get_int(struct json_object *req, const char *key, int64_t lo, int64_t hi, int64_t dflt,
                    int64_t *out) {
  struct json_object *v = NULL;
  *out = dflt;
  if (!json_object_object_get_ex(req, key, &v)) return true;
  if (!json_object_is_type(v, json_type_int)) return false;
  errno = 0;
  int64_t n = json_object_get_int64(v);
  if (errno || n < lo || n > hi) return false;
  *out = n;
  return true;
}

/* A job is created before the stop or kill acts: when none can be (busy),
 * the request does nothing. Returns whether it was created. */
static bool start_job(shim_ctl *c, ctl_client *cl, struct json_object *id, const char *phase) {
  ctl_job *j = job_new(c, cl);
  if (!j) {
    reply_error(c, cl, id, "busy", "this connection has %d jobs running", CTL_JOBS_PER_CLIENT);
    return false;
  }
  struct json_object *r = json_object_new_object();
  json_object_object_add(r, "job", json_object_new_int64(j->id));
  reply_ok(c, cl, id, r);
  struct json_object *p = json_object_new_object();
  json_object_object_add(p, "phase", json_object_new_string(phase));
  job_message(c, j, "progress", p, false);
  return true;
}

static void cmd_stop(shim_ctl *c, ctl_client *cl, struct json_object *id, struct json_object *req,
                     shim *s) {
  int64_t timeout_ms = 0;
  if (!get_int(req, "timeout_ms", 0, 24 * 3600 * 1000LL, 60000, &timeout_ms)) {
    reply_error(c, cl, id, "invalid", "'timeout_ms' must be an integer from 0 to 86400000");
    return;
  }
  if (start_job(c, cl, id, s->phase == SHIM_RUNNING ? "powerdown" : phase_name(s->phase)))
    shim_stop_begin(s, (int)timeout_ms);
}

/* expiry: vm.json's deadline again (qvm sandbox extend wrote it). */
static void cmd_expiry(shim_ctl *c, ctl_client *cl, struct json_object *id, shim *s) {
  if (s->expired) {
    reply_error(c, cl, id, "expired", "the vm's deadline passed: it is being removed");
    return;
  }
  qvm_error *e = NULL;
  if (shim_ttl_load(s, &e) < 0) {
    reply_error(c, cl, id, "invalid", "vm.json: %.400s", qvm_error_message(e));
    qvm_error_free(e);
    return;
  }
  struct json_object *r = json_object_new_object();
  json_object_object_add(r, "expires_at_us", json_object_new_int64(s->expires_at_us));
  reply_ok(c, cl, id, r);
}

static void cmd_kill(shim_ctl *c, ctl_client *cl, struct json_object *id, shim *s) {
  if (start_job(c, cl, id, "kill")) shim_kill(s);
}

/* Commands a client may not pass through: they would break the shim's own
 * QMP connection or its hold on QEMU (quit: use stop or kill), hand QEMU a
 * file descriptor, or are a monitor of their own. */
static bool qmp_refused(const char *cmd) {
  static const char *const refused[] = {
      "qmp_capabilities", "quit",           "getfd",      "closefd",
      "add-fd",           "remove-fd",      "add_client", "human-monitor-command",
      "chardev-remove",   "chardev-change", "migrate",    "migrate-incoming",
      "x-exit-preconfig", "object-del",     "device_del", "netdev_del"};
  for (size_t i = 0; i < QVM_ARRAY_SIZE(refused); i++)
    if (!strcmp(cmd, refused[i])) return true;
  return false;
}

static bool qmp_name_valid(const char *s, size_t len) {
  if (len == 0 || len > 64) return false;
  for (size_t i = 0; i < len; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
          (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
      return false;
  return true;
}

/* QEMU's monitor can take a command now; else the error is replied. */
static bool qmp_usable(shim_ctl *c, ctl_client *cl, struct json_object *id, shim *s) {
  if (!s->qmp) {
    reply_error(c, cl, id, "qmp", "qemu's monitor is not connected");
    return false;
  }
  /* QEMU still owes the reply of one that timed out: its main loop is
   * stalled, and waiting again would only keep the shim out of its loop. */
  if (qvm_qmp_abandoned_pending(s->qmp)) {
    reply_error(c, cl, id, "busy", "qemu has not answered an earlier qmp command yet");
    return false;
  }
  return true;
}

/* Returns whether it waited on QEMU. */
static bool cmd_qmp(shim_ctl *c, ctl_client *cl, struct json_object *id, struct json_object *req,
                    shim *s) {
  struct json_object *cmd = NULL, *args = NULL;
  if (!json_object_object_get_ex(req, "command", &cmd) ||
      !json_object_is_type(cmd, json_type_string) ||
      !qmp_name_valid(json_object_get_string(cmd), (size_t)json_object_get_string_len(cmd))) {
    reply_error(c, cl, id, "invalid", "'command' must be a QMP command name");
    return false;
  }
  const char *name = json_object_get_string(cmd);
  if (json_object_object_get_ex(req, "arguments", &args) &&
      !json_object_is_type(args, json_type_object)) {
    reply_error(c, cl, id, "invalid", "'arguments' must be an object");
    return false;
  }
  if (qmp_refused(name)) {
    reply_error(c, cl, id, "invalid", "qmp command '%s' is not passed through", name);
    return false;
  }
  if (!qmp_usable(c, cl, id, s)) return false;
  struct json_object *ret = NULL;
  qvm_error *e = NULL;
  int r = qvm_qmp_execute_timeout(&ret, s->qmp, name, args, SHIM_CTL_QMP_TIMEOUT_MS, &e);
  shim_drain_qmp(s); /* events that came with the reply */
  if (r == 0) {
    reply_ok(c, cl, id, ret ? ret : json_object_new_object());
  } else {
    const char *code = r == QVM_ETIMEOUT ? "timeout" : "qmp";
    reply_error(c, cl, id, code, "%s", qvm_error_message(e));
  }
  qvm_error_free(e);
  return true;
}

/* save-state: QEMU's RAM and device state into VM_FORK_STATE_FILE, a file
 * the shim makes itself (no path comes from the client), handed to QEMU as
 * an fd (it may not open files here: it runs as another user). The client
 * follows the migration with query-migrate. Returns whether it waited on QEMU. */
static bool cmd_save_state(shim_ctl *c, ctl_client *cl, struct json_object *id, shim *s) {
  if (!qmp_usable(c, cl, id, s)) return false;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", s->vm->paths.dir, VM_FORK_STATE_FILE);
  if (unlink(path) < 0 && errno != ENOENT) {
    reply_error(c, cl, id, "internal", "cannot remove an old '%s': %s", path, strerror(errno));
    return false;
  }
  _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    reply_error(c, cl, id, "internal", "cannot create '%s': %s", path, strerror(errno));
    return false;
  }
  struct json_object *getfd = json_object_new_object(), *params = json_object_new_object(),
                     *mig = json_object_new_object();
  json_object_object_add(getfd, "fdname", json_object_new_string("qvm-state"));
  /* QEMU 7.2 caps a migration at 128 MiB/s by default; a file takes more. */
  json_object_object_add(params, "max-bandwidth", json_object_new_int64(INT64_C(1) << 40));
  json_object_object_add(mig, "uri", json_object_new_string("fd:qvm-state"));
  qvm_error *e = NULL;
  int r = qvm_qmp_execute_with_fd(NULL, s->qmp, "getfd", getfd, fd, &e);
  if (r == 0)
    r = qvm_qmp_execute_timeout(NULL, s->qmp, "migrate-set-parameters", params,
                                SHIM_CTL_QMP_TIMEOUT_MS, &e);
  if (r == 0)
    r = qvm_qmp_execute_timeout(NULL, s->qmp, "migrate", mig, SHIM_CTL_QMP_TIMEOUT_MS, &e);
  shim_drain_qmp(s);
  if (r == 0) {
    reply_ok(c, cl, id, json_object_new_object());
  } else {
    unlink(path);
    reply_error(c, cl, id, r == QVM_ETIMEOUT ? "timeout" : "qmp", "%s", qvm_error_message(e));
  }
  qvm_error_free(e);
  json_object_put(getfd);
  json_object_put(params);
  json_object_put(mig);
  return true;
}

static void cmd_subscribe(shim_ctl *c, ctl_client *cl, struct json_object *id,
                          struct json_object *req) {
  int64_t since = 0;
  if (!get_int(req, "since", 0, INT64_MAX, (int64_t)c->seq, &since)) {
    reply_error(c, cl, id, "invalid", "'since' must be a non-negative integer");
    return;
  }
  if (cl->sub_id) {
    reply_error(c, cl, id, "busy", "this connection is already subscribed");
    return;
  }
  unsigned long long oldest = c->ring_count ? c->ring[c->ring_start].seq : c->seq + 1;
  struct json_object *r = json_object_new_object();
  json_object_object_add(r, "seq", json_object_new_uint64(c->seq));
  json_object_object_add(r, "oldest_seq", json_object_new_uint64(oldest));
  reply_ok(c, cl, id, r);
  if (cl->fd < 0) return;
  cl->sub_id = strdup(json_object_to_json_string_ext(id, JSON_C_TO_STRING_PLAIN));
  if (!cl->sub_id) {
    client_close(c, cl);
    return;
  }
  /* since is at most INT64_MAX: since + 1 does not wrap */
  cl->sub_next = (unsigned long long)since + 1;
  sub_pump(c, cl);
}

/* An "id" is echoed as given: a number, a string (at most 128 bytes) or null. */
static bool id_valid(struct json_object *id) {
  if (!id) return true;
  if (json_object_is_type(id, json_type_int)) return true;
  return json_object_is_type(id, json_type_string) && json_object_get_string_len(id) <= 128;
}

/* Returns whether it waited on QEMU (a qmp passthrough). */
static bool handle_line(shim_ctl *c, ctl_client *cl, shim *s, const char *line, size_t len) {
  if (len == 0) return false;
  json_tokener *tok = json_tokener_new_ex(CTL_JSON_DEPTH);
  if (!tok) {
    reply_error(c, cl, NULL, "internal", "out of memory");
    return false;
  }
  bool waited = false;
  struct json_object *req = json_tokener_parse_ex(tok, line, (int)len);
  bool whole = req && json_tokener_get_error(tok) == json_tokener_success &&
               (size_t)json_tokener_get_parse_end(tok) == len;
  json_tokener_free(tok);
  struct json_object *id = NULL, *cmd = NULL;
  if (!whole || !json_object_is_type(req, json_type_object)) {
    reply_error(c, cl, NULL, "invalid", "a request must be one JSON object on one line");
  } else if (json_object_object_get_ex(req, "id", &id) && !id_valid(id)) {
    reply_error(c, cl, NULL, "invalid",
                "'id' must be an integer, a string of at most 128 "
                "bytes, or null");
  } else if (!json_object_object_get_ex(req, "cmd", &cmd) ||
             !json_object_is_type(cmd, json_type_string)) {
    reply_error(c, cl, id, "invalid", "a request needs a 'cmd' string");
  } else {
    const char *name = json_object_get_string(cmd);
    if (!strcmp(name, "status"))
      cmd_status(c, cl, id, s);
    else if (!strcmp(name, "stop"))
      cmd_stop(c, cl, id, req, s);
    else if (!strcmp(name, "kill"))
      cmd_kill(c, cl, id, s);
    else if (!strcmp(name, "qmp"))
      waited = cmd_qmp(c, cl, id, req, s);
    else if (!strcmp(name, "save-state"))
      waited = cmd_save_state(c, cl, id, s);
    else if (!strcmp(name, "expiry"))
      cmd_expiry(c, cl, id, s);
    else if (!strcmp(name, "subscribe"))
      cmd_subscribe(c, cl, id, req);
    else
      reply_error(c, cl, id, "not-found", "unknown command '%.64s'", name);
  }
  json_object_put(req);
  return waited;
}

/* --- connections -------------------------------------------------------------- */

static bool peer_allowed(int fd) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof cred) return false;
  return cred.uid == 0 || cred.uid == geteuid();
}

static void accept_clients(shim_ctl *c) {
  for (int i = 0; i < CTL_ACCEPTS_PER_PASS; i++) {
    int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    if (!peer_allowed(fd)) {
      close(fd);
      continue;
    }
    ctl_client *slot = NULL;
    for (size_t k = 0; k < SHIM_CTL_CLIENTS && !slot; k++)
      if (c->clients[k].fd < 0) slot = &c->clients[k];
    if (!slot) {
      static const char busy[] =
          "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"busy\",\"message\":\"too many "
          "clients\"}}\n";
      (void)!send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      close(fd);
      continue;
    }
    *slot = (ctl_client){.fd = fd, .in = malloc(SHIM_CTL_LINE_MAX + 1)};
    if (!slot->in) client_close(c, slot);
  }
}

/* Answers the buffered request lines, but waits on QEMU for at most one of
 * them per pass: a client that pipelines qmp requests must not keep the
 * shim out of its loop (signals, stop, kill, logs) for one wait each. The
 * rest stays buffered (pending) for the next pass. */
static void client_process(shim_ctl *c, ctl_client *cl, shim *s) {
  size_t start = 0;
  bool waited = false;
  cl->pending = false;
  for (size_t i = 0; i < cl->in_len && cl->fd >= 0 && !cl->closing; i++) {
    if (cl->in[i] != '\n') continue;
    if (waited) {
      cl->pending = true;
      break;
    }
    waited = handle_line(c, cl, s, cl->in + start, i - start);
    start = i + 1;
  }
  if (cl->fd < 0 || cl->closing) {
    cl->pending = false;
    return;
  }
  memmove(cl->in, cl->in + start, cl->in_len - start);
  cl->in_len -= start;
  if (!cl->pending && cl->in_len > SHIM_CTL_LINE_MAX) {
    reply_error(c, cl, NULL, "invalid", "a request line is longer than %d bytes",
                SHIM_CTL_LINE_MAX);
    if (cl->fd < 0) return;
    cl->closing = true;
    shutdown(cl->fd, SHUT_RD);
    client_flush(c, cl);
  }
}

static void client_readable(shim_ctl *c, ctl_client *cl, shim *s) {
  /* Lines still pending are answered before anything more is read (an EOF
   * behind them must not drop them). */
  if (!cl->pending) {
    ssize_t n = recv(cl->fd, cl->in + cl->in_len, SHIM_CTL_LINE_MAX + 1 - cl->in_len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
      /* EOF: what is queued still goes out (the client may have shut down
       * only its writing side), then the connection closes */
      cl->closing = true;
      client_flush(c, cl);
      return;
    }
    cl->in_len += (size_t)n;
  }
  client_process(c, cl, s);
}

bool shim_ctl_pending(const shim_ctl *c) {
  for (size_t i = 0; c && i < SHIM_CTL_CLIENTS; i++)
    if (c->clients[i].fd >= 0 && c->clients[i].pending && !c->clients[i].closing) return true;
  return false;
}

void shim_ctl_pollfds(const shim_ctl *c, struct pollfd *pfd) {
  pfd[0] = (struct pollfd){.fd = c ? c->listen_fd : -1, .events = POLLIN};
  for (size_t i = 0; i < SHIM_CTL_CLIENTS; i++) {
    const ctl_client *cl = c ? &c->clients[i] : NULL;
    short ev = 0;
    if (cl && cl->fd >= 0)
      ev = (cl->closing ? 0 : POLLIN) | (cl->out_off < cl->out_len ? POLLOUT : 0);
    pfd[1 + i] = (struct pollfd){.fd = ev ? cl->fd : -1, .events = ev};
  }
}

void shim_ctl_handle(shim_ctl *c, shim *s, const struct pollfd *pfd) {
  if (!c) return;
  for (size_t i = 0; i < SHIM_CTL_CLIENTS; i++) {
    ctl_client *cl = &c->clients[i];
    short re = cl->fd >= 0 && pfd[1 + i].fd == cl->fd ? pfd[1 + i].revents : 0;
    if (cl->fd < 0 || (!re && !cl->pending)) continue;
    if (re & POLLOUT) {
      client_flush(c, cl);
      sub_pump(c, cl);
    }
    if (cl->fd >= 0 && (cl->pending || (re & (POLLIN | POLLHUP | POLLERR))) && !cl->closing)
      client_readable(c, cl, s);
    else if (cl->fd >= 0 && (re & (POLLHUP | POLLERR)))
      client_close(c, cl);
  }
  if (pfd[0].revents & POLLIN) accept_clients(c);
}
