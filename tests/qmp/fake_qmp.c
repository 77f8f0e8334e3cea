/* SPDX-License-Identifier: MIT */
#include "fake_qmp.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

static void fake_fail(fake_qmp *f, const char *fmt, ...) {
  if (f->failure[0]) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(f->failure, sizeof(f->failure), fmt, ap);
  va_end(ap);
}

static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

/* "%ID%" -> last id, "%PREV%" -> the one before. */
static char *expand(const fake_qmp *f, const char *text) {
  char *out = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&out, &len);
  while (*text) {
    if (strncmp(text, "%ID%", 4) == 0) {
      fputs(f->ids[1], m);
      text += 4;
    } else if (strncmp(text, "%PREV%", 6) == 0) {
      fputs(f->ids[0], m);
      text += 6;
    } else {
      fputc(*text++, m);
    }
  }
  fclose(m);
  return out;
}

/* Reads one line byte by byte with recvmsg, so an fd riding on any byte of it
 * is caught. Returns the line (malloc'd) or NULL at EOF. */
static char *read_line(int fd, int *passed_fd) {
  char *line = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&line, &len);
  for (;;) {
    char c;
    struct iovec iov = {.iov_base = &c, .iov_len = 1};
    union {
      char buf[CMSG_SPACE(sizeof(int))];
      struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.buf,
                         .msg_controllen = sizeof(control.buf)};
    ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      fclose(m);
      free(line);
      return NULL;
    }
    for (struct cmsghdr *c2 = CMSG_FIRSTHDR(&msg); c2; c2 = CMSG_NXTHDR(&msg, c2))
      if (c2->cmsg_level == SOL_SOCKET && c2->cmsg_type == SCM_RIGHTS)
        memcpy(passed_fd, CMSG_DATA(c2), sizeof(int));
    if (c == '\n') break;
    fputc(c, m);
  }
  fclose(m);
  return line;
}

static void check_args(fake_qmp *f, const fake_step *s, json_object *cmd) {
  json_object *args = NULL;
  json_object_object_get_ex(cmd, "arguments", &args);
  if (!s->args) {
    if (args) fake_fail(f, "'%s' has unexpected arguments", s->text);
    return;
  }
  json_object *want = json_tokener_parse(s->args);
  if (!args || !json_object_equal(args, want))
    fake_fail(f, "'%s' arguments are %s, not %s", s->text,
              args ? json_object_to_json_string(args) : "missing", s->args);
  json_object_put(want);
}

static void use_passed_fd(fake_qmp *f, const fake_step *s, int passed) {
  if (s->kind != FAKE_EXPECT_FD) {
    if (passed >= 0) {
      fake_fail(f, "'%s' carried an unexpected fd", s->text);
      close(passed);
    }
    return;
  }
  if (passed < 0) {
    fake_fail(f, "'%s' carried no fd", s->text);
    return;
  }
  if (write(passed, FAKE_FD_GREETING, strlen(FAKE_FD_GREETING)) !=
      (ssize_t)strlen(FAKE_FD_GREETING))
    fake_fail(f, "cannot write through the passed fd");
  close(passed);
}

static int step_expect(fake_qmp *f, const fake_step *s) {
  int passed = -1;
  char *line = read_line(f->fd, &passed);
  if (!line) {
    fake_fail(f, "eof while expecting '%s'", s->text);
    return -1;
  }
  json_object *cmd = json_tokener_parse(line);
  json_object *exec = NULL, *id = NULL;
  if (!cmd || !json_object_object_get_ex(cmd, "execute", &exec) ||
      strcmp(json_object_get_string(exec), s->text) != 0) {
    fake_fail(f, "expected '%s', got: %s", s->text, line);
  } else if (!json_object_object_get_ex(cmd, "id", &id)) {
    fake_fail(f, "'%s' was sent without an id", s->text);
  } else {
    memcpy(f->ids[0], f->ids[1], sizeof(f->ids[0]));
    snprintf(f->ids[1], sizeof(f->ids[1]), "%s", json_object_to_json_string(id));
    check_args(f, s, cmd);
  }
  use_passed_fd(f, s, passed);
  json_object_put(cmd);
  free(line);
  return 0;
}

static void step_flood(fake_qmp *f, size_t len) {
  static char chunk[65536];
  memset(chunk, '[', sizeof(chunk));
  while (f->flood_written < len) {
    size_t n = len - f->flood_written < sizeof(chunk) ? len - f->flood_written : sizeof(chunk);
    ssize_t w = send(f->fd, chunk, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return; /* the client hung up: what we wanted */
    f->flood_written += (size_t)w;
  }
}

static int run_step(fake_qmp *f, const fake_step *s) {
  char buf[256];
  switch (s->kind) {
  case FAKE_SEND: {
    char *text = expand(f, s->text);
    int r = write_all(f->fd, text, strlen(text));
    free(text);
    if (r < 0) fake_fail(f, "cannot send: %s", s->text);
    return r;
  }
  case FAKE_SEND_RAW:
    if (write_all(f->fd, s->text, s->len) < 0) fake_fail(f, "cannot send raw bytes");
    return 0;
  case FAKE_EXPECT:
  case FAKE_EXPECT_FD: return step_expect(f, s);
  case FAKE_SEND_FLOOD: step_flood(f, s->len); return 0;
  case FAKE_CLOSE: shutdown(f->fd, SHUT_WR); return 0;
  case FAKE_WAIT_EOF:
    while (read(f->fd, buf, sizeof(buf)) > 0) {
    }
    return 0;
  case FAKE_END: return -1;
  }
  return -1;
}

static void *fake_main(void *arg) {
  fake_qmp *f = arg;
  if (f->listen_fd >= 0) {
    f->fd = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (f->fd < 0) {
      fake_fail(f, "accept: %s", strerror(errno));
      return NULL;
    }
  }
  for (const fake_step *s = f->script; s->kind != FAKE_END; s++)
    if (run_step(f, s) < 0) break;
  close(f->fd);
  return NULL;
}

void fake_qmp_start_fd(fake_qmp *f, const fake_step *script, int fd) {
  memset(f, 0, sizeof(*f));
  f->fd = fd;
  f->listen_fd = -1;
  f->script = script;
  snprintf(f->ids[0], sizeof(f->ids[0]), "null");
  snprintf(f->ids[1], sizeof(f->ids[1]), "null");
  assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

void fake_qmp_start_accept(fake_qmp *f, const fake_step *script, int listen_fd) {
  memset(f, 0, sizeof(*f));
  f->fd = -1;
  f->listen_fd = listen_fd;
  f->script = script;
  snprintf(f->ids[0], sizeof(f->ids[0]), "null");
  snprintf(f->ids[1], sizeof(f->ids[1]), "null");
  assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

void fake_qmp_start(fake_qmp *f, const fake_step *script, int *client_fd) {
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  *client_fd = sv[0];
  fake_qmp_start_fd(f, script, sv[1]);
}

void fake_qmp_join(fake_qmp *f) {
  pthread_join(f->thread, NULL);
  if (f->failure[0]) fail_msg("fake qmp server: %s", f->failure);
}
