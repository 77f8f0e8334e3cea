/* SPDX-License-Identifier: MIT */
/*
 * The QMP client against a real QEMU under TCG booting the mini guest:
 * negotiation, run states, events caused by the guest itself, fd passing,
 * QEMU's own errors, and quit. Each test owns one QEMU and kills it in its
 * teardown, whatever happened.
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "qmp/qmp.h"

#include "qemu_proc.h"
#include "testlib.h"

#define BOOT_TIMEOUT_MS 120000
#define EVENT_TIMEOUT_MS 60000

typedef struct fixture {
  qemu_proc qemu;
  qvm_qmp *qmp;
} fixture;

static const char *kernel, *initrd;

static int teardown(void **state);

static int setup(void **state) {
  fixture *fx = calloc(1, sizeof(*fx));
  char why[256];
  if (qemu_proc_start(&fx->qemu, kernel, initrd, why, sizeof(why)) < 0) {
    fprintf(stderr, "cannot start qemu: %s\n", why);
    qemu_proc_stop(&fx->qemu);
    free(fx);
    return -1;
  }
  *state = fx;
  qvm_error *err = NULL;
  qvm_qmp_options opts = QVM_QMP_OPTIONS_INIT;
  opts.timeout_ms = 60000; /* a loaded CI machine under TCG */
  if (qvm_qmp_connect(&fx->qmp, fx->qemu.sock, &opts, &err) < 0) {
    fprintf(stderr, "qmp: %s\n%s\n", qvm_error_message(err), qemu_proc_tail(&fx->qemu));
    qvm_error_free(err);
    teardown(state); /* cmocka skips teardown when setup fails */
    *state = NULL;
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  fixture *fx = *state;
  if (!fx) return 0;
  qvm_qmp_free(fx->qmp);
  qemu_proc_stop(&fx->qemu);
  free(fx);
  return 0;
}

static json_object *run(fixture *fx, const char *command, json_object *args) {
  json_object *ret = NULL;
  qvm_error *err = NULL;
  if (qvm_qmp_execute(&ret, fx->qmp, command, args, &err) < 0)
    fail_msg("%s\n%s", qvm_error_message(err), qemu_proc_tail(&fx->qemu));
  return ret;
}

static void assert_status(fixture *fx, const char *want1, const char *want2) {
  json_object *ret = run(fx, "query-status", NULL);
  const char *status = json_object_get_string(json_object_object_get(ret, "status"));
  if (!status || (strcmp(status, want1) != 0 && (!want2 || strcmp(status, want2) != 0)))
    fail_msg("status is '%s', wanted '%s'", status ? status : "(none)", want1);
  json_object_put(ret);
}

static json_object *wait_event(fixture *fx, const char *name) {
  json_object *ev = NULL;
  qvm_error *err = NULL;
  if (qvm_qmp_wait_event(&ev, fx->qmp, name, EVENT_TIMEOUT_MS, &err) < 0)
    fail_msg("%s\n%s", qvm_error_message(err), qemu_proc_tail(&fx->qemu));
  return ev;
}

/* The mini guest prints "ready" right after starting acpid in the
 * background, so the first press can come before acpid listens and be lost.
 * Press again every few seconds, as a person would; extra presses are
 * harmless. Returns the SHUTDOWN event. */
static json_object *press_power_button(fixture *fx) {
  for (int waited = 0; waited < EVENT_TIMEOUT_MS; waited += 3000) {
    json_object_put(run(fx, "system_powerdown", NULL));
    json_object *ev = NULL;
    qvm_error *err = NULL;
    int r = qvm_qmp_wait_event(&ev, fx->qmp, "SHUTDOWN", 3000, &err);
    if (r == 0) return ev;
    if (r != QVM_ETIMEOUT) fail_msg("%s\n%s", qvm_error_message(err), qemu_proc_tail(&fx->qemu));
    qvm_error_free(err);
  }
  fail_msg("no SHUTDOWN event after pressing the power button for %d ms\n%s", EVENT_TIMEOUT_MS,
           qemu_proc_tail(&fx->qemu));
  return NULL;
}

static void test_greeting(void **state) {
  fixture *fx = *state;
  const char *version = qvm_qmp_version(fx->qmp);
  assert_non_null(version);
  json_object *ret = run(fx, "query-version", NULL);
  json_object *qemu = json_object_object_get(ret, "qemu");
  char want[64];
  snprintf(want, sizeof(want), "%d.%d.%d",
           json_object_get_int(json_object_object_get(qemu, "major")),
           json_object_get_int(json_object_object_get(qemu, "minor")),
           json_object_get_int(json_object_object_get(qemu, "micro")));
  assert_string_equal(version, want);
  json_object_put(ret);
  assert_true(json_object_is_type(qvm_qmp_capabilities(fx->qmp), json_type_array));
}

static void test_run_states_and_guest_powerdown(void **state) {
  fixture *fx = *state;
  assert_status(fx, "prelaunch", "paused");
  json_object_put(run(fx, "cont", NULL));
  json_object_put(wait_event(fx, "RESUME"));
  assert_status(fx, "running", NULL);
  json_object_put(run(fx, "stop", NULL));
  json_object_put(wait_event(fx, "STOP"));
  assert_status(fx, "paused", NULL);
  json_object_put(run(fx, "cont", NULL));
  if (!qemu_proc_wait_serial(&fx->qemu, "qvm-mini: ready", BOOT_TIMEOUT_MS))
    fail_msg("the guest never printed 'qvm-mini: ready'\n%s", qemu_proc_tail(&fx->qemu));

  json_object *ev = press_power_button(fx);
  json_object *data = json_object_object_get(ev, "data");
  assert_true(json_object_get_boolean(json_object_object_get(data, "guest")));
  assert_string_equal(json_object_get_string(json_object_object_get(data, "reason")),
                      "guest-shutdown");
  json_object_put(ev);
  /* The guest's own ACPI handler did it, and QEMU exits cleanly. */
  assert_true(qemu_proc_wait_serial(&fx->qemu, "qvm-mini: powerdown", 1000));
  if (!qemu_proc_wait_exit(&fx->qemu, EVENT_TIMEOUT_MS)) fail_msg("qemu did not exit");
  assert_true(WIFEXITED(fx->qemu.status));
  assert_int_equal(WEXITSTATUS(fx->qemu.status), 0);
}

static void test_quit(void **state) {
  fixture *fx = *state;
  json_object_put(run(fx, "quit", NULL));
  json_object *ev = wait_event(fx, "SHUTDOWN");
  json_object *data = json_object_object_get(ev, "data");
  assert_false(json_object_get_boolean(json_object_object_get(data, "guest")));
  assert_string_equal(json_object_get_string(json_object_object_get(data, "reason")),
                      "host-qmp-quit");
  json_object_put(ev);
  if (!qemu_proc_wait_exit(&fx->qemu, EVENT_TIMEOUT_MS)) fail_msg("qemu did not exit on quit");
  /* QEMU is gone: the next command fails cleanly, naming the command. */
  qvm_error *err = NULL;
  assert_int_equal(qvm_qmp_execute(NULL, fx->qmp, "query-status", NULL, &err), QVM_EPROTO);
  assert_non_null(strstr(qvm_error_message(err), "closed"));
  qvm_error_free(err);
}

static void test_qemu_errors(void **state) {
  fixture *fx = *state;
  qvm_error *err = NULL;
  assert_int_equal(qvm_qmp_execute(NULL, fx->qmp, "no-such-command", NULL, &err), QVM_EQMP);
  assert_string_equal(qvm_error_class(err), "CommandNotFound");
  qvm_error_free(err);
  err = NULL;
  json_object *args = json_object_new_object();
  json_object_object_add(args, "bogus", json_object_new_int(1));
  assert_int_equal(qvm_qmp_execute(NULL, fx->qmp, "query-status", args, &err), QVM_EQMP);
  assert_string_equal(qvm_error_class(err), "GenericError");
  assert_non_null(strstr(qvm_error_message(err), "bogus"));
  json_object_put(args);
  qvm_error_free(err);
  assert_status(fx, "prelaunch", "paused"); /* still usable */
}

static void test_getfd_and_add_fd(void **state) {
  fixture *fx = *state;
  int pipefd[2];
  assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
  json_object *args = json_object_new_object();
  json_object_object_add(args, "fdname", json_object_new_string("qvm-test"));
  qvm_error *err = NULL;
  if (qvm_qmp_execute_with_fd(NULL, fx->qmp, "getfd", args, pipefd[1], &err) < 0)
    fail_msg("getfd: %s", qvm_error_message(err));
  /* QEMU holds it now: closefd finds it once, and only once. */
  json_object_put(run(fx, "closefd", args));
  assert_int_equal(qvm_qmp_execute(NULL, fx->qmp, "closefd", args, &err), QVM_EQMP);
  assert_non_null(strstr(qvm_error_message(err), "qvm-test"));
  qvm_error_free(err);
  err = NULL;
  json_object_put(args);
  /* getfd without an fd attached is QEMU's error, not ours. */
  args = json_object_new_object();
  json_object_object_add(args, "fdname", json_object_new_string("none"));
  assert_int_equal(qvm_qmp_execute(NULL, fx->qmp, "getfd", args, &err), QVM_EQMP);
  qvm_error_free(err);
  err = NULL;
  json_object_put(args);

  args = json_object_new_object();
  json_object_object_add(args, "opaque", json_object_new_string("qvm-pipe"));
  json_object *ret = NULL;
  if (qvm_qmp_execute_with_fd(&ret, fx->qmp, "add-fd", args, pipefd[0], &err) < 0)
    fail_msg("add-fd: %s", qvm_error_message(err));
  int64_t fdset = json_object_get_int64(json_object_object_get(ret, "fdset-id"));
  json_object_put(ret);
  json_object_put(args);
  ret = run(fx, "query-fdsets", NULL);
  bool seen = false;
  for (size_t i = 0; i < json_object_array_length(ret); i++) {
    json_object *set = json_object_array_get_idx(ret, i);
    if (json_object_get_int64(json_object_object_get(set, "fdset-id")) != fdset) continue;
    json_object *fds = json_object_object_get(set, "fds");
    json_object *fd0 = json_object_array_get_idx(fds, 0);
    seen = strcmp(json_object_get_string(json_object_object_get(fd0, "opaque")), "qvm-pipe") == 0;
  }
  json_object_put(ret);
  assert_true(seen);
  close(pipefd[0]);
  close(pipefd[1]);
}

int main(void) {
  qvm_test_require_program("qemu-system-x86_64");
  qvm_test_mini_guest(&kernel, &initrd);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_greeting, setup, teardown),
      cmocka_unit_test_setup_teardown(test_qemu_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_getfd_and_add_fd, setup, teardown),
      cmocka_unit_test_setup_teardown(test_quit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_run_states_and_guest_powerdown, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
