/* SPDX-License-Identifier: MIT */
/* Unit tests of qvm_vm_events_read / qvm_vm_events_end (include/qvm/vm.h):
 * lines in order with a cursor that resumes, an incomplete last line left
 * for later, an over-long line skipped, the per-call bound, a rotation
 * (the rest of events.jsonl.1 first, then the new file) and a log that is
 * not there yet. The VM is created only (never started): the test writes
 * its events.jsonl as a shim would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "testlib.h"
#include <qvm/vm.h>

static char *dir, events[4200];
static qvm_vm *vm;

typedef struct seen {
  char lines[2048][64];
  size_t n;
  int stop_at; /* > 0: return 7 at this line number */
} seen;

static int on_line(void *ctx, const char *line, size_t len, const qvm_vm_events_cursor *next) {
  seen *s = ctx;
  assert_non_null(next);
  assert_true(next->offset > 0);
  if (s->n < 2048)
    snprintf(s->lines[s->n], sizeof s->lines[0], "%.*s", (int)(len < 63 ? len : 63), line);
  s->n++;
  return s->stop_at > 0 && (int)s->n == s->stop_at ? 7 : 0;
}

static void append(const char *path, const char *text) {
  FILE *f = fopen(path, "a");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static int setup(void **state) {
  (void)state;
  dir = qvm_test_mkdtemp("vm-events");
  char st[4096];
  snprintf(st, sizeof st, "%s/state", dir);
  setenv("QVM_STATE_DIR", st, 1);
  snprintf(st, sizeof st, "%s/run", dir);
  setenv("QVM_RUNTIME_DIR", st, 1);
  qvm_vm_create_options o = QVM_VM_CREATE_OPTIONS_INIT;
  o.kernel = "/etc/hostname";
  o.no_cloud_init = true;
  qvm_error *err = NULL;
  if (qvm_vm_create(&vm, "ev", &o, &err) < 0) {
    fprintf(stderr, "create: %s\n", qvm_error_message(err));
    qvm_error_free(err);
    return -1;
  }
  snprintf(events, sizeof events, "%s/%s", qvm_vm_dir(vm), QVM_VM_EVENTS_LOG);
  unlink(events);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  qvm_vm_free(vm);
  qvm_test_rmtree(dir);
  free(dir);
  return 0;
}

static void test_read(void **state) {
  (void)state;
  qvm_error *err = NULL;
  qvm_vm_events_cursor c = {0}, end = {1, 1};
  seen *s = calloc(1, sizeof *s);
  /* no log yet */
  assert_int_equal(qvm_vm_events_read(vm, &c, on_line, s, &err), 0);
  assert_int_equal(c.file, 0);
  assert_int_equal(qvm_vm_events_end(&end, vm, &err), 0);
  assert_int_equal(end.file, 0);
  assert_int_equal(end.offset, 0);

  /* two lines, a blank one, and a third without its end yet */
  append(events, "{\"event\":\"a\"}\n\n{\"event\":\"b\"}\n{\"event\":\"c\"");
  assert_int_equal(qvm_vm_events_read(vm, &c, on_line, s, &err), 2);
  assert_int_equal(s->n, 2);
  assert_string_equal(s->lines[0], "{\"event\":\"a\"}");
  assert_string_equal(s->lines[1], "{\"event\":\"b\"}");
  assert_int_equal(c.offset, strlen("{\"event\":\"a\"}\n\n{\"event\":\"b\"}\n"));
  assert_int_equal(qvm_vm_events_read(vm, &c, on_line, s, &err), 0);
  append(events, "}\n");
  assert_int_equal(qvm_vm_events_read(vm, &c, on_line, s, &err), 1);
  assert_string_equal(s->lines[2], "{\"event\":\"c\"}");

  /* the end cursor: nothing until a new line */
  assert_int_equal(qvm_vm_events_end(&end, vm, &err), 0);
  assert_int_equal(end.file, c.file);
  assert_int_equal(end.offset, c.offset);

  /* a line over the cap is skipped, the next one comes */
  size_t big = QVM_VM_EVENT_LINE_MAX * 2 + 10;
  char *line = malloc(big + 2);
  memset(line, 'x', big);
  line[big] = '\n';
  line[big + 1] = '\0';
  append(events, line);
  append(events, "{\"event\":\"d\"}\n");
  free(line);
  assert_int_equal(qvm_vm_events_read(vm, &c, on_line, s, &err), 1);
  assert_int_equal(s->n, 4);
  assert_string_equal(s->lines[3], "{\"event\":\"d\"}");

  /* at most QVM_VM_EVENTS_READ_MAX per call; the rest in the next */
  FILE *f = fopen(events, "a");
  for (int i = 0; i < QVM_VM_EVENTS_READ_MAX + 5; i++) fprintf(f, "{\"n\":%d}\n", i);
  fclose(f);
  assert_int_equal(qvm_vm_events_read(vm, &c, on_line, s, &err), QVM_VM_EVENTS_READ_MAX);
  assert_int_equal(qvm_vm_events_read(vm, &c, on_line, s, &err), 5);
  assert_string_equal(s->lines[s->n - 1], "{\"n\":1028}");

  /* fn stops the read: its value comes back, the cursor is past that line */
  append(events, "{\"event\":\"e\"}\n{\"event\":\"f\"}\n");
  s->stop_at = (int)s->n + 1;
  assert_int_equal(qvm_vm_events_read(vm, &c, on_line, s, &err), 7);
  s->stop_at = 0;
  assert_int_equal(qvm_vm_events_read(vm, &c, on_line, s, &err), 1);
  assert_string_equal(s->lines[s->n - 1], "{\"event\":\"f\"}");

  /* rotation: one more line in the old file after the reader's cursor,
   * then a rename and a new file */
  append(events, "{\"event\":\"g\"}\n");
  char old[4300];
  snprintf(old, sizeof old, "%s.1", events);
  assert_int_equal(rename(events, old), 0);
  append(events, "{\"event\":\"h\"}\n");
  size_t before = s->n;
  assert_int_equal(qvm_vm_events_read(vm, &c, on_line, s, &err), 2);
  assert_string_equal(s->lines[before], "{\"event\":\"g\"}");
  assert_string_equal(s->lines[before + 1], "{\"event\":\"h\"}");
  assert_int_equal(c.offset, strlen("{\"event\":\"h\"}\n"));

  /* a cursor of a file that is gone starts the current one from its start */
  qvm_vm_events_cursor gone = {.file = 1, .offset = 99999};
  before = s->n;
  assert_int_equal(qvm_vm_events_read(vm, &gone, on_line, s, &err), 1);
  assert_string_equal(s->lines[before], "{\"event\":\"h\"}");

  /* bad arguments */
  assert_int_equal(qvm_vm_events_read(vm, NULL, on_line, s, &err), QVM_EINVAL);
  qvm_error_free(err);
  err = NULL;
  /* a symlink in the log's place is not followed */
  unlink(events);
  assert_int_equal(symlink("/etc/hostname", events), 0);
  assert_true(qvm_vm_events_read(vm, &c, on_line, s, &err) < 0);
  qvm_error_free(err);
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_read)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
