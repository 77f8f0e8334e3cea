/* SPDX-License-Identifier: MIT */
/* Lazy binding (lazy/lazy.h): test_lazy links the trampolines that lazy-trampolines.sh
 * wrote for liblazytarget.so, not the library. It is not mapped until the
 * first call; then every argument arrives intact, in integer and vector
 * registers, on the stack and through a variadic call; threads racing on
 * the first call all get the right answer; and a library that cannot be
 * opened ends the process with a message naming it. */
#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lazy.h"
#include "lazytarget.h"
#include "testlib.h"

extern struct qvm_lazy_lib qvm_lz_lazytarget;

static bool target_mapped(void) {
  void *h = dlopen(LAZYTARGET_SONAME, RTLD_NOW | RTLD_NOLOAD);
  if (h) dlclose(h);
  return h != NULL;
}

static void *racer(void *arg) {
  long k = (long)(intptr_t)arg;
  long got = lt_sum9(k, k, k, k, k, k, k, k, k);
  return (void *)(intptr_t)(got == 45 * k);
}

/* Runs before anything in this process called the library (cmocka keeps
 * the order, and the first test calls only in children). */
static void test_first_call_races(void **state) {
  (void)state;
  assert_false(target_mapped());
  assert_false(qvm_lazy_is_loaded(&qvm_lz_lazytarget));
  pthread_t t[8];
  for (long i = 0; i < 8; i++)
    assert_int_equal(pthread_create(&t[i], NULL, racer, (void *)(intptr_t)(i + 1)), 0);
  for (int i = 0; i < 8; i++) {
    void *ok = NULL;
    assert_int_equal(pthread_join(t[i], &ok), 0);
    assert_true(ok != NULL);
  }
  assert_true(target_mapped());
  assert_true(qvm_lazy_is_loaded(&qvm_lz_lazytarget));
}

static void test_arguments_arrive(void **state) {
  (void)state;
  assert_int_equal(lt_sum9(1, 2, 3, 4, 5, 6, 7, 8, 9), 1 + 4 + 9 + 16 + 25 + 36 + 49 + 64 + 81);
  assert_int_equal(lt_sum9(-1, 0, 0, 0, 0, 0, 0, 0, 1L << 40), -1 + 9 * (1L << 40));
  /* 1 + 2x + ... + 8x^7 at x = 0.5 */
  assert_float_equal(lt_poly(0.5, 1, 2, 3, 4, 5, 6, 7, 8),
                     1 + 1 + 0.75 + 0.5 + 0.3125 + 0.1875 + 0.109375 + 0.0625, 1e-12);
  assert_float_equal(lt_vsum(5, 0.5, 1.5, 2.0, -4.0, 10.25), 10.25, 1e-12);
  assert_int_equal(lt_len("twelve chars"), 12);
  /* dlsym through the table, as lazy/gnutls.c does for a variable */
  size_t (*len)(const char *) = (size_t(*)(const char *))qvm_lazy_sym(&qvm_lz_lazytarget, "lt_len");
  assert_non_null(len);
  assert_int_equal(len("abc"), 3);
  assert_null(qvm_lazy_sym(&qvm_lz_lazytarget, "lt_no_such_function"));
}

/* The first call of a process goes through the slow path (qvm_lazy_slow
 * and the resolver): a child forked before anything was bound makes one
 * kind of call first and reports whether it got the right answer. */
static int first_call(int kind) {
  if (target_mapped()) return 2;
  switch (kind) {
  case 0: return lt_sum9(1, 2, 3, 4, 5, 6, 7, 8, 9) == 285 ? 0 : 1; /* 3 on the stack */
  case 1: return lt_poly(2, 1, 1, 1, 1, 1, 1, 1, 1) == 255 ? 0 : 1; /* 8 in xmm, 1 on the stack */
  default: return lt_vsum(3, 1.0, 2.0, 3.5) == 6.5 ? 0 : 1;         /* variadic: al = 3 */
  }
}

static void test_first_call_carries_arguments(void **state) {
  (void)state;
  for (int kind = 0; kind < 3; kind++) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(first_call(kind));
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) != 0)
      fail_msg("first call of kind %d: %s", kind,
               WEXITSTATUS(st) == 2 ? "library mapped before it" : "wrong result");
  }
}

static void *missing_ptrs[1];
static void ignore(void *h) { (void)h; }

static void test_missing_library_names_it(void **state) {
  (void)state;
  struct qvm_lazy_lib missing = {.soname = "libqvm-no-such-library.so.9",
                                 .names = "f\0",
                                 .ptrs = missing_ptrs,
                                 .n = 1,
                                 .loaded = ignore};
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 2);
    qvm_lazy_resolve(&missing);
    _exit(0);
  }
  close(fds[1]);
  char buf[512] = {0};
  ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
  close(fds[0]);
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 127);
  assert_true(n > 0);
  assert_non_null(strstr(buf, "cannot load libqvm-no-such-library.so.9"));
  assert_non_null(strstr(buf, "install the package"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_first_call_carries_arguments),
      cmocka_unit_test(test_first_call_races),
      cmocka_unit_test(test_arguments_arrive),
      cmocka_unit_test(test_missing_library_names_it),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
