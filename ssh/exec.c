/* SPDX-License-Identifier: MIT */
/*
 * exec and interactive shells on a channel of an open session.
 *
 * One poll() loop serves everything: stdout and stderr are each read until
 * libssh2 has nothing more (so neither can fill the window and stall the
 * other), stdin is forwarded as the channel window allows, and the loop
 * sleeps in poll() on the socket, stdin and the window-change fd.
 */
#include <fcntl.h>
#include <poll.h>
#include <string.h>

#include <qvm/text.h>

#include "ssh/ssh_internal.h"
#include "util/time.h"

#define CHANNEL_WINDOW (16u << 20)
#define CHANNEL_PACKET 32768
#define READ_CHUNK (256u << 10)
#define STDIN_CHUNK (64u << 10)

typedef struct pump {
  qvm_ssh *ssh;
  LIBSSH2_CHANNEL *ch;
  const qvm_ssh_exec_options *o;
  int64_t deadline;
  char *buf;
  char in_buf[STDIN_CHUNK];
  size_t in_len, in_off;
  bool in_open, eof_sent, want_out, resize_pending;
  uint64_t bytes[2];
} pump;

/* Runs a libssh2 call until it stops saying EAGAIN. */
#define SSH_RETRY(p, what, call)                                                                   \
  ({                                                                                               \
    int _rc_;                                                                                      \
    while ((_rc_ = (call)) == LIBSSH2_ERROR_EAGAIN) {                                              \
      int _w_ = ssh_wait_socket((p)->ssh, (p)->deadline, what, err);                               \
      if (_w_ < 0) return _w_;                                                                     \
    }                                                                                              \
    _rc_;                                                                                          \
  })

static int fd_write(int fd, const char *data, size_t len, qvm_error **err) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n > 0) {
      data += n;
      len -= (size_t)n;
    } else if (n < 0 && errno == EAGAIN) {
      struct pollfd pfd = {.fd = fd, .events = POLLOUT};
      poll(&pfd, 1, -1);
    } else if (n < 0 && errno != EINTR) {
      return qvm_error_set_errno(err, errno, "cannot write command output");
    }
  }
  return 0;
}

static int deliver(pump *p, int stream, const char *data, size_t len, qvm_error **err) {
  int fd = stream == QVM_SSH_STDOUT ? p->o->stdout_fd : p->o->stderr_fd;
  p->bytes[stream - 1] += len;
  if (fd >= 0) {
    int r = fd_write(fd, data, len, err);
    if (r < 0) return r;
  }
  if (p->o->on_output) {
    int r = p->o->on_output(p->o->ctx, stream, data, len);
    if (r < 0) return qvm_error_set(err, r, "command output consumer aborted");
  }
  return 0;
}

/* Reads one stream until libssh2 has nothing more right now. */
static int drain(pump *p, int stream_id, qvm_error **err) {
  for (;;) {
    ssize_t n = libssh2_channel_read_ex(p->ch, stream_id, p->buf, READ_CHUNK);
    if (n == LIBSSH2_ERROR_EAGAIN || n == 0) return 0;
    if (n < 0) return ssh_session_error(p->ssh, (int)n, "reading command output failed", err);
    int r = deliver(p, stream_id == 0 ? QVM_SSH_STDOUT : QVM_SSH_STDERR, p->buf, (size_t)n, err);
    if (r < 0) return r;
  }
}

/* Drains both streams until libssh2 has nothing queued for the channel.
 * Reading one stream pulls every packet off the socket, including the other
 * stream's; polling the socket while those sit in libssh2's queue would wait
 * forever for a sender whose window they fill. */
static int drain_all(pump *p, qvm_error **err) {
  unsigned long queued;
  uint64_t before;
  do { /* stop when a pass moved nothing: libssh2 is blocked on sending */
    before = p->bytes[0] + p->bytes[1];
    int r = drain(p, 0, err);
    if (r >= 0) r = drain(p, 1, err);
    if (r < 0) return r;
    queued = 0;
    libssh2_channel_window_read_ex(p->ch, &queued, NULL);
  } while (queued > 0 && p->bytes[0] + p->bytes[1] != before);
  return 0;
}

static void forward_stdin(pump *p) {
  p->want_out = false;
  while (p->in_off < p->in_len) {
    ssize_t n = libssh2_channel_write(p->ch, p->in_buf + p->in_off, p->in_len - p->in_off);
    if (n == LIBSSH2_ERROR_EAGAIN) {
      p->want_out = true;
      return;
    }
    if (n < 0) { /* the remote stopped reading (exited): drop the rest, like EPIPE */
      p->in_open = false;
      p->in_off = p->in_len = 0;
      break;
    }
    p->in_off += (size_t)n;
  }
  p->in_off = p->in_len = 0;
  if (!p->in_open && !p->eof_sent) {
    int rc = libssh2_channel_send_eof(p->ch);
    if (rc == LIBSSH2_ERROR_EAGAIN)
      p->want_out = true;
    else
      p->eof_sent = true;
  }
}

static void read_stdin(pump *p) {
  ssize_t n = read(p->o->stdin_fd, p->in_buf, sizeof(p->in_buf));
  if (n > 0)
    p->in_len = (size_t)n;
  else if (n == 0 || (errno != EINTR && errno != EAGAIN))
    p->in_open = false;
}

static void check_resize(pump *p) {
  if (!p->resize_pending) return;
  int cols = p->o->cols > 0 ? p->o->cols : 80, rows = p->o->rows > 0 ? p->o->rows : 24;
  if (p->o->size_fn) p->o->size_fn(p->o->ctx, &cols, &rows);
  int rc = libssh2_channel_request_pty_size(p->ch, cols, rows);
  if (rc == LIBSSH2_ERROR_EAGAIN)
    p->want_out = true;
  else
    p->resize_pending = false;
}

static int wait_events(pump *p, qvm_error **err) {
  struct pollfd pfd[3] = {{.fd = p->ssh->fd, .events = POLLIN}, {.fd = -1}, {.fd = -1}};
  if (p->want_out ||
      (libssh2_session_block_directions(p->ssh->session) & LIBSSH2_SESSION_BLOCK_OUTBOUND))
    pfd[0].events |= POLLOUT;
  if (p->in_open && p->in_len == 0)
    pfd[1] = (struct pollfd){.fd = p->o->stdin_fd, .events = POLLIN};
  if (p->o->winch_fd >= 0) pfd[2] = (struct pollfd){.fd = p->o->winch_fd, .events = POLLIN};
  int n = poll(pfd, 3, qvm_deadline_left_ms(p->deadline));
  if (n == 0) {
    int r = qvm_error_set(err, QVM_ETIMEOUT, "command did not finish in %d ms", p->o->timeout_ms);
    if (err && *err) qvm_error_set_class(*err, "Timeout");
    return r;
  }
  if (n < 0) return errno == EINTR ? 0 : qvm_error_set_errno(err, errno, "poll failed");
  if (pfd[1].revents) read_stdin(p);
  if (pfd[2].revents) {
    char junk[64];
    while (read(p->o->winch_fd, junk, sizeof(junk)) == (ssize_t)sizeof(junk)) {
    }
    p->resize_pending = true;
  }
  return 0;
}

static int pump_run(pump *p, qvm_error **err) {
  for (;;) {
    int r = drain_all(p, err);
    if (r < 0) return r;
    forward_stdin(p);
    check_resize(p);
    if (libssh2_channel_eof(p->ch)) return drain_all(p, err); /* data queued with the EOF */
    r = wait_events(p, err);
    if (r < 0) return r;
  }
}

static int channel_start(pump *p, const char *command, qvm_error **err) {
  const qvm_ssh_exec_options *o = p->o;
  while (!(p->ch = libssh2_channel_open_ex(p->ssh->session, "session", 7, CHANNEL_WINDOW,
                                           CHANNEL_PACKET, NULL, 0))) {
    int rc = libssh2_session_last_errno(p->ssh->session);
    if (rc != LIBSSH2_ERROR_EAGAIN)
      return ssh_session_error(p->ssh, rc, "cannot open ssh channel", err);
    int r = ssh_wait_socket(p->ssh, p->deadline, "opening an ssh channel", err);
    if (r < 0) return r;
  }
  if (o->pty) {
    const char *term = o->term ? o->term : "xterm";
    int rc = SSH_RETRY(p, "requesting a pty",
                       libssh2_channel_request_pty_ex(p->ch, term, (unsigned)strlen(term), NULL, 0,
                                                      o->cols > 0 ? o->cols : 80,
                                                      o->rows > 0 ? o->rows : 24, 0, 0));
    if (rc < 0) return ssh_session_error(p->ssh, rc, "pty request refused", err);
  }
  int rc = command ? SSH_RETRY(p, "starting the command",
                               libssh2_channel_process_startup(p->ch, "exec", 4, command,
                                                               (unsigned)strlen(command)))
                   : SSH_RETRY(p, "starting a shell", libssh2_channel_shell(p->ch));
  if (rc < 0) return ssh_session_error(p->ssh, rc, "cannot start remote command", err);
  return 0;
}

static int channel_finish(pump *p, qvm_ssh_exec_result *res, qvm_error **err) {
  int rc = SSH_RETRY(p, "closing the channel", libssh2_channel_close(p->ch));
  if (rc == 0) rc = SSH_RETRY(p, "waiting for the exit status", libssh2_channel_wait_closed(p->ch));
  if (rc < 0) return ssh_session_error(p->ssh, rc, "closing the channel failed", err);
  char *sig = NULL;
  size_t sig_len = 0;
  res->exit_code = libssh2_channel_get_exit_status(p->ch);
  libssh2_channel_get_exit_signal(p->ch, &sig, &sig_len, NULL, NULL, NULL, NULL);
  if (sig && sig_len > 0) {
    res->signaled = true;
    res->exit_code = -1;
    /* The guest chooses the name: it is printed and logged. */
    qvm_text_for_terminal_into(res->signal, sizeof(res->signal), sig, sig_len, 0);
  }
  if (sig) libssh2_free(p->ssh->session, sig);
  return 0;
}

static void channel_discard(pump *p) {
  if (!p->ch) return;
  /* Best effort and bounded: the session stays usable for later channels. */
  int64_t deadline = qvm_now_ms() + 2000;
  p->deadline = deadline;
  while (libssh2_channel_free(p->ch) == LIBSSH2_ERROR_EAGAIN)
    if (ssh_wait_socket(p->ssh, deadline, "closing the channel", NULL) < 0) break;
  p->ch = NULL;
}

static void audit_write(const char *path, const qvm_ssh_exec_options *o, const char *command,
                        const qvm_ssh_exec_result *res, int error, const char *vm) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  char when[32];
  qvm_format_rfc3339(when, qvm_realtime_us());
  qvm_strbuf_printf(&sb, "{\"time\":\"%s\",\"vm\":", when);
  ssh_json_string(&sb, vm ? vm : "");
  qvm_strbuf_puts(&sb, ",\"command\":[");
  for (size_t i = 0; o->argv && o->argv[i]; i++) {
    if (i) qvm_strbuf_putc(&sb, ',');
    ssh_json_string(&sb, o->argv[i]);
  }
  if (!o->argv && command) ssh_json_string(&sb, command);
  qvm_strbuf_printf(&sb, "],\"shell\":%s,", o->argv ? "false" : "true");
  if (error < 0 || res->signaled)
    qvm_strbuf_puts(&sb, "\"exit\":null,");
  else
    qvm_strbuf_printf(&sb, "\"exit\":%d,", res->exit_code);
  qvm_strbuf_puts(&sb, "\"signal\":");
  if (res->signaled)
    ssh_json_string(&sb, res->signal);
  else
    qvm_strbuf_puts(&sb, "null");
  if (error < 0) qvm_strbuf_printf(&sb, ",\"error\":\"%s\"", qvm_error_code_name(error));
  qvm_strbuf_printf(&sb, ",\"duration_ms\":%lld,\"bytes_out\":%llu,\"bytes_err\":%llu}\n",
                    (long long)res->duration_ms, (unsigned long long)res->bytes_out,
                    (unsigned long long)res->bytes_err);
  int fd = sb.oom ? -1 : open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) { /* one write(): concurrent appenders do not interleave lines */
    ssize_t n = write(fd, sb.buf, sb.len);
    (void)n;
    close(fd);
  }
  qvm_strbuf_free(&sb);
}

int qvm_ssh_exec(qvm_ssh_exec_result *out, qvm_ssh *ssh, const qvm_ssh_exec_options *opts,
                 qvm_error **err) {
  _cleanup_free_ char *command = NULL;
  qvm_ssh_exec_result res = {0};
  int r = QVM_OPTIONS_CHECK(opts, qvm_ssh_exec_options, QVM_SSH_EXEC_OPTIONS_VERSION, err);
  if (r < 0) return r;
  if (opts->argv && opts->command)
    return qvm_error_set(err, QVM_EINVAL, "exec takes argv or a command, not both");
  if (opts->argv)
    r = qvm_ssh_quote_command(&command, opts->argv, opts->env, err);
  else if (opts->command)
    command = strdup(opts->command);
  else if (!opts->pty)
    return qvm_error_set(err, QVM_EINVAL, "exec needs a command");
  if (r < 0) return r;
  pump p = {.ssh = ssh,
            .o = opts,
            .deadline = ssh_deadline(opts->timeout_ms),
            .in_open = opts->stdin_fd >= 0,
            .buf = malloc(READ_CHUNK)};
  if (!p.buf || ((opts->argv || opts->command) && !command)) {
    free(p.buf);
    return qvm_error_set(err, QVM_ESYS, "out of memory");
  }
  int64_t started = qvm_now_ms();
  r = channel_start(&p, command, err);
  if (r >= 0) r = pump_run(&p, err);
  if (r >= 0) r = channel_finish(&p, &res, err);
  channel_discard(&p);
  free(p.buf);
  res.bytes_out = p.bytes[0];
  res.bytes_err = p.bytes[1];
  res.duration_ms = qvm_now_ms() - started;
  if (opts->audit_log) audit_write(opts->audit_log, opts, command, &res, r, ssh->vm_name);
  if (r < 0) return r;
  if (out) *out = res;
  return 0;
}
