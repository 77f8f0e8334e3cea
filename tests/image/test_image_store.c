/* SPDX-License-Identifier: MIT */
/* image/store.c: commit, lookup, prefixes, names, removal, listing, tmp
 * pruning, and concurrent commits of one digest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "image/store.h"
#include "testlib.h"

typedef struct fixture {
  char *dir;
  char *root;
  img_store *s;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  f->dir = qvm_test_mkdtemp("store");
  assert_true(asprintf(&f->root, "%s/images", f->dir) > 0);
  qvm_error *err = NULL;
  assert_int_equal(img_store_open(&f->s, f->root, &err), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  img_store_free(f->s);
  qvm_test_sh("chmod -R u+w '%s'", f->dir);
  qvm_test_rmtree(f->dir);
  free(f->dir);
  free(f->root);
  free(f);
  return 0;
}

static void digest_of(char out[65], const char *content) {
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, (const unsigned char *)content, strlen(content));
  sodium_bin2hex(out, 65, h, sizeof h);
}

/* Stages content under tmp/ and commits it as name. */
static int put(fixture *f, const char *content, const char *name, char digest[65],
               qvm_error **err) {
  char *staged = NULL;
  assert_int_equal(img_store_tmp_path(&staged, f->s, ".img", NULL), 0);
  FILE *fp = fopen(staged, "w");
  assert_non_null(fp);
  fputs(content, fp);
  fclose(fp);
  img_meta m = {.format = "raw",
                .virtual_size = strlen(content),
                .file_size = strlen(content),
                .source = "http://example.test/x.img",
                .verified = "sha256",
                .compression = "none",
                .created_ms = 1000};
  digest_of(m.digest, content);
  memcpy(digest, m.digest, 65);
  int r = img_store_commit(f->s, staged, &m, name, err);
  free(staged);
  return r;
}

static void test_names(void **state) {
  (void)state;
  assert_true(img_name_valid("debian-12"));
  assert_true(img_name_valid("ubuntu-24.04"));
  assert_true(img_name_valid("a_b"));
  assert_false(img_name_valid(""));
  assert_false(img_name_valid("-x"));
  assert_false(img_name_valid("Debian"));
  assert_false(img_name_valid("../x"));
  assert_false(img_name_valid("a/b"));
  assert_false(img_name_valid("sha256:abc"));
  char long_name[70];
  memset(long_name, 'a', 65);
  long_name[65] = '\0';
  assert_false(img_name_valid(long_name));
  long_name[64] = '\0';
  assert_true(img_name_valid(long_name));
  qvm_error *err = NULL;
  assert_int_equal(img_name_check("a\x1b[31m", &err), QVM_EINVAL);
  assert_null(strchr(qvm_error_message(err), '\x1b'));
  qvm_error_free(err);
}

static void test_commit_lookup(void **state) {
  fixture *f = *state;
  char d[65], *path = NULL;
  qvm_error *err = NULL;
  assert_int_equal(put(f, "hello image", "one", d, &err), 0);
  img_meta m = {0};
  assert_int_equal(img_store_lookup(&m, &path, f->s, "one", &err), 0);
  assert_string_equal(m.digest, d);
  assert_string_equal(m.format, "raw");
  assert_string_equal(m.source, "http://example.test/x.img");
  assert_int_equal(m.n_names, 1);
  assert_string_equal(m.names[0], "one");
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0444);
  img_meta_clear(&m);
  free(path);
  /* by full digest and by a 12-digit prefix */
  char ref[80];
  snprintf(ref, sizeof ref, "sha256:%s", d);
  assert_int_equal(img_store_lookup(&m, NULL, f->s, ref, &err), 0);
  img_meta_clear(&m);
  snprintf(ref, sizeof ref, "sha256:%.12s", d);
  assert_int_equal(img_store_lookup(&m, NULL, f->s, ref, &err), 0);
  assert_string_equal(m.digest, d);
  img_meta_clear(&m);
  /* too short a prefix, bad hex, unknown name */
  snprintf(ref, sizeof ref, "sha256:%.11s", d);
  assert_int_equal(img_store_lookup(&m, NULL, f->s, ref, &err), QVM_EINVAL);
  qvm_error_free(err), err = NULL;
  assert_int_equal(img_store_lookup(&m, NULL, f->s, "sha256:XYZ000000000", &err), QVM_EINVAL);
  qvm_error_free(err), err = NULL;
  assert_int_equal(img_store_lookup(&m, NULL, f->s, "nope", &err), QVM_ENOTFOUND);
  assert_non_null(strstr(qvm_error_message(err), "'nope'"));
  qvm_error_free(err), err = NULL;
  assert_int_equal(img_store_lookup(&m, NULL, f->s, "../../etc", &err), QVM_EINVAL);
  qvm_error_free(err), err = NULL;
  /* dirs 0700, meta 0600 */
  char *p = NULL;
  assert_true(asprintf(&p, "%s/meta/%s.json", f->root, d) > 0);
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  free(p);
  assert_int_equal(stat(f->root, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0700);
}

static void test_commit_refuses_outside_tmp(void **state) {
  fixture *f = *state;
  img_meta m = {.format = "raw"};
  digest_of(m.digest, "x");
  qvm_error *err = NULL;
  assert_int_equal(img_store_commit(f->s, "/etc/passwd", &m, NULL, &err), QVM_EINVAL);
  qvm_error_free(err), err = NULL;
  char *p = NULL;
  assert_true(asprintf(&p, "%s/tmp/../names.json", f->root) > 0);
  assert_int_equal(img_store_commit(f->s, p, &m, NULL, &err), QVM_EINVAL);
  qvm_error_free(err), err = NULL;
  free(p);
  strcpy(m.digest, "ABC");
  assert_int_equal(img_store_commit(f->s, "x", &m, NULL, &err), QVM_EINVAL);
  qvm_error_free(err);
}

/* Commits content under a digest of the test's choosing (commit trusts its
 * caller's digest). */
static void put_as(fixture *f, const char *digest) {
  char *staged = NULL;
  assert_int_equal(img_store_tmp_path(&staged, f->s, ".img", NULL), 0);
  FILE *fp = fopen(staged, "w");
  assert_non_null(fp);
  fputs(digest, fp);
  fclose(fp);
  img_meta m = {.format = "raw", .created_ms = 5};
  memcpy(m.digest, digest, 65);
  qvm_error *err = NULL;
  assert_int_equal(img_store_commit(f->s, staged, &m, NULL, &err), 0);
  free(staged);
}

static void test_ambiguous_prefix(void **state) {
  fixture *f = *state;
  char d1[65], d2[65];
  memset(d1, 'a', 64), d1[64] = '\0';
  memcpy(d2, d1, 65);
  d2[20] = 'b';
  put_as(f, d1);
  put_as(f, d2);
  img_meta m = {0};
  qvm_error *err = NULL;
  assert_int_equal(img_store_lookup(&m, NULL, f->s, "sha256:aaaaaaaaaaaa", &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "matches 2 images"));
  qvm_error_free(err), err = NULL;
  char ref[80];
  snprintf(ref, sizeof ref, "sha256:%.21s", d2);
  assert_int_equal(img_store_lookup(&m, NULL, f->s, ref, &err), 0);
  assert_string_equal(m.digest, d2);
  img_meta_clear(&m);
  assert_int_equal(img_store_lookup(&m, NULL, f->s, "sha256:bbbbbbbbbbbb", &err), QVM_ENOTFOUND);
  qvm_error_free(err);
}

static void test_tag_untag_remove(void **state) {
  fixture *f = *state;
  char d[65], ref[80];
  qvm_error *err = NULL;
  assert_int_equal(put(f, "tagged", "a", d, &err), 0);
  assert_int_equal(img_store_tag(f->s, "a", "b", &err), 0);
  img_meta m = {0};
  assert_int_equal(img_store_lookup(&m, NULL, f->s, "b", &err), 0);
  assert_string_equal(m.digest, d);
  assert_int_equal(m.n_names, 2);
  img_meta_clear(&m);
  assert_int_equal(img_store_tag(f->s, "a", "Bad Name", &err), QVM_EINVAL);
  qvm_error_free(err), err = NULL;
  assert_int_equal(img_store_tag(f->s, "missing", "c", &err), QVM_ENOTFOUND);
  qvm_error_free(err), err = NULL;
  assert_int_equal(img_store_untag(f->s, "a", &err), 0);
  assert_int_equal(img_store_lookup(&m, NULL, f->s, "a", &err), QVM_ENOTFOUND);
  qvm_error_free(err), err = NULL;
  assert_int_equal(img_store_untag(f->s, "a", &err), QVM_ENOTFOUND);
  qvm_error_free(err), err = NULL;
  /* a name re-pointed at another image */
  char d2[65];
  assert_int_equal(put(f, "other", "b", d2, &err), 0);
  assert_int_equal(img_store_lookup(&m, NULL, f->s, "b", &err), 0);
  assert_string_equal(m.digest, d2);
  img_meta_clear(&m);
  /* remove drops the file, the meta and every name */
  int lock = -1;
  assert_int_equal(img_store_lock(&lock, f->s, true, 1000, &err), 0);
  assert_int_equal(img_store_remove_locked(f->s, d2, &err), 0);
  assert_int_equal(img_store_remove_locked(f->s, d2, &err), QVM_ENOTFOUND);
  qvm_error_free(err), err = NULL;
  close(lock);
  assert_int_equal(img_store_lookup(&m, NULL, f->s, "b", &err), QVM_ENOTFOUND);
  qvm_error_free(err), err = NULL;
  snprintf(ref, sizeof ref, "sha256:%s", d2);
  assert_int_equal(img_store_lookup(&m, NULL, f->s, ref, &err), QVM_ENOTFOUND);
  qvm_error_free(err), err = NULL;
  snprintf(ref, sizeof ref, "sha256:%s", d);
  assert_int_equal(img_store_lookup(&m, NULL, f->s, ref, &err), 0);
  assert_int_equal(m.n_names, 0);
  img_meta_clear(&m);
}

static void test_list_and_find_source(void **state) {
  fixture *f = *state;
  char d1[65], d2[65];
  qvm_error *err = NULL;
  assert_int_equal(put(f, "first", "x1", d1, &err), 0);
  assert_int_equal(put(f, "second", NULL, d2, &err), 0);
  img_meta *list = NULL;
  size_t n = 0;
  assert_int_equal(img_store_list(&list, &n, f->s, &err), 0);
  assert_int_equal(n, 2);
  img_meta_list_free(list, n);
  img_meta m = {0};
  assert_int_equal(img_store_find_source(&m, f->s, "http://example.test/x.img", &err), 0);
  assert_true(m.digest[0] != '\0');
  img_meta_clear(&m);
  assert_int_equal(img_store_find_source(&m, f->s, "http://other.test/", &err), 0);
  assert_int_equal(m.digest[0], '\0');
  /* committing an already stored digest keeps one file and removes the staged one */
  assert_int_equal(put(f, "first", "again", d1, &err), 0);
  assert_int_equal(img_store_list(&list, &n, f->s, &err), 0);
  assert_int_equal(n, 2);
  img_meta_list_free(list, n);
}

static int count_files(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *de;
  while (d && (de = readdir(d)))
    if (de->d_name[0] != '.') n++;
  if (d) closedir(d);
  return n;
}

static void test_partial_never_visible(void **state) {
  fixture *f = *state;
  /* A partial download under tmp/ is not an image: list and lookups miss it. */
  char *part = NULL, *lock = NULL;
  qvm_error *err = NULL;
  assert_int_equal(img_store_source_paths(&part, &lock, f->s, "http://h/x.img", &err), 0);
  assert_non_null(strstr(part, "/tmp/"));
  assert_non_null(strstr(part, ".part"));
  char *part2 = NULL;
  assert_int_equal(img_store_source_paths(&part2, NULL, f->s, "http://h/x.img", &err), 0);
  assert_string_equal(part, part2); /* one source, one key */
  FILE *fp = fopen(part, "w");
  fputs("partial", fp);
  fclose(fp);
  img_meta *list = NULL;
  size_t n = 0;
  assert_int_equal(img_store_list(&list, &n, f->s, &err), 0);
  assert_int_equal(n, 0);
  char *sha = NULL;
  assert_true(asprintf(&sha, "%s/sha256", f->root) > 0);
  assert_int_equal(count_files(sha), 0);
  /* prune keeps it while its lock is held, removes it once free */
  int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  assert_int_equal(flock(lfd, LOCK_EX), 0);
  uint64_t bytes = 0;
  assert_int_equal(img_store_prune_tmp(&bytes, f->s, 0, &err), 0);
  assert_int_equal(bytes, 0);
  assert_int_equal(access(part, F_OK), 0);
  close(lfd);
  assert_int_equal(img_store_prune_tmp(&bytes, f->s, 0, &err), 0);
  assert_int_equal(bytes, 7);
  assert_int_not_equal(access(part, F_OK), 0);
  /* a fresh staging file survives a prune with an age limit */
  char *staged = NULL;
  assert_int_equal(img_store_tmp_path(&staged, f->s, ".img", &err), 0);
  fp = fopen(staged, "w");
  fclose(fp);
  assert_int_equal(img_store_prune_tmp(&bytes, f->s, 3600000, &err), 0);
  assert_int_equal(access(staged, F_OK), 0);
  free(staged);
  free(sha);
  free(part);
  free(part2);
  free(lock);
}

typedef struct commit_job {
  fixture *f;
  int rc;
} commit_job;

static void *commit_thread(void *arg) {
  commit_job *j = arg;
  char d[65];
  qvm_error *err = NULL;
  j->rc = put(j->f, "the same bytes from two pulls", "same", d, &err);
  qvm_error_free(err);
  return NULL;
}

static void test_concurrent_commit(void **state) {
  fixture *f = *state;
  pthread_t t[4];
  commit_job jobs[4];
  for (int i = 0; i < 4; i++) {
    jobs[i] = (commit_job){f, -100};
    pthread_create(&t[i], NULL, commit_thread, &jobs[i]);
  }
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < 4; i++) assert_int_equal(jobs[i].rc, 0);
  char *sha = NULL, *tmp = NULL;
  assert_true(asprintf(&sha, "%s/sha256", f->root) > 0);
  assert_true(asprintf(&tmp, "%s/tmp", f->root) > 0);
  assert_int_equal(count_files(sha), 1);
  assert_int_equal(count_files(tmp), 0); /* every staged copy was moved or removed */
  img_meta m = {0};
  qvm_error *err = NULL;
  assert_int_equal(img_store_lookup(&m, NULL, f->s, "same", &err), 0);
  img_meta_clear(&m);
  free(sha);
  free(tmp);
}

static void test_lock_busy(void **state) {
  fixture *f = *state;
  int a = -1, b = -1;
  qvm_error *err = NULL;
  assert_int_equal(img_store_lock(&a, f->s, true, 1000, &err), 0);
  assert_int_equal(img_store_lock(&b, f->s, false, 50, &err), QVM_EBUSY);
  qvm_error_free(err), err = NULL;
  close(a);
  assert_int_equal(img_store_lock(&b, f->s, false, 50, &err), 0);
  close(b);
}

static void test_bad_names_json(void **state) {
  fixture *f = *state;
  char *p = NULL;
  assert_true(asprintf(&p, "%s/names.json", f->root) > 0);
  FILE *fp = fopen(p, "w");
  fputs("{\"../x\": \"sha256:00\"}", fp);
  fclose(fp);
  img_meta m = {0};
  qvm_error *err = NULL;
  assert_int_equal(img_store_lookup(&m, NULL, f->s, "x", &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "names.json"));
  qvm_error_free(err);
  free(p);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),
      cmocka_unit_test_setup_teardown(test_commit_lookup, setup, teardown),
      cmocka_unit_test_setup_teardown(test_commit_refuses_outside_tmp, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ambiguous_prefix, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tag_untag_remove, setup, teardown),
      cmocka_unit_test_setup_teardown(test_list_and_find_source, setup, teardown),
      cmocka_unit_test_setup_teardown(test_partial_never_visible, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_commit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lock_busy, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_names_json, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
