/* SPDX-License-Identifier: MIT */
/*
 * The QMP client against a scripted fake server over a socketpair: good
 * transcripts, QEMU errors, events between a command and its reply, and every
 * kind of broken peer (garbage, EOF midway, huge lines, deep nesting, wrong
 * ids, silence).
 */
#include <errno.h>
#include <fcntl.h>
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

#include "qmp/qmp.h"

#include "fake_qmp.h"
#include "testlib.h"

#define REPLY_OK "{\"return\": {}, \"id\": %ID%}\r\n"
#define REPLY_STATUS "{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": %ID%}\r\n"
#define EVENT_STOP "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\r\n"
#define EVENT_RESUME                                                                               \
  "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 3}, \"event\": \"RESUME\"}\n"

static qvm_qmp *open_scripted(fake_qmp *f, const fake_step *script, const qvm_qmp_options *opts) {
  int fd = -1;
  fake_qmp_start(f, script, &fd);
  qvm_qmp *qmp = NULL;
  qvm_error *err = NULL;
  if (qvm_qmp_open_fd(&qmp, fd, opts, &err) < 0) fail_msg("open: %s", qvm_error_message(err));
  return qmp;
}

/* Runs `command` and checks it fails with `code` and a message holding `what`. */
static void expect_failure(qvm_qmp *qmp, const char *command, int timeout_ms, int code,
                           const char *what) {
  qvm_error *err = NULL;
  json_object *ret = NULL;
  int r = qvm_qmp_execute_timeout(&ret, qmp, command, NULL, timeout_ms, &err);
  assert_int_equal(r, code);
  assert_null(ret);
  assert_non_null(err);
  assert_int_equal(qvm_error_code(err), code);
  if (!strstr(qvm_error_message(err), what))
    fail_msg("error '%s' does not mention '%s'", qvm_error_message(err), what);
  qvm_error_free(err);
}

/* A connection that hit a protocol error stays failed, quickly and clearly. */
static void expect_unusable(qvm_qmp *qmp) {
  expect_failure(qmp, "query-status", 100, QVM_EPROTO, "unusable after an earlier error");
}

static void test_good_transcript(void **state) {
  (void)state;
  const fake_step script[] = {FAKE_NEGOTIATE,
                              {FAKE_EXPECT, "query-status"},
                              {FAKE_SEND, REPLY_STATUS},
                              {FAKE_EXPECT, "getfd", "{\"fdname\": \"x,y\"}"},
                              {FAKE_SEND, "{\"id\": %ID%, \"return\": {}}\n"},
                              {FAKE_END}};
  fake_qmp f;
  qvm_qmp *qmp = open_scripted(&f, script, NULL);
  assert_string_equal(qvm_qmp_version(qmp), "7.2.0");
  json_object *caps = qvm_qmp_capabilities(qmp);
  assert_int_equal(json_object_array_length(caps), 1);
  assert_string_equal(json_object_get_string(json_object_array_get_idx(caps, 0)), "oob");

  json_object *ret = NULL;
  qvm_error *err = NULL;
  assert_int_equal(qvm_qmp_execute(&ret, qmp, "query-status", NULL, &err), 0);
  json_object *status = NULL;
  assert_true(json_object_object_get_ex(ret, "status", &status));
  assert_string_equal(json_object_get_string(status), "running");
  json_object_put(ret);

  json_object *args = json_object_new_object();
  json_object_object_add(args, "fdname", json_object_new_string("x,y"));
  assert_int_equal(qvm_qmp_execute(NULL, qmp, "getfd", args, &err), 0);
  json_object_put(args);
  qvm_qmp_free(qmp);
  fake_qmp_join(&f);
}

static void test_error_reply(void **state) {
  (void)state;
  const fake_step script[] = {
      FAKE_NEGOTIATE,
      {FAKE_EXPECT, "no-such-command"},
      {FAKE_SEND, "{\"id\": %ID%, \"error\": {\"class\": \"CommandNotFound\", \"desc\": "
                  "\"The command no-such-command has not been found\"}}\r\n"},
      {FAKE_EXPECT, "query-status"},
      {FAKE_SEND, REPLY_STATUS},
      {FAKE_END}};
  fake_qmp f;
  qvm_qmp *qmp = open_scripted(&f, script, NULL);
  qvm_error *err = NULL;
  json_object *ret = NULL;
  assert_int_equal(qvm_qmp_execute(&ret, qmp, "no-such-command", NULL, &err), QVM_EQMP);
  assert_null(ret);
  assert_string_equal(qvm_error_class(err), "CommandNotFound");
  assert_non_null(strstr(qvm_error_message(err), "The command no-such-command has not been found"));
  assert_non_null(strstr(qvm_error_message(err), "'no-such-command'"));
  qvm_error_free(err);
  err = NULL;
  /* A QEMU error is an answer, not a broken connection. */
  assert_int_equal(qvm_qmp_execute(&ret, qmp, "query-status", NULL, &err), 0);
  json_object_put(ret);
  qvm_qmp_free(qmp);
  fake_qmp_join(&f);
}

static void test_event_between_command_and_reply(void **state) {
  (void)state;
  const fake_step script[] = {FAKE_NEGOTIATE,
                              {FAKE_EXPECT, "stop"},
                              {FAKE_SEND, EVENT_STOP},
                              {FAKE_SEND, REPLY_OK},
                              {FAKE_EXPECT, "cont"},
                              /* reply and event in one write: the event must not
                               * be stranded in the reader after the reply */
                              {FAKE_SEND, REPLY_OK EVENT_RESUME},
                              {FAKE_WAIT_EOF},
                              {FAKE_END}};
  fake_qmp f;
  qvm_qmp *qmp = open_scripted(&f, script, NULL);
  qvm_error *err = NULL;
  assert_int_equal(qvm_qmp_execute(NULL, qmp, "stop", NULL, &err), 0);
  assert_int_equal(qvm_qmp_execute(NULL, qmp, "cont", NULL, &err), 0);

  json_object *ev = NULL;
  assert_int_equal(qvm_qmp_wait_event(&ev, qmp, "RESUME", 0, &err), 0);
  assert_string_equal(json_object_get_string(json_object_object_get(ev, "event")), "RESUME");
  json_object_put(ev);
  /* STOP stayed queued while RESUME was taken out of order. */
  assert_int_equal(qvm_qmp_next_event(&ev, qmp, &err), 0);
  assert_non_null(ev);
  assert_string_equal(json_object_get_string(json_object_object_get(ev, "event")), "STOP");
  json_object *ts = NULL;
  assert_true(json_object_object_get_ex(ev, "timestamp", &ts));
  json_object_put(ev);
  assert_int_equal(qvm_qmp_next_event(&ev, qmp, &err), 0);
  assert_null(ev);
  assert_int_equal(qvm_qmp_wait_event(&ev, qmp, "STOP", 50, &err), QVM_ETIMEOUT);
  assert_non_null(strstr(qvm_error_message(err), "'STOP'"));
  qvm_error_free(err);
  qvm_qmp_free(qmp);
  fake_qmp_join(&f);
}

static void test_wait_event_reads_socket(void **state) {
  (void)state;
  const fake_step script[] = {FAKE_NEGOTIATE,
                              {FAKE_EXPECT, "system_powerdown"},
                              {FAKE_SEND, REPLY_OK},
                              {FAKE_SEND, EVENT_STOP},
                              {FAKE_SEND, "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, "
                                          "\"reason\": \"guest-shutdown\"}}\r\n"},
                              {FAKE_CLOSE},
                              {FAKE_END}};
  fake_qmp f;
  qvm_qmp *qmp = open_scripted(&f, script, NULL);
  qvm_error *err = NULL;
  assert_int_equal(qvm_qmp_execute(NULL, qmp, "system_powerdown", NULL, &err), 0);
  json_object *ev = NULL;
  assert_int_equal(qvm_qmp_wait_event(&ev, qmp, "SHUTDOWN", 10000, &err), 0);
  json_object *data = json_object_object_get(ev, "data");
  assert_true(json_object_get_boolean(json_object_object_get(data, "guest")));
  json_object_put(ev);
  /* Queued events outlive the connection's EOF. */
  assert_int_equal(qvm_qmp_wait_event(&ev, qmp, "STOP", 10000, &err), 0);
  json_object_put(ev);
  assert_int_equal(qvm_qmp_wait_event(&ev, qmp, NULL, 10000, &err), QVM_EPROTO);
  assert_non_null(strstr(qvm_error_message(err), "closed"));
  qvm_error_free(err);
  qvm_qmp_free(qmp);
  fake_qmp_join(&f);
}

static void test_invalid_json(void **state) {
  (void)state;
  const fake_step script[] = {
      FAKE_NEGOTIATE, {FAKE_EXPECT, "query-status"}, {FAKE_SEND, "{]\r\n"}, {FAKE_END}};
  fake_qmp f;
  qvm_qmp *qmp = open_scripted(&f, script, NULL);
  expect_failure(qmp, "query-status", 10000, QVM_EPROTO, "not valid json");
  expect_unusable(qmp);
  qvm_qmp_free(qmp);
  fake_qmp_join(&f);
}

static void test_invalid_utf8(void **state) {
  (void)state;
  const fake_step script[] = {FAKE_NEGOTIATE,
                              {FAKE_EXPECT, "query-status"},
                              {FAKE_SEND_RAW, "{\xff\r\n", NULL, 4},
                              {FAKE_END}};
  fake_qmp f;
  qvm_qmp *qmp = open_scripted(&f, script, NULL);
  expect_failure(qmp, "query-status", 10000, QVM_EPROTO, "utf-8");
  expect_unusable(qmp);
  qvm_qmp_free(qmp);
  fake_qmp_join(&f);
}

static void test_garbage(void **state) {
  (void)state;
  const fake_step script[] = {FAKE_NEGOTIATE,
                              {FAKE_EXPECT, "query-status"},
                              {FAKE_SEND_RAW, "hello\0world\r\n", NULL, 13},
                              {FAKE_END}};
  fake_qmp f;
  qvm_qmp *qmp = open_scripted(&f, script, NULL);
  expect_failure(qmp, "query-status", 10000, QVM_EPROTO, "qmp command 'query-status'");
  expect_unusable(qmp);
  qvm_qmp_free(qmp);
  fake_qmp_join(&f);
}

static void test_huge_line_is_refused(void **state) {
  (void)state;
  const size_t flood = 64u << 20;
  const fake_step script[] = {FAKE_NEGOTIATE,
                              {FAKE_EXPECT, "query-status"},
                              {FAKE_SEND_FLOOD, NULL, NULL, flood},
                              {FAKE_END}};
  fake_qmp f;
  qvm_qmp *qmp = open_scripted(&f, script, NULL); /* default cap: 16 MiB */
  expect_failure(qmp, "query-status", 60000, QVM_EPROTO, "exceeds the 16777216-byte limit");
  expect_unusable(qmp);
  qvm_qmp_free(qmp); /* hangs up: the flood stops */
  fake_qmp_join(&f);
  /* It stopped reading at the cap, not at the end of the flood. */
  assert_true(f.flood_written < flood);
  assert_true(f.flood_written > (16u << 20));
}

static void test_deep_nesting(void **state) {
  (void)state;
  static char deep[2 * 10000 + 64];
  size_t n = (size_t)sprintf(deep, "{\"return\": ");
  for (int i = 0; i < 10000; i++) deep[n++] = '[';
  for (int i = 0; i < 10000; i++) deep[n++] = ']';
  n += (size_t)sprintf(deep + n, ", \"id\": \"qvm-2\"}\r\n");
  const fake_step script[] = {
      FAKE_NEGOTIATE, {FAKE_EXPECT, "query-status"}, {FAKE_SEND_RAW, deep, NULL, n}, {FAKE_END}};
  fake_qmp f;
  qvm_qmp *qmp = open_scripted(&f, script, NULL);
  expect_failure(qmp, "query-status", 10000, QVM_EPROTO, "nests deeper than 64 levels");
  expect_unusable(qmp);
  qvm_qmp_free(qmp);
  fake_qmp_join(&f);
}

static void test_eof_midway(void **state) {
  (void)state;
  const fake_step script[] = {FAKE_NEGOTIATE,
                              {FAKE_EXPECT, "query-status"},
                              {FAKE_SEND, "{\"return\": {\"status\": \"runn"},
                              {FAKE_CLOSE},
                              {FAKE_END}};
  fake_qmp f;
  qvm_qmp *qmp = open_scripted(&f, script, NULL);
  expect_failure(qmp, "query-status", 10000, QVM_EPROTO, "closed in the middle of a message");
  expect_unusable(qmp);
  qvm_qmp_free(qmp);
  fake_qmp_join(&f);
}

static void test_eof_between_messages(void **state) {
  (void)state;
  const fake_step script[] = {
      FAKE_NEGOTIATE, {FAKE_EXPECT, "query-status"}, {FAKE_CLOSE}, {FAKE_END}};
  fake_qmp f;
  qvm_qmp *qmp = open_scripted(&f, script, NULL);
  expect_failure(qmp, "query-status", 10000, QVM_EPROTO,
                 "qmp command 'query-status': qemu closed the qmp connection");
  expect_unusable(qmp);
  qvm_qmp_free(qmp);
  fake_qmp_join(&f);
}

static void test_wrong_id(void **state) {
  (void)state;
  const fake_step script[] = {FAKE_NEGOTIATE,
                              {FAKE_EXPECT, "query-status"},
                              {FAKE_SEND, "{\"return\": {}, \"id\": \"qvm-999\"}\r\n"},
                              {FAKE_END}};
  fake_qmp f;
  qvm_qmp *qmp = open_scripted(&f, script, NULL);
  expect_failure(qmp, "query-status", 10000, QVM_EPROTO, "unknown id \"qvm-999\"");
  expect_unusable(qmp);
  qvm_qmp_free(qmp);
  fake_qmp_join(&f);
}

static void test_missing_id(void **state) {
  (void)state;
  /* QEMU answers without an id only to input it could not parse as a
   * command; since every command here has an id, that is a protocol error. */
  const fake_step script[] = {FAKE_NEGOTIATE,
                              {FAKE_EXPECT, "query-status"},
                              {FAKE_SEND, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
                                          "\"JSON parse error, stray '}'\"}}\r\n"},
                              {FAKE_END}};
  fake_qmp f;
  qvm_qmp *qmp = open_scripted(&f, script, NULL);
  expect_failure(qmp, "query-status", 10000, QVM_EPROTO, "no id (qemu said: JSON parse error");
  expect_unusable(qmp);
  qvm_qmp_free(qmp);
  fake_qmp_join(&f);
}

static void test_never_answers(void **state) {
  (void)state;
  const fake_step script[] = {FAKE_NEGOTIATE,
                              {FAKE_EXPECT, "query-status"},
                              {FAKE_EXPECT, "query-version"},
                              /* late reply to the first, then the second's */
                              {FAKE_SEND, "{\"return\": {}, \"id\": %PREV%}\r\n"},
                              {FAKE_SEND, REPLY_OK},
                              {FAKE_EXPECT, "query-name"},
                              {FAKE_WAIT_EOF},
                              {FAKE_END}};
  fake_qmp f;
  qvm_qmp *qmp = open_scripted(&f, script, NULL);
  expect_failure(qmp, "query-status", 200, QVM_ETIMEOUT, "got no reply within 200 ms");
  /* A timeout is not fatal, and the late reply is dropped, not mistaken. */
  qvm_error *err = NULL;
  assert_int_equal(qvm_qmp_execute(NULL, qmp, "query-version", NULL, &err), 0);
  expect_failure(qmp, "query-name", 100, QVM_ETIMEOUT, "'query-name'");
  qvm_qmp_free(qmp);
  fake_qmp_join(&f);
}

static void test_no_greeting(void **state) {
  (void)state;
  const fake_step silent[] = {{FAKE_WAIT_EOF}, {FAKE_END}};
  const fake_step not_greeting[] = {{FAKE_SEND, EVENT_STOP}, {FAKE_WAIT_EOF}, {FAKE_END}};
  const fake_step eof[] = {{FAKE_CLOSE}, {FAKE_END}};
  const fake_step bad_version[] = {
      {FAKE_SEND, "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n"}, {FAKE_END}};
  struct {
    const fake_step *script;
    int code;
    const char *what;
  } cases[] = {{silent, QVM_ETIMEOUT, "greeting did not arrive within 200 ms"},
               {not_greeting, QVM_EPROTO, "did not start with a greeting"},
               {eof, QVM_EPROTO, "qemu closed the qmp connection"},
               {bad_version, QVM_EPROTO, "no qemu version"}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    qvm_qmp_options opts = QVM_QMP_OPTIONS_INIT;
    opts.timeout_ms = 200;
    int fd = -1;
    fake_qmp f;
    fake_qmp_start(&f, cases[i].script, &fd);
    qvm_qmp *qmp = NULL;
    qvm_error *err = NULL;
    assert_int_equal(qvm_qmp_open_fd(&qmp, fd, &opts, &err), cases[i].code);
    assert_null(qmp);
    if (!strstr(qvm_error_message(err), cases[i].what))
      fail_msg("case %zu: '%s' lacks '%s'", i, qvm_error_message(err), cases[i].what);
    qvm_error_free(err);
    fake_qmp_join(&f);
  }
}

static void test_event_queue_limit(void **state) {
  (void)state;
  const fake_step script[] = {FAKE_NEGOTIATE,
                              {FAKE_EXPECT, "stop"},
                              {FAKE_SEND, EVENT_STOP EVENT_RESUME EVENT_STOP},
                              {FAKE_SEND, REPLY_OK},
                              {FAKE_END}};
  qvm_qmp_options opts = QVM_QMP_OPTIONS_INIT;
  opts.max_events = 2;
  fake_qmp f;
  qvm_qmp *qmp = open_scripted(&f, script, &opts);
  qvm_error *err = NULL;
  assert_int_equal(qvm_qmp_execute(NULL, qmp, "stop", NULL, &err), 0);
  assert_int_equal(qvm_qmp_events_dropped(qmp), 1);
  json_object *ev = NULL;
  assert_int_equal(qvm_qmp_next_event(&ev, qmp, &err), 0);
  assert_string_equal(json_object_get_string(json_object_object_get(ev, "event")), "RESUME");
  json_object_put(ev);
  qvm_qmp_free(qmp);
  fake_qmp_join(&f);
}

static void test_fd_passing(void **state) {
  (void)state;
  const fake_step script[] = {FAKE_NEGOTIATE,
                              {FAKE_EXPECT_FD, "getfd", "{\"fdname\": \"tap0\"}"},
                              {FAKE_SEND, REPLY_OK},
                              {FAKE_END}};
  int pipefd[2];
  assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
  fake_qmp f;
  qvm_qmp *qmp = open_scripted(&f, script, NULL);
  json_object *args = json_object_new_object();
  json_object_object_add(args, "fdname", json_object_new_string("tap0"));
  qvm_error *err = NULL;
  assert_int_equal(qvm_qmp_execute_with_fd(NULL, qmp, "getfd", args, pipefd[1], &err), 0);
  json_object_put(args);
  /* The caller still owns its fd. */
  assert_true(fcntl(pipefd[1], F_GETFD) >= 0);
  close(pipefd[1]);
  qvm_qmp_free(qmp);
  fake_qmp_join(&f);
  char buf[64] = {0};
  assert_int_equal(read(pipefd[0], buf, sizeof(buf) - 1), (ssize_t)strlen(FAKE_FD_GREETING));
  assert_string_equal(buf, FAKE_FD_GREETING);
  close(pipefd[0]);
}

static void test_connect_path(void **state) {
  (void)state;
  char *dir = qvm_test_mkdtemp("qmp");
  char path[100];
  assert_true((size_t)snprintf(path, sizeof(path), "%s/qmp.sock", dir) < sizeof(path));
  qvm_qmp_options opts = QVM_QMP_OPTIONS_INIT;
  opts.timeout_ms = 150;
  qvm_qmp *qmp = NULL;
  qvm_error *err = NULL;
  /* Nobody listens yet: retried until the deadline. */
  assert_int_equal(qvm_qmp_connect(&qmp, path, &opts, &err), QVM_ETIMEOUT);
  assert_non_null(strstr(qvm_error_message(err), path));
  qvm_error_free(err);
  err = NULL;

  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  assert_int_equal(listen(lfd, 1), 0);
  const fake_step script[] = {FAKE_NEGOTIATE, {FAKE_END}};
  opts.timeout_ms = 10000;
  fake_qmp f;
  fake_qmp_start_accept(&f, script, lfd);
  assert_int_equal(qvm_qmp_connect(&qmp, path, &opts, &err), 0);
  assert_string_equal(qvm_qmp_version(qmp), "7.2.0");
  qvm_qmp_free(qmp);
  fake_qmp_join(&f);
  close(lfd);
  unlink(path);
  qvm_test_rmtree(dir);
  free(dir);
}

static void test_bad_arguments(void **state) {
  (void)state;
  qvm_qmp *qmp = NULL;
  qvm_error *err = NULL;
  qvm_qmp_options opts = QVM_QMP_OPTIONS_INIT;
  opts.max_depth = 0;
  assert_int_equal(qvm_qmp_open_fd(&qmp, -1, &opts, &err), QVM_EINVAL);
  qvm_error_free(err);
  err = NULL;
  assert_int_equal(qvm_qmp_open_fd(&qmp, -1, NULL, &err), QVM_EINVAL);
  qvm_error_free(err);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_transcript),
      cmocka_unit_test(test_error_reply),
      cmocka_unit_test(test_event_between_command_and_reply),
      cmocka_unit_test(test_wait_event_reads_socket),
      cmocka_unit_test(test_invalid_json),
      cmocka_unit_test(test_invalid_utf8),
      cmocka_unit_test(test_garbage),
      cmocka_unit_test(test_huge_line_is_refused),
      cmocka_unit_test(test_deep_nesting),
      cmocka_unit_test(test_eof_midway),
      cmocka_unit_test(test_eof_between_messages),
      cmocka_unit_test(test_wrong_id),
      cmocka_unit_test(test_missing_id),
      cmocka_unit_test(test_never_answers),
      cmocka_unit_test(test_no_greeting),
      cmocka_unit_test(test_event_queue_limit),
      cmocka_unit_test(test_fd_passing),
      cmocka_unit_test(test_connect_path),
      cmocka_unit_test(test_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
