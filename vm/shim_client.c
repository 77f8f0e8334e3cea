/* SPDX-License-Identifier: MIT */
/* ctl.sock's client side, for the lifecycle commands: stop and kill are
 * jobs whose "done" message comes once QEMU exited and the exit is
 * recorded. Everything the shim sends is bounded and validated. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/time.h"
#include "vm/handle.h"
#include "vm/shim_ctl.h"

#define CTL_REPLY_MAX (1 << 20)

typedef struct ctl_conn {
  int fd;
  char *buf;
  size_t len;
} ctl_conn;

/* connect and send block while the shim's backlog or socket buffer is full
 * (a stopped or stuck shim): SO_SNDTIMEO bounds both by the deadline, after
 * which they fail with EAGAIN. */
static void ctl_send_deadline(int fd, int64_t deadline) {
  int64_t left = qvm_deadline_left_ms(deadline);
  if (left <= 0) left = 1; /* 0 would mean no timeout */
  struct timeval tv = {.tv_sec = (time_t)(left / 1000),
                       .tv_usec = (suseconds_t)(left % 1000) * 1000};
  (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int ctl_connect(ctl_conn *c, const char *path, int64_t deadline, qvm_error **err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return qvm_error_set(err, QVM_EINVAL, "socket path '%s' is too long", path);
  strcpy(sa.sun_path, path);
  c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->fd < 0) return qvm_error_set_errno(err, errno, "cannot create a socket");
  ctl_send_deadline(c->fd, deadline);
  int cr;
  while ((cr = connect(c->fd, (struct sockaddr *)&sa, sizeof sa)) < 0 && errno == EINTR &&
         qvm_deadline_left_ms(deadline) > 0)
    ctl_send_deadline(c->fd, deadline);
  if (cr < 0) {
    int e = errno;
    if (e == ENOENT || e == ECONNREFUSED)
      return qvm_error_set(err, QVM_ENOTFOUND, "the vm's shim does not answer on '%s'", path);
    if (e == EAGAIN || e == EWOULDBLOCK || e == EINPROGRESS || e == EINTR)
      return qvm_error_set(err, QVM_ETIMEOUT,
                           "the vm's shim did not accept a connection on '%s' in time (is it "
                           "stopped or stuck?)",
                           path);
    return qvm_error_set_errno(err, e, "cannot connect to '%s'", path);
  }
  c->buf = malloc(CTL_REPLY_MAX + 1);
  if (!c->buf) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  return 0;
}

static void ctl_close(ctl_conn *c) {
  if (c->fd >= 0) close(c->fd);
  free(c->buf);
}

/* The next line as JSON (*out NULL at EOF). QVM_ETIMEOUT past deadline. */
static int ctl_read(struct json_object **out, ctl_conn *c, int64_t deadline, qvm_error **err) {
  *out = NULL;
  for (;;) {
    char *nl = memchr(c->buf, '\n', c->len);
    if (nl) {
      size_t n = (size_t)(nl - c->buf);
      json_tokener *tok = json_tokener_new_ex(32);
      struct json_object *o = tok ? json_tokener_parse_ex(tok, c->buf, (int)n) : NULL;
      bool ok = o && json_tokener_get_error(tok) == json_tokener_success &&
                json_object_is_type(o, json_type_object);
      json_tokener_free(tok);
      memmove(c->buf, nl + 1, c->len - n - 1);
      c->len -= n + 1;
      if (!ok) {
        json_object_put(o);
        return qvm_error_set(err, QVM_EPROTO, "the vm's shim sent a line that is not JSON");
      }
      *out = o;
      return 0;
    }
    if (c->len >= CTL_REPLY_MAX)
      return qvm_error_set(err, QVM_EPROTO, "the vm's shim sent a line over %d bytes",
                           CTL_REPLY_MAX);
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int r = poll(&p, 1, qvm_deadline_left_ms(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return qvm_error_set_errno(err, errno, "cannot wait for the vm's shim");
    if (r == 0) return QVM_ETIMEOUT;
    ssize_t got = read(c->fd, c->buf + c->len, CTL_REPLY_MAX - c->len);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && errno != ECONNRESET)
      return qvm_error_set_errno(err, errno, "cannot read from the vm's shim");
    if (got <= 0) return 0; /* EOF */
    c->len += (size_t)got;
  }
}

static int ctl_error(struct json_object *reply, qvm_error **err) {
  struct json_object *e = NULL, *code = NULL, *msg = NULL;
  json_object_object_get_ex(reply, "error", &e);
  const char *c = json_object_object_get_ex(e, "code", &code) ? json_object_get_string(code) : "";
  const char *m =
      json_object_object_get_ex(e, "message", &msg) ? json_object_get_string(msg) : "no message";
  int r = !strcmp(c ? c : "", "busy")      ? QVM_EBUSY
          : !strcmp(c ? c : "", "timeout") ? QVM_ETIMEOUT
          : !strcmp(c ? c : "", "invalid") ? QVM_EINVAL
          : !strcmp(c ? c : "", "qmp")     ? QVM_EQMP
          : !strcmp(c ? c : "", "expired") ? QVM_ECONFLICT
                                           : QVM_EPROTO;
  return qvm_error_set(err, r, "the vm's shim refused: %.200s", m ? m : "no message");
}

static bool is_true(struct json_object *o, const char *key) {
  struct json_object *v = NULL;
  return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean) &&
         json_object_get_boolean(v);
}

static int wait_pidfd_until(int pidfd, int64_t deadline) {
  struct pollfd p = {.fd = pidfd, .events = POLLIN};
  for (;;) {
    int n = poll(&p, 1, qvm_deadline_left_ms(deadline));
    if (n > 0) return 0;
    if (n == 0) return QVM_ETIMEOUT;
    if (errno != EINTR) return QVM_ESYS;
  }
}

/* A shim started by qvm before ctl.sock existed (a VM that kept running
 * across an upgrade) took its requests as SIGUSR1 with a sigqueue value:
 * the operation (1 stop, 2 kill) | the stop timeout in seconds << 8. It
 * still records the exit and exits after QEMU, so waiting on its pidfd is
 * the same as before. */
static int legacy_request(int shim_pidfd, bool kill, int stop_timeout_ms, int64_t deadline,
                          qvm_error **err) {
  const char *what = kill ? "kill" : "stop";
  int timeout_s = (stop_timeout_ms + 999) / 1000;
  siginfo_t si = {0};
  si.si_signo = SIGUSR1;
  si.si_code = SI_QUEUE;
  si.si_pid = getpid();
  si.si_uid = getuid();
  si.si_value.sival_int = (kill ? 2 : 1) | ((kill ? 0 : timeout_s) << 8);
  if (syscall(SYS_pidfd_send_signal, shim_pidfd, SIGUSR1, &si, 0) < 0)
    return qvm_error_set_errno(err, errno, "cannot signal the vm's shim (started by an older qvm)");
  if (wait_pidfd_until(shim_pidfd, deadline) < 0)
    return qvm_error_set(err, QVM_ETIMEOUT,
                         "the vm's shim (started by an older qvm) did not exit in time after the "
                         "%s request",
                         what);
  return 0;
}

int vm_ctl_stop(const vm_paths *p, int shim_pidfd, bool kill, int stop_timeout_ms, int timeout_ms,
                qvm_error **err) {
  const char *what = kill ? "kill" : "stop";
  int64_t deadline = qvm_now_ms() + timeout_ms;
  ctl_conn c = {.fd = -1};
  /* A live shim with no ctl.sock at all is one from before ctl.sock. */
  if (shim_pidfd >= 0 && access(p->ctl_sock, F_OK) < 0 && errno == ENOENT)
    return legacy_request(shim_pidfd, kill, stop_timeout_ms, deadline, err);
  int r = ctl_connect(&c, p->ctl_sock, deadline, err), send_errno = 0;
  char req[96];
  int n = kill ? snprintf(req, sizeof req, "{\"id\":1,\"cmd\":\"kill\"}\n")
               : snprintf(req, sizeof req, "{\"id\":1,\"cmd\":\"stop\",\"timeout_ms\":%d}\n",
                          stop_timeout_ms);
  if (r >= 0) {
    ctl_send_deadline(c.fd, deadline);
    ssize_t sent = send(c.fd, req, (size_t)n, MSG_NOSIGNAL);
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      r = qvm_error_set(err, QVM_ETIMEOUT, "the vm's shim did not take the %s request in time",
                        what);
    else if (sent < 0 && (errno == EPIPE || errno == ECONNRESET))
      send_errno = errno; /* its answer ("busy": no slot) may be there to read */
    else if (sent != n)
      r = qvm_error_set_errno(err, sent < 0 ? errno : EIO,
                              "cannot send the %s request to the vm's shim", what);
  }
  bool replied = false, done = false;
  while (r >= 0 && !done) {
    struct json_object *m = NULL;
    r = ctl_read(&m, &c, deadline, err);
    if (r == QVM_ETIMEOUT) {
      r = qvm_error_set(err, QVM_ETIMEOUT, "qemu did not exit within %d s of the %s request",
                        timeout_ms / 1000, what);
      break;
    }
    if (r < 0) break;
    if (!m && send_errno && !replied) {
      r = qvm_error_set_errno(err, send_errno, "cannot send the %s request to the vm's shim", what);
      break;
    }
    if (!m) { /* EOF: the shim exited (after recording the exit, or it died) */
      done = true;
      break;
    }
    struct json_object *id = NULL;
    /* Before the reply, any error is the answer: the shim says "busy" with
     * id null to a connection it has no slot for, then closes it. */
    if (!replied && ((json_object_object_get_ex(m, "id", &id) && json_object_get_int(id) == 1) ||
                     (json_object_object_get_ex(m, "ok", NULL) && !is_true(m, "ok")))) {
      replied = true;
      if (!is_true(m, "ok")) r = ctl_error(m, err);
    } else if (replied && json_object_object_get_ex(m, "job", &id) && is_true(m, "done")) {
      done = true;
    }
    json_object_put(m);
  }
  ctl_close(&c);
  if (r < 0) return r;
  /* The shim exits right after the job's end: wait for it, as before. */
  if (shim_pidfd >= 0 && wait_pidfd_until(shim_pidfd, deadline) < 0)
    return qvm_error_set(err, QVM_ETIMEOUT,
                         "the vm's shim did not exit within %d s of the %s request",
                         timeout_ms / 1000, what);
  return 0;
}

static int ctl_send_line(ctl_conn *c, const char *line, int64_t deadline, qvm_error **err) {
  size_t n = strlen(line);
  ctl_send_deadline(c->fd, deadline);
  ssize_t sent = send(c->fd, line, n, MSG_NOSIGNAL);
  if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return qvm_error_set(err, QVM_ETIMEOUT, "the vm's shim did not take the request in time");
  if (sent < 0 && (errno == EPIPE || errno == ECONNRESET)) return 0; /* its "busy" may be there */
  if (sent != (ssize_t)n)
    return qvm_error_set_errno(err, sent < 0 ? errno : EIO,
                               "cannot send a request to the vm's shim");
  return 0;
}

/* One request (req gets id 1; consumed) and its reply's result. */
static int ctl_call(struct json_object **out, const vm_paths *p, struct json_object *req,
                    const char *command, int timeout_ms, qvm_error **err) {
  int64_t deadline = qvm_now_ms() + timeout_ms;
  json_object_object_add(req, "id", json_object_new_int(1));
  _cleanup_free_ char *line = NULL;
  int n = asprintf(&line, "%s\n", json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN));
  json_object_put(req);
  if (n < 0) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  ctl_conn c = {.fd = -1};
  int r = ctl_connect(&c, p->ctl_sock, deadline, err);
  if (r >= 0) r = ctl_send_line(&c, line, deadline, err);
  struct json_object *m = NULL;
  while (r >= 0 && !m) {
    r = ctl_read(&m, &c, deadline, err);
    if (r == QVM_ETIMEOUT)
      r = qvm_error_set(err, QVM_ETIMEOUT, "the vm's shim did not answer qmp '%s' within %d s",
                        command, timeout_ms / 1000);
    else if (r >= 0 && !m)
      r = qvm_error_set(err, QVM_EPROTO, "the vm's shim closed the connection before answering");
    struct json_object *id = NULL;
    /* Only the reply matters: id 1, or an error without one (no slot). */
    if (r >= 0 && !(json_object_object_get_ex(m, "id", &id) && json_object_get_int(id) == 1) &&
        !(json_object_object_get_ex(m, "ok", NULL) && !is_true(m, "ok"))) {
      json_object_put(m);
      m = NULL;
    }
  }
  ctl_close(&c);
  if (r < 0) return r;
  struct json_object *res = NULL;
  if (!is_true(m, "ok"))
    r = ctl_error(m, err);
  else if (!json_object_object_get_ex(m, "result", &res))
    r = qvm_error_set(err, QVM_EPROTO, "the vm's shim answered qmp '%s' without a result", command);
  if (r >= 0 && out) *out = json_object_get(res);
  json_object_put(m);
  return r;
}

int vm_ctl_qmp(struct json_object **out, const vm_paths *p, const char *command,
               struct json_object *args, int timeout_ms, qvm_error **err) {
  struct json_object *req = json_object_new_object();
  if (!req) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  json_object_object_add(req, "cmd", json_object_new_string("qmp"));
  json_object_object_add(req, "command", json_object_new_string(command));
  if (args) json_object_object_add(req, "arguments", json_object_get(args));
  return ctl_call(out, p, req, command, timeout_ms, err);
}

int vm_ctl_save_state(const vm_paths *p, int timeout_ms, qvm_error **err) {
  struct json_object *req = json_object_new_object();
  if (!req) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  json_object_object_add(req, "cmd", json_object_new_string("save-state"));
  return ctl_call(NULL, p, req, "save-state", timeout_ms, err);
}

int vm_ctl_expiry(int64_t *out_us, const vm_paths *p, int timeout_ms, qvm_error **err) {
  struct json_object *req = json_object_new_object(), *res = NULL, *v = NULL;
  if (!req) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  json_object_object_add(req, "cmd", json_object_new_string("expiry"));
  int r = ctl_call(&res, p, req, "expiry", timeout_ms, err);
  if (r < 0) return r;
  if (!json_object_object_get_ex(res, "expires_at_us", &v) ||
      !json_object_is_type(v, json_type_int))
    r = qvm_error_set(err, QVM_EPROTO, "the vm's shim answered 'expiry' without a deadline");
  else if (out_us)
    *out_us = json_object_get_int64(v);
  json_object_put(res);
  return r;
}
