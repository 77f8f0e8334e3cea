/* SPDX-License-Identifier: MIT */
/*
 * ctl.sock, driven directly (docs/shim-protocol.md) against the mini guest:
 * status, a QMP passthrough, refusals, event replay from a sequence number
 * (and a gap marker), a malformed line, an oversized line, two clients at
 * once, the client limit, a reader that never reads, stop as a job with
 * its phases, and expiry: the deadline read again from vm.json, and what the
 * shim does when it passes (events, exit "expired", the vm removed).
 */
#include <errno.h>
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
#include "util/time.h"

static const char *kernel, *initrd;
static char *root, ctl_path[600];

typedef struct conn {
  int fd;
  char buf[1 << 20];
  size_t len;
} conn;

static conn *conn_open(void) {
  conn *c = calloc(1, sizeof *c);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  assert_true(strlen(ctl_path) < sizeof sa.sun_path);
  strcpy(sa.sun_path, ctl_path);
  c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(c->fd >= 0);
  assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
  return c;
}

static void conn_close(conn *c) {
  close(c->fd);
  free(c);
}

static void conn_send(conn *c, const char *line) {
  size_t n = strlen(line);
  assert_int_equal(send(c->fd, line, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* The next message, NULL at EOF; fails the test after 20 s. */
static struct json_object *conn_read(conn *c) {
  int64_t deadline = qvm_now_ms() + 20000;
  for (;;) {
    char *nl = memchr(c->buf, '\n', c->len);
    if (nl) {
      *nl = '\0';
      struct json_object *o = json_tokener_parse(c->buf);
      assert_non_null(o);
      size_t used = (size_t)(nl - c->buf) + 1;
      memmove(c->buf, nl + 1, c->len - used);
      c->len -= used;
      return o;
    }
    assert_true(c->len < sizeof c->buf);
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    assert_true(poll(&p, 1, qvm_deadline_left_ms(deadline)) == 1);
    ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
    if (n <= 0) return NULL;
    c->len += (size_t)n;
  }
}

static struct json_object *get(struct json_object *o, const char *path) {
  char buf[128];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && o; k = strtok_r(NULL, ".", &save))
    if (!json_object_object_get_ex(o, k, &o)) return NULL;
  return o;
}

static const char *get_str(struct json_object *o, const char *path) {
  struct json_object *v = get(o, path);
  return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
}

static int64_t get_int(struct json_object *o, const char *path) {
  struct json_object *v = get(o, path);
  return v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
}

static bool get_bool(struct json_object *o, const char *path) {
  struct json_object *v = get(o, path);
  return v && json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

/* One request, its reply (which must carry id; -1 for a string id). */
static struct json_object *request(conn *c, const char *line, int id) {
  conn_send(c, line);
  struct json_object *r = conn_read(c);
  assert_non_null(r);
  assert_int_equal(get_int(r, "id"), id);
  return r;
}

static int qvm(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int qvm(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *args = NULL;
  if (vasprintf(&args, fmt, ap) < 0) abort();
  va_end(ap);
  int r = qvm_test_sh("'%s/qvm' %s", qvm_test_binary_dir(), args);
  free(args);
  return r;
}

static int setup(void **state) {
  (void)state;
  root = qvm_test_mkdtemp("shim-ctl");
  char dir[560];
  snprintf(dir, sizeof dir, "%s/state", root);
  setenv("QVM_STATE_DIR", dir, 1);
  snprintf(dir, sizeof dir, "%s/run", root);
  setenv("QVM_RUNTIME_DIR", dir, 1);
  snprintf(ctl_path, sizeof ctl_path, "%s/run/ctl/ctl.sock", root);
  if (qvm("create ctl --kernel '%s' --initrd '%s' --append 'console=ttyS0 qvm.dhcp=0' "
          "--memory 256M --net none >/dev/null",
          kernel, initrd) != 0 ||
      qvm("start ctl >/dev/null 2>&1") != 0)
    return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  if (qvm("rm --force ctl >/dev/null 2>&1") != 0) qvm_test_sh("pkill -9 -f '^qvm-shim ctl' ; true");
  qvm_test_rmtree(root);
  free(root);
  return 0;
}

static void test_status_qmp_errors(void **state) {
  (void)state;
  assert_int_equal(qvm_test_sh("test \"$(stat -c %%a '%s')\" = 600", ctl_path), 0);
  conn *a = conn_open(), *b = conn_open();
  struct json_object *r = request(a, "{\"id\":1,\"cmd\":\"status\"}\n", 1);
  assert_true(get_bool(r, "ok"));
  assert_string_equal(get_str(r, "result.name"), "ctl");
  assert_string_equal(get_str(r, "result.state"), "running");
  assert_true(get_int(r, "result.qemu_pid") > 0);
  assert_true(get_int(r, "result.shim_pid") > 0);
  assert_true(get_int(r, "result.seq") > 0);
  json_object_put(r);
  /* ps shows the shim as qvm-shim NAME */
  assert_int_equal(qvm_test_sh("pgrep -f '^qvm-shim ctl$' >/dev/null"), 0);

  r = request(a, "{\"id\":2,\"cmd\":\"qmp\",\"command\":\"query-status\"}\n", 2);
  assert_true(get_bool(r, "ok"));
  assert_string_equal(get_str(r, "result.status"), "running");
  json_object_put(r);
  r = request(a, "{\"id\":3,\"cmd\":\"qmp\",\"command\":\"quit\"}\n", 3);
  assert_false(get_bool(r, "ok"));
  assert_string_equal(get_str(r, "error.code"), "invalid");
  json_object_put(r);
  r = request(a, "{\"id\":4,\"cmd\":\"qmp\",\"command\":\"no-such-command\"}\n", 4);
  assert_string_equal(get_str(r, "error.code"), "qmp");
  json_object_put(r);
  r = request(a, "{\"id\":5,\"cmd\":\"frobnicate\"}\n", 5);
  assert_string_equal(get_str(r, "error.code"), "not-found");
  json_object_put(r);
  r = request(a, "{\"id\":6,\"cmd\":\"stop\",\"timeout_ms\":-3}\n", 6);
  assert_string_equal(get_str(r, "error.code"), "invalid");
  json_object_put(r);

  /* a malformed line: an error, and the connection still answers */
  conn_send(a, "{\"id\":7,\"cmd\":\n");
  r = conn_read(a);
  assert_non_null(r);
  assert_false(get_bool(r, "ok"));
  assert_string_equal(get_str(r, "error.code"), "invalid");
  json_object_put(r);
  r = request(a, "{\"id\":8,\"cmd\":\"status\"}\n", 8);
  assert_true(get_bool(r, "ok"));
  json_object_put(r);

  /* two clients at once, requests interleaved: each gets its own answers */
  conn_send(a, "{\"id\":100,\"cmd\":\"status\"}\n");
  conn_send(b, "{\"id\":200,\"cmd\":\"qmp\",\"command\":\"query-name\"}\n");
  conn_send(a, "{\"id\":101,\"cmd\":\"status\"}\n");
  r = conn_read(b);
  assert_int_equal(get_int(r, "id"), 200);
  assert_string_equal(get_str(r, "result.name"), "ctl");
  json_object_put(r);
  r = conn_read(a);
  assert_int_equal(get_int(r, "id"), 100);
  json_object_put(r);
  r = conn_read(a);
  assert_int_equal(get_int(r, "id"), 101);
  json_object_put(r);

  /* an oversized line: refused, then the connection is closed */
  size_t big = 70 << 10;
  char *line = malloc(big + 2);
  memset(line, 'x', big);
  memcpy(line, "{\"id\":9,\"cmd\":\"status\",\"pad\":\"", 30);
  line[big] = '\0';
  conn_send(b, line);
  free(line);
  r = conn_read(b);
  assert_non_null(r);
  assert_string_equal(get_str(r, "error.code"), "invalid");
  json_object_put(r);
  assert_null(conn_read(b)); /* EOF */
  conn_close(b);
  r = request(a, "{\"id\":10,\"cmd\":\"status\"}\n", 10);
  assert_true(get_bool(r, "ok"));
  json_object_put(r);
  conn_close(a);
}

static void test_limits(void **state) {
  (void)state;
  /* 16 clients at once; the 17th is told "busy" and closed */
  conn *c[17];
  for (int i = 0; i < 16; i++) {
    c[i] = conn_open();
    struct json_object *r = request(c[i], "{\"id\":1,\"cmd\":\"status\"}\n", 1);
    json_object_put(r);
  }
  c[16] = conn_open();
  struct json_object *r = conn_read(c[16]);
  assert_non_null(r);
  assert_string_equal(get_str(r, "error.code"), "busy");
  json_object_put(r);
  assert_null(conn_read(c[16]));
  for (int i = 0; i < 17; i++) conn_close(c[i]);

  /* a client that sends without ever reading is dropped once its queued
   * output passes the bound; the shim goes on answering others */
  conn *slow = conn_open();
  int one = 1;
  setsockopt(slow->fd, SOL_SOCKET, SO_SNDBUF, &one, sizeof one);
  static const char req[] = "{\"cmd\":\"status\"}\n";
  size_t sent = 0;
  int64_t deadline = qvm_now_ms() + 60000;
  while (qvm_now_ms() < deadline) {
    ssize_t n = send(slow->fd, req, sizeof req - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN) {
      struct pollfd p = {.fd = slow->fd, .events = POLLOUT};
      poll(&p, 1, 100);
      continue;
    }
    if (n < 0) break; /* EPIPE/ECONNRESET: dropped */
    sent += (size_t)n;
  }
  assert_true(qvm_now_ms() < deadline);
  size_t got = 0;
  for (;;) {
    ssize_t n = read(slow->fd, slow->buf, sizeof slow->buf);
    if (n <= 0) break;
    got += (size_t)n;
  }
  /* each reply is about 250 bytes: it got far fewer than it asked for */
  assert_true(got < (sent / (sizeof req - 1)) * 200);
  conn_close(slow);
  conn *a = conn_open();
  r = request(a, "{\"id\":\"after\",\"cmd\":\"status\"}\n", -1);
  json_object_put(r);
  conn_close(a);
}

static void test_subscribe_and_stop(void **state) {
  (void)state;
  conn *a = conn_open(), *b = conn_open();
  struct json_object *r = request(a, "{\"id\":1,\"cmd\":\"subscribe\",\"since\":0}\n", 1);
  assert_true(get_bool(r, "ok"));
  int64_t newest = get_int(r, "result.seq");
  assert_int_equal(get_int(r, "result.oldest_seq"), 1);
  assert_true(newest >= 3);
  json_object_put(r);
  /* replay from the start: seq 1, 2, ... newest in order, the first the
   * shim's own start */
  for (int64_t seq = 1; seq <= newest; seq++) {
    r = conn_read(a);
    assert_int_equal(get_int(r, "sub"), 1);
    assert_int_equal(get_int(r, "seq"), seq);
    if (seq == 1) assert_string_equal(get_str(r, "event.event"), "qvm-shim-start");
    json_object_put(r);
  }
  /* replay from a sequence number: only what came after it */
  r = request(b, "{\"id\":\"s\",\"cmd\":\"subscribe\",\"since\":2}\n", -1);
  assert_true(get_bool(r, "ok"));
  json_object_put(r);
  r = conn_read(b);
  assert_string_equal(get_str(r, "sub"), "s");
  assert_int_equal(get_int(r, "seq"), 3);
  json_object_put(r);
  for (int64_t seq = 4; seq <= newest; seq++) json_object_put(conn_read(b));
  r = request(b, "{\"id\":2,\"cmd\":\"subscribe\"}\n", 2);
  assert_string_equal(get_str(r, "error.code"), "busy"); /* one subscription per connection */
  json_object_put(r);

  /* stop is a job: timeout 0 goes straight from powerdown to quit */
  conn *s = conn_open();
  r = request(s, "{\"id\":5,\"cmd\":\"stop\",\"timeout_ms\":0}\n", 5);
  assert_true(get_bool(r, "ok"));
  int64_t job = get_int(r, "result.job");
  assert_true(job > 0);
  json_object_put(r);
  bool saw_powerdown = false, saw_quit = false, done = false;
  while (!done) {
    r = conn_read(s);
    assert_non_null(r);
    assert_int_equal(get_int(r, "job"), job);
    const char *phase = get_str(r, "progress.phase");
    if (!strcmp(phase, "powerdown")) saw_powerdown = true;
    if (!strcmp(phase, "quit")) saw_quit = true;
    if (get_bool(r, "done")) {
      done = true;
      assert_true(get_bool(r, "ok"));
      assert_string_equal(get_str(r, "result.exit.reason"), "forced");
    }
    json_object_put(r);
  }
  assert_true(saw_powerdown && saw_quit);
  assert_null(conn_read(s)); /* the shim exits after the job */
  /* the subscribers saw the stop live, after what they had, then EOF */
  bool live = false;
  for (struct json_object *e; (e = conn_read(a));) {
    if (get_int(e, "seq") > newest && !strcmp(get_str(e, "event.event"), "qvm-exit")) live = true;
    json_object_put(e);
  }
  assert_true(live);
  conn_close(s);
  conn_close(a);
  conn_close(b);
  char *st = qvm_test_sh_output("'%s/qvm' info --json ctl", qvm_test_binary_dir());
  assert_non_null(st);
  struct json_object *info = json_tokener_parse(st);
  free(st);
  assert_string_equal(get_str(info, "state"), "stopped");
  json_object_put(info);
  assert_int_not_equal(qvm_test_sh("test -e '%s'", ctl_path), 0); /* removed */
}

/* spec.sandbox.expires_at in the vm's vm.json (the shim reads it only when
 * asked; replaced by a rename, as qvm writes it, so that no reader of the
 * file ever sees it half-written). */
static void set_expires_at(const char *value) {
  char path[700];
  snprintf(path, sizeof path, "%s/state/vms/ctl/vm.json", root);
  struct json_object *doc = json_object_from_file(path), *spec = NULL;
  assert_non_null(doc);
  assert_true(json_object_object_get_ex(doc, "spec", &spec));
  struct json_object *sb = json_object_new_object();
  json_object_object_add(sb, "expires_at", json_object_new_string(value));
  json_object_object_add(spec, "sandbox", sb);
  char tmp[720];
  snprintf(tmp, sizeof tmp, "%s.test-tmp", path);
  assert_int_equal(json_object_to_file(tmp, doc), 0);
  assert_int_equal(rename(tmp, path), 0);
  json_object_put(doc);
}

static void test_expiry(void **state) {
  (void)state;
  conn *a = conn_open();
  /* not a sandbox: no deadline */
  struct json_object *r = request(a, "{\"id\":1,\"cmd\":\"expiry\"}\n", 1);
  assert_true(get_bool(r, "ok"));
  assert_int_equal(get_int(r, "result.expires_at_us"), 0);
  json_object_put(r);
  /* a deadline an hour away is taken to the microsecond */
  char at[32];
  int64_t later = qvm_realtime_us() + 3600 * INT64_C(1000000);
  qvm_format_rfc3339(at, later);
  set_expires_at(at);
  r = request(a, "{\"id\":2,\"cmd\":\"expiry\"}\n", 2);
  assert_true(get_bool(r, "ok"));
  assert_int_equal(get_int(r, "result.expires_at_us"), later);
  json_object_put(r);
  /* a vm.json that does not read: refused, the old deadline kept */
  set_expires_at("soon");
  r = request(a, "{\"id\":3,\"cmd\":\"expiry\"}\n", 3);
  assert_string_equal(get_str(r, "error.code"), "invalid");
  assert_non_null(strstr(get_str(r, "error.message"), "expires_at"));
  json_object_put(r);
  r = request(a, "{\"id\":4,\"cmd\":\"status\"}\n", 4);
  assert_string_equal(get_str(r, "result.state"), "running");
  json_object_put(r);
  /* a deadline 1.5 s away: the shim stops QEMU and removes the vm */
  int64_t soon = qvm_realtime_us() + 1500000;
  qvm_format_rfc3339(at, soon);
  set_expires_at(at);
  r = request(a, "{\"id\":5,\"cmd\":\"subscribe\"}\n", 5);
  json_object_put(r);
  conn *b = conn_open();
  r = request(b, "{\"id\":6,\"cmd\":\"expiry\"}\n", 6);
  assert_int_equal(get_int(r, "result.expires_at_us"), soon);
  json_object_put(r);
  conn_close(b);
  bool expired = false, exited = false;
  while ((r = conn_read(a))) {
    const char *ev = get_str(r, "event.event");
    /* what the subscriber saw, for a failure's log */
    fprintf(stderr, "# %s\n", json_object_to_json_string(r));
    if (ev && !strcmp(ev, "qvm-expired")) {
      expired = true;
      assert_int_equal(get_int(r, "event.data.expires_at_us"), soon);
      assert_true(qvm_realtime_us() >= soon);
    }
    if (ev && !strcmp(ev, "qvm-exit")) {
      exited = true;
      assert_true(expired);
      assert_string_equal(get_str(r, "event.data.reason"), "expired");
    }
    json_object_put(r);
  }
  conn_close(a);
  if (!expired || !exited) { /* what the shim left, for the log */
    qvm_test_sh("pgrep -af qvm-shim >&2; tail -n 20 '%s/state/vms/ctl/events.jsonl' >&2", root);
  }
  assert_true(expired && exited);
  /* within 5 s of the deadline nothing of the vm is left */
  while (qvm_test_sh("test -e '%s/state/vms/ctl' || test -e '%s/run/ctl'", root, root) == 0) {
    assert_true(qvm_realtime_us() < soon + 5000000);
    usleep(100000);
  }
  /* and its shim is gone too: it removes the vm, then exits (on a busy
   * host a moment later, so waited for, within the same bound) */
  while (qvm_test_sh("pgrep -f '^qvm-shim ctl$' >/dev/null") == 0) {
    assert_true(qvm_realtime_us() < soon + 5000000);
    usleep(100000);
  }
}

int main(void) {
  qvm_test_require_root();
  qvm_test_require_program("qemu-system-x86_64");
  qvm_test_mini_guest(&kernel, &initrd);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_status_qmp_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_subscribe_and_stop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
