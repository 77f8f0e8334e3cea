/* SPDX-License-Identifier: MIT */
/* ctl.sock's event ring without a VM: replay from a sequence number, the
 * "gap" marker when that number is older than the ring, live-only by default. */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "testlib.h"
#include "vm/shim.h"
#include "vm/shim_ctl.h"

typedef struct rig {
  char *dir;
  char path[600];
  shim_ctl *ctl;
  shim *s; /* NULL: requests that need a VM are not sent */
  int fd;
  char buf[1 << 20];
  size_t len;
} rig;

static void pump(rig *r) {
  struct pollfd pfd[SHIM_CTL_POLLFDS];
  shim_ctl_pollfds(r->ctl, pfd);
  if (poll(pfd, SHIM_CTL_POLLFDS, shim_ctl_pending(r->ctl) ? 0 : 50) > 0 ||
      shim_ctl_pending(r->ctl))
    shim_ctl_handle(r->ctl, r->s, pfd);
}

/* The next line the client got (pumping the server meanwhile). */
static struct json_object *next(rig *r) {
  for (int i = 0; i < 200; i++) {
    char *nl = memchr(r->buf, '\n', r->len);
    if (nl) {
      *nl = '\0';
      struct json_object *o = json_tokener_parse(r->buf);
      size_t used = (size_t)(nl - r->buf) + 1;
      memmove(r->buf, nl + 1, r->len - used);
      r->len -= used;
      assert_non_null(o);
      return o;
    }
    pump(r);
    ssize_t n = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, MSG_DONTWAIT);
    if (n > 0) r->len += (size_t)n;
  }
  fail_msg("no message from the shim's ctl");
  return NULL;
}

static int64_t geti(struct json_object *o, const char *a, const char *b) {
  struct json_object *v = NULL;
  if (!json_object_object_get_ex(o, a, &v)) return -1;
  if (b && !json_object_object_get_ex(v, b, &v)) return -1;
  return json_object_get_int64(v);
}

static rig *rig_new(int events) {
  rig *r = calloc(1, sizeof *r);
  r->dir = qvm_test_mkdtemp("shim-ctl-unit");
  snprintf(r->path, sizeof r->path, "%s/ctl.sock", r->dir);
  assert_int_equal(shim_ctl_open(&r->ctl, r->path, NULL), 0);
  for (int i = 1; i <= events; i++) {
    char line[64];
    int n = snprintf(line, sizeof line, "{\"event\":\"e\",\"n\":%d}", i);
    shim_ctl_event(r->ctl, line, (size_t)n);
  }
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  strcpy(sa.sun_path, r->path);
  r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal(connect(r->fd, (struct sockaddr *)&sa, sizeof sa), 0);
  return r;
}

static void rig_free(rig *r) {
  close(r->fd);
  shim_ctl_free(r->ctl);
  qvm_test_rmtree(r->dir);
  free(r->dir);
  free(r);
}

static void send_line(rig *r, const char *s) {
  assert_int_equal(send(r->fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

static void test_gap(void **state) {
  (void)state;
  int total = SHIM_CTL_RING + 88;
  rig *r = rig_new(total);
  assert_int_equal(shim_ctl_seq(r->ctl), (unsigned long long)total);
  send_line(r, "{\"id\":1,\"cmd\":\"subscribe\",\"since\":0}\n");
  struct json_object *o = next(r);
  assert_int_equal(geti(o, "result", "seq"), total);
  assert_int_equal(geti(o, "result", "oldest_seq"), 89);
  json_object_put(o);
  o = next(r);
  assert_int_equal(geti(o, "sub", NULL), 1);
  assert_int_equal(geti(o, "gap", "first"), 1);
  assert_int_equal(geti(o, "gap", "last"), 88);
  json_object_put(o);
  for (int seq = 89; seq <= total; seq++) {
    o = next(r);
    assert_int_equal(geti(o, "seq", NULL), seq);
    assert_int_equal(geti(o, "event", "n"), seq);
    json_object_put(o);
  }
  /* live after the replay */
  shim_ctl_event(r->ctl, "{\"event\":\"live\"}", 16);
  o = next(r);
  assert_int_equal(geti(o, "seq", NULL), total + 1);
  json_object_put(o);
  rig_free(r);
}

static void test_since_and_default(void **state) {
  (void)state;
  rig *r = rig_new(10);
  send_line(r, "{\"id\":2,\"cmd\":\"subscribe\",\"since\":7}\n");
  struct json_object *o = next(r);
  assert_int_equal(geti(o, "result", "oldest_seq"), 1);
  json_object_put(o);
  for (int seq = 8; seq <= 10; seq++) {
    o = next(r);
    assert_int_equal(geti(o, "seq", NULL), seq);
    json_object_put(o);
  }
  rig_free(r);
  /* without "since": live events only */
  r = rig_new(10);
  send_line(r, "{\"id\":3,\"cmd\":\"subscribe\"}\n");
  json_object_put(next(r));
  shim_ctl_event(r->ctl, "{\"event\":\"x\"}", 13);
  o = next(r);
  assert_int_equal(geti(o, "seq", NULL), 11);
  json_object_put(o);
  /* since in the future, a negative since: refused */
  rig_free(r);
  r = rig_new(1);
  send_line(r, "{\"id\":4,\"cmd\":\"subscribe\",\"since\":-1}\n");
  o = next(r);
  struct json_object *code = NULL;
  assert_true(json_object_object_get_ex(o, "error", &code));
  json_object_put(o);
  rig_free(r);
}

static const char *gets(struct json_object *o, const char *a, const char *b) {
  struct json_object *v = NULL;
  if (!json_object_object_get_ex(o, a, &v)) return "";
  if (b && !json_object_object_get_ex(v, b, &v)) return "";
  return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
}

/* Jobs are capped per connection (one connection repeating kill filled the
 * whole table), and a refused stop does not act. The shim here has a kill
 * under way already, so a kill only adds a job; a stop that acted would
 * move its phase on from "running". */
static void test_jobs_per_client(void **state) {
  (void)state;
  rig *r = rig_new(0);
  shim s = {.phase = SHIM_KILLED,
            .kill_requested = true,
            .pidfd = -1,
            .events_fd = -1,
            .deadline_ms = -1,
            .repress_ms = -1};
  r->s = &s;
  int ok = 0;
  for (int i = 1; i <= 4; i++) {
    char line[64];
    snprintf(line, sizeof line, "{\"id\":%d,\"cmd\":\"kill\"}\n", i);
    send_line(r, line);
    struct json_object *o = next(r);
    while (geti(o, "id", NULL) != i) { /* job progress lines come between */
      json_object_put(o);
      o = next(r);
    }
    struct json_object *v = NULL;
    if (json_object_object_get_ex(o, "ok", &v) && json_object_get_boolean(v)) ok++;
    json_object_put(o);
  }
  assert_int_equal(ok, 4);
  s.phase = SHIM_RUNNING; /* a stop now would act: it must not, being refused */
  send_line(r, "{\"id\":5,\"cmd\":\"stop\",\"timeout_ms\":0}\n");
  struct json_object *o = next(r);
  while (geti(o, "id", NULL) != 5) {
    json_object_put(o);
    o = next(r);
  }
  assert_string_equal(gets(o, "error", "code"), "busy");
  json_object_put(o);
  assert_int_equal(s.phase, SHIM_RUNNING);
  send_line(r, "{\"id\":6,\"cmd\":\"kill\"}\n");
  o = next(r);
  assert_int_equal(geti(o, "id", NULL), 6);
  assert_string_equal(gets(o, "error", "code"), "busy");
  json_object_put(o);
  /* another connection still gets its job */
  int fd2 = r->fd;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  strcpy(sa.sun_path, r->path);
  r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal(connect(r->fd, (struct sockaddr *)&sa, sizeof sa), 0);
  s.phase = SHIM_KILLED;
  send_line(r, "{\"id\":7,\"cmd\":\"kill\"}\n");
  o = next(r);
  assert_int_equal(geti(o, "id", NULL), 7);
  struct json_object *v = NULL;
  assert_true(json_object_object_get_ex(o, "ok", &v) && json_object_get_boolean(v));
  json_object_put(o);
  close(fd2);
  rig_free(r);
}

/* since:0 with more than SHIM_CTL_OUT_MAX in the ring: the replay goes out
 * as the client reads (it used to be queued at once, and the subscriber was
 * dropped without a word), then live events follow. */
static void test_replay_larger_than_queue(void **state) {
  (void)state;
  rig *r = rig_new(0);
  enum { N = 100, PAD = 30 << 10 };
  char *line = malloc(PAD + 64);
  for (int i = 1; i <= N; i++) {
    int n = snprintf(line, 64, "{\"event\":\"big\",\"n\":%d,\"pad\":\"", i);
    memset(line + n, 'p', PAD);
    memcpy(line + n + PAD, "\"}", 3);
    shim_ctl_event(r->ctl, line, strlen(line));
  }
  free(line);
  send_line(r, "{\"id\":1,\"cmd\":\"subscribe\",\"since\":0}\n");
  struct json_object *o = next(r);
  assert_int_equal(geti(o, "result", "oldest_seq"), 1);
  json_object_put(o);
  for (int seq = 1; seq <= N; seq++) {
    o = next(r);
    assert_int_equal(geti(o, "seq", NULL), seq);
    assert_int_equal(geti(o, "event", "n"), seq);
    json_object_put(o);
  }
  shim_ctl_event(r->ctl, "{\"event\":\"live\"}", 16);
  o = next(r);
  assert_int_equal(geti(o, "seq", NULL), N + 1);
  json_object_put(o);
  rig_free(r);
}

/* An id of the longest allowed string (128 bytes) with a gap marker: the
 * marker names it in full (the connection used to be closed). */
static void test_gap_long_id(void **state) {
  (void)state;
  rig *r = rig_new(SHIM_CTL_RING + 5);
  char id[129], req[300];
  memset(id, 'i', 128);
  id[128] = '\0';
  snprintf(req, sizeof req, "{\"id\":\"%s\",\"cmd\":\"subscribe\",\"since\":0}\n", id);
  send_line(r, req);
  struct json_object *o = next(r);
  assert_int_equal(geti(o, "result", "oldest_seq"), 6);
  json_object_put(o);
  o = next(r);
  assert_string_equal(gets(o, "sub", NULL), id);
  assert_int_equal(geti(o, "gap", "first"), 1);
  assert_int_equal(geti(o, "gap", "last"), 5);
  json_object_put(o);
  o = next(r);
  assert_int_equal(geti(o, "seq", NULL), 6);
  json_object_put(o);
  rig_free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gap),
      cmocka_unit_test(test_since_and_default),
      cmocka_unit_test(test_jobs_per_client),
      cmocka_unit_test(test_replay_larger_than_queue),
      cmocka_unit_test(test_gap_long_id),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
