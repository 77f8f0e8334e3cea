/* SPDX-License-Identifier: MIT */
/* qvm_image_resolve (what --image accepts) and the public qvm_image_* over
 * a store in a temp QVM_STATE_DIR, with images from local files (file://
 * urls and paths, no network): path, digest, prefix, name, alias (pulled
 * once, then found by name), url (pulled once, then found by source). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <qvm/image.h>

#include "testlib.h"

static char *dir;
static char good[PATH_MAX], other[PATH_MAX];

static void must_sh(const char *cmd) { assert_int_equal(qvm_test_sh("%s", cmd), 0); }

static int setup(void **state) {
  (void)state;
  qvm_test_require_program("qemu-img");
  dir = qvm_test_mkdtemp("resolve");
  char *cmd = NULL, *env = NULL;
  snprintf(good, sizeof good, "%s/good.qcow2", dir);
  snprintf(other, sizeof other, "%s/other.qcow2", dir);
  assert_true(asprintf(&cmd,
                       "qemu-img create -q -f qcow2 '%s' 8M && qemu-img create -q -f qcow2 "
                       "'%s' 12M && cd '%s' && sha256sum good.qcow2 other.qcow2 > SHA256SUMS",
                       good, other, dir) > 0);
  must_sh(cmd);
  free(cmd);
  assert_true(asprintf(&env, "%s/state", dir) > 0);
  setenv("QVM_STATE_DIR", env, 1);
  free(env);
  assert_true(asprintf(&env, "%s/run", dir) > 0);
  setenv("QVM_RUNTIME_DIR", env, 1);
  free(env);
  assert_true(asprintf(&env, "%s/catalog.yaml", dir) > 0);
  setenv("QVM_CATALOG", env, 1);
  FILE *f = fopen(env, "w");
  assert_non_null(f);
  fprintf(f, "images:\n  tiny:\n    url: file://%s\n    checksums: file://%s/SHA256SUMS\n", good,
          dir);
  fclose(f);
  free(env);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  qvm_test_sh("chmod -R u+w '%s'", dir);
  qvm_test_rmtree(dir);
  free(dir);
  return 0;
}

static int count_pulls;
static void on_progress(const qvm_image_progress *p, void *userdata) {
  (void)userdata;
  if (!strcmp(p->phase, "inspect")) count_pulls++; /* only a download is inspected */
}

static void test_path(void **state) {
  (void)state;
  char *path = NULL, *format = NULL;
  qvm_error *err = NULL;
  assert_int_equal(qvm_image_resolve(&path, &format, good, NULL, &err), 0);
  assert_string_equal(path, good);
  assert_null(format); /* a plain path: the caller detects it once */
  free(path);
  assert_int_equal(qvm_image_resolve(&path, &format, "/nonexistent/x.img", NULL, &err),
                   QVM_ENOTFOUND);
  qvm_error_free(err);
}

static void test_alias_then_name(void **state) {
  (void)state;
  qvm_image_pull_options o = QVM_IMAGE_PULL_OPTIONS_INIT;
  o.progress = on_progress;
  char *path = NULL, *format = NULL;
  qvm_error *err = NULL;
  count_pulls = 0;
  /* a file named like the alias in the current directory (another user's,
   * in /tmp say) does not stand in for it; a bare name nothing else knows
   * is still a file there */
  char cwd[PATH_MAX];
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(dir), 0);
  must_sh("echo not an image > tiny");
  assert_int_equal(qvm_image_resolve(&path, &format, "tiny", &o, &err), 0);
  assert_int_equal(count_pulls, 1);
  assert_non_null(strstr(path, "/images/sha256/"));
  free(path), free(format);
  assert_int_equal(qvm_image_resolve(&path, &format, "good.qcow2", &o, &err), 0);
  assert_null(format);
  assert_string_equal(path, good);
  free(path);
  assert_int_equal(chdir(cwd), 0);
  assert_int_equal(qvm_image_resolve(&path, &format, "tiny", &o, &err), 0);
  assert_int_equal(count_pulls, 1);
  assert_string_equal(format, "qcow2");
  assert_non_null(strstr(path, "/images/sha256/"));
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0444);
  free(path), free(format);
  /* second time: the store name "tiny" wins, nothing is pulled */
  assert_int_equal(qvm_image_resolve(&path, &format, "tiny", &o, &err), 0);
  assert_int_equal(count_pulls, 1);
  /* by digest prefix */
  char ref[32];
  snprintf(ref, sizeof ref, "sha256:%.12s", strrchr(path, '/') + 1);
  char *p2 = NULL, *f2 = NULL;
  assert_int_equal(qvm_image_resolve(&p2, &f2, ref, &o, &err), 0);
  assert_string_equal(p2, path);
  free(p2), free(f2), free(path), free(format);
  /* the catalog shows it stored */
  char *json = NULL;
  assert_int_equal(qvm_image_catalog(&json, &err), 0);
  assert_non_null(strstr(json, "\"alias\":\"tiny\""));
  assert_non_null(strstr(json, "\"stored\":\"sha256:"));
  free(json);
}

static void test_url_once(void **state) {
  (void)state;
  qvm_image_pull_options o = QVM_IMAGE_PULL_OPTIONS_INIT;
  o.progress = on_progress;
  char url[PATH_MAX + 8], *path = NULL, *format = NULL;
  snprintf(url, sizeof url, "file://%s", other);
  qvm_error *err = NULL;
  count_pulls = 0;
  assert_int_equal(qvm_image_resolve(&path, &format, url, &o, &err), 0);
  assert_int_equal(count_pulls, 1);
  free(path), free(format);
  assert_int_equal(qvm_image_resolve(&path, &format, url, &o, &err), 0);
  assert_int_equal(count_pulls, 1); /* found by its source */
  free(path), free(format);
  /* an expected digest is checked even though the url is stored: the
   * stored image was pulled with no checksum */
  o.sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
  assert_int_equal(qvm_image_resolve(&path, &format, url, &o, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "0000000000000000"));
  qvm_error_free(err), err = NULL;
}

static void test_errors(void **state) {
  (void)state;
  char *path = NULL, *format = NULL;
  qvm_error *err = NULL;
  assert_int_equal(qvm_image_resolve(&path, &format, "no-such-thing", NULL, &err), QVM_ENOTFOUND);
  qvm_error_free(err), err = NULL;
  assert_int_equal(qvm_image_resolve(&path, &format, "sha256:00", NULL, &err), QVM_EINVAL);
  qvm_error_free(err), err = NULL;
  assert_int_equal(qvm_image_resolve(&path, &format, "", NULL, &err), QVM_EINVAL);
  qvm_error_free(err), err = NULL;
  assert_int_equal(qvm_image_tag("tiny", "../evil", &err), QVM_EINVAL);
  qvm_error_free(err), err = NULL;
  /* a user:password in a url is never stored */
  qvm_image_pull_options o = QVM_IMAGE_PULL_OPTIONS_INIT;
  o.insecure_no_checksum = true;
  char *json = NULL;
  o.retries = 0;
  int r = qvm_image_pull(&json, "http://user:secret@127.0.0.1:1/x.img", &o, &err);
  assert_true(r < 0);
  assert_null(strstr(qvm_error_message(err), "secret"));
  qvm_error_free(err), err = NULL;
  assert_int_equal(qvm_image_list(&json, &err), 0);
  assert_null(strstr(json, "secret"));
  free(json);
}

static bool cancel_always(void *userdata) {
  (*(int *)userdata)++;
  return true;
}

/* A pull whose cancel hook says yes fails ECANCELED "Cancelled" and stores
 * nothing; qvm_image_pull_discard removes what an interrupted pull of a
 * source left in the staging area (and says whether there was any), and
 * refuses while a pull of it holds its lock. */
static void test_cancel_and_discard(void **state) {
  (void)state;
  char third[PATH_MAX], url[PATH_MAX + 8];
  snprintf(third, sizeof third, "%s/third.qcow2", dir);
  char *cmd = NULL;
  assert_true(asprintf(&cmd, "qemu-img create -q -f qcow2 '%s' 4M", third) > 0);
  must_sh(cmd);
  free(cmd);
  snprintf(url, sizeof url, "file://%s", third);
  qvm_image_pull_options o = QVM_IMAGE_PULL_OPTIONS_INIT;
  int polls = 0;
  o.cancelled = cancel_always;
  o.userdata = &polls;
  qvm_error *err = NULL;
  char *json = NULL;
  assert_int_equal(qvm_image_pull(&json, url, &o, &err), QVM_ESYS);
  assert_string_equal(qvm_error_class(err), "Cancelled");
  assert_true(polls >= 1);
  qvm_error_free(err), err = NULL;
  assert_int_equal(qvm_image_list(&json, &err), 0);
  assert_null(strstr(json, "third.qcow2"));
  free(json);

  const char *src = "http://127.0.0.1:1/disk.img";
  bool removed = true;
  assert_int_equal(qvm_image_pull_discard(src, &removed, &err), 0);
  assert_false(removed);
  /* what a pull killed midway leaves: <sha256 of the source>.part */
  assert_true(asprintf(&cmd,
                       "cd \"$QVM_STATE_DIR/images/tmp\" && k=$(printf %%s '%s' | sha256sum | "
                       "cut -c1-64) && head -c 1000 /dev/zero > $k.part && test -f $k.part",
                       src) > 0);
  must_sh(cmd);
  free(cmd);
  assert_int_equal(qvm_image_pull_discard(src, &removed, &err), 0);
  assert_true(removed);
  assert_true(asprintf(&cmd,
                       "cd \"$QVM_STATE_DIR/images/tmp\" && k=$(printf %%s '%s' | sha256sum | "
                       "cut -c1-64) && test ! -e $k.part",
                       src) > 0);
  must_sh(cmd);
  free(cmd);
  /* under way (its lock held): refused, the part kept */
  assert_true(asprintf(&cmd,
                       "cd \"$QVM_STATE_DIR/images/tmp\" && k=$(printf %%s '%s' | sha256sum | "
                       "cut -c1-64) && touch $k.part && (flock $k.lock sleep 3 </dev/null "
                       ">/dev/null 2>&1 &) && sleep 0.5",
                       src) > 0);
  must_sh(cmd);
  free(cmd);
  assert_int_equal(qvm_image_pull_discard(src, &removed, &err), QVM_EBUSY);
  qvm_error_free(err), err = NULL;
  assert_true(asprintf(&cmd,
                       "cd \"$QVM_STATE_DIR/images/tmp\" && k=$(printf %%s '%s' | sha256sum | "
                       "cut -c1-64) && test -e $k.part",
                       src) > 0);
  must_sh(cmd);
  free(cmd);
  assert_int_equal(qvm_image_pull_discard("no-such-alias", NULL, &err), QVM_ENOTFOUND);
  qvm_error_free(err), err = NULL;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_path),
      cmocka_unit_test(test_alias_then_name),
      cmocka_unit_test(test_url_once),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_cancel_and_discard),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
