/* SPDX-License-Identifier: MIT */
/* The replay's residual (review/replay.c) on real diffs: ext4 images made
 * with mkfs.ext4 -d, read through qemu-storage-daemon. A replay that left
 * the same state has no residual; one that missed a deletion, set another
 * mode or added a file has exactly those; a clone's own noise (hostname,
 * ~/.ansible) is not residual. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "review/review.h"
#include "testlib.h"
#include "util/fs.h"
#include <qvm/diff.h>

static char tmp[128];

static void sh(const char *fmt, ...) {
  char cmd[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  if (system(cmd) != 0) fail_msg("'%s' failed", cmd);
}

/* tmp/NAME.raw from the shell commands run in an empty tree. */
static void image(const char *name, const char *commands) {
  sh("set -e; d=%s/%s; mkdir -p $d; cd $d; %s; mkfs.ext4 -q -d $d %s/%s.raw 16M 2>/dev/null", tmp,
     name, commands, tmp, name);
}

static qvm_diff *diff(const char *from, const char *to) {
  char a[256], b[256];
  snprintf(a, sizeof a, "%s/%s.raw", tmp, from);
  snprintf(b, sizeof b, "%s/%s.raw", tmp, to);
  qvm_diff *d = NULL;
  qvm_error *err = NULL;
  if (qvm_diff_images(&d, a, NULL, b, NULL, NULL, &err) < 0)
    fail_msg("diff %s %s: %s", from, to, qvm_error_message(err));
  return d;
}

static const char base[] = "mkdir -p etc home/qvm; echo one > etc/conf; echo gone > etc/gone;"
                           "echo base > etc/hostname";
static const char vm[] = "mkdir -p etc home/qvm opt/app; echo two > etc/conf;"
                         "echo app > opt/app/bin; chmod 750 opt/app/bin; echo base > etc/hostname";

static void test_residual(void **s) {
  (void)s;
  image("base", base);
  image("vm", vm);
  /* the same state, plus what a clone does by itself */
  image("good", "mkdir -p etc home/qvm/.ansible/tmp opt/app; echo two > etc/conf;"
                "echo app > opt/app/bin; chmod 750 opt/app/bin; echo clone > etc/hostname");
  /* /etc/gone kept, another mode, an extra file */
  image("bad", "mkdir -p etc home/qvm opt/app; echo two > etc/conf; echo gone > etc/gone;"
               "echo app > opt/app/bin; chmod 755 opt/app/bin; echo x > etc/extra;"
               "echo base > etc/hostname");
  qvm_diff *dv = diff("base", "vm"), *dg = diff("base", "good"), *db = diff("base", "bad");
  struct json_object *res = NULL;
  assert_int_equal(review_residual(&res, dv, dg), 0);
  assert_int_equal(json_object_array_length(res), 0);
  json_object_put(res);
  assert_int_equal(review_residual(&res, dv, db), 3);
  const char *want[][2] = {{"/etc/extra", "only in the replay"},
                           {"/etc/gone", "not reproduced"},
                           {"/opt/app/bin", "mode"}};
  assert_int_equal(json_object_array_length(res), 3);
  for (size_t i = 0; i < 3; i++) {
    struct json_object *e = json_object_array_get_idx(res, i), *p = NULL, *w = NULL;
    json_object_object_get_ex(e, "path", &p);
    json_object_object_get_ex(e, "why", &w);
    assert_string_equal(json_object_get_string(p), want[i][0]);
    assert_string_equal(json_object_get_string(w), want[i][1]);
  }
  json_object_put(res);
  /* the vm changed /etc/hostname itself: then a clone's differs (residual) */
  image("vm2", "mkdir -p etc home/qvm opt/app; echo two > etc/conf; echo app > opt/app/bin;"
               "chmod 750 opt/app/bin; echo web > etc/hostname");
  qvm_diff *dv2 = diff("base", "vm2");
  assert_int_equal(review_residual(&res, dv2, dg), 1);
  json_object_put(res);
  qvm_diff_free(dv);
  qvm_diff_free(dv2);
  qvm_diff_free(dg);
  qvm_diff_free(db);
}

int main(void) {
  if (system("command -v qemu-storage-daemon >/dev/null && command -v mkfs.ext4 >/dev/null"))
    qvm_test_skip("needs qemu-storage-daemon and mkfs.ext4");
  snprintf(tmp, sizeof tmp, "/tmp/qvm-review-residual-XXXXXX");
  if (!mkdtemp(tmp)) return 1;
  char st[200], run[200];
  snprintf(st, sizeof st, "%s/state", tmp);
  snprintf(run, sizeof run, "%s/run", tmp);
  setenv("QVM_STATE_DIR", st, 1);
  setenv("QVM_RUNTIME_DIR", run, 1);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_residual)};
  int r = cmocka_run_group_tests(tests, NULL, NULL);
  qvm_rm_rf(tmp, NULL);
  return r;
}
