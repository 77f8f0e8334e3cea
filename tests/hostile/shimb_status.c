/* SPDX-License-Identifier: MIT */
/* The check the shim makes on /proc/<qemu>/status before it sends cont
 * (issue 11, review finding 9): QEMU told to drop to UID:GID (-runas) must
 * hold no uid or gid but those, no supplementary group, no permitted or
 * effective capability and, with the sandbox, no_new_privs. A QEMU that kept
 * any of them (a wrapper, a QEMU that drops only its uid) never gets its
 * guest started. Crafted status texts, as the kernel writes them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "vm/shim.h"

/* A status text with these lines (the rest as the kernel writes them). */
static const char *status(char *buf, size_t n, const char *uid, const char *gid, const char *groups,
                          const char *capprm, const char *capeff, const char *nnp) {
  snprintf(buf, n,
           "Name:\tqemu-system-x86\nUmask:\t0077\nState:\tS (sleeping)\nTgid:\t42\n"
           "Pid:\t42\nPPid:\t41\nTracerPid:\t0\nUid:\t%s\nGid:\t%s\nFDSize:\t64\n"
           "Groups:\t%s\nNStgid:\t42\nVmPeak:\t  100 kB\nCapInh:\t0000000000000000\n"
           "CapPrm:\t%s\nCapEff:\t%s\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n"
           "NoNewPrivs:\t%s\nSeccomp:\t2\n",
           uid, gid, groups, capprm, capeff, nnp);
  return buf;
}

#define ZERO "0000000000000000"

static void test_dropped(void **state) {
  (void)state;
  char b[2048];
  /* The kernel's own forms: a trailing space after the groups, or none. */
  assert_null(shim_status_unprivileged(
      status(b, sizeof b, "998\t998\t998\t998", "997\t997\t997\t997", "", ZERO, ZERO, "1"), 998,
      997, true));
  assert_null(shim_status_unprivileged(
      status(b, sizeof b, "998\t998\t998\t998", "997\t997\t997\t997", "997 ", ZERO, ZERO, "1"), 998,
      997, true));
  /* Without the sandbox no_new_privs is not asked for. */
  assert_null(shim_status_unprivileged(
      status(b, sizeof b, "998\t998\t998\t998", "997\t997\t997\t997", " ", ZERO, ZERO, "0"), 998,
      997, false));
}

static void test_kept(void **state) {
  (void)state;
  char b[2048];
  static const struct {
    const char *uid, *gid, *groups, *capprm, *capeff, *nnp, *why;
  } bad[] = {
      {"0\t0\t0\t0", "997\t997\t997\t997", "", ZERO, ZERO, "1", "uids"},
      {"998\t998\t0\t998", "997\t997\t997\t997", "", ZERO, ZERO, "1", "uids"},
      {"998\t998\t998\t998", "997\t0\t997\t997", "", ZERO, ZERO, "1", "gids"},
      {"998\t998\t998\t998", "997\t997\t997\t997", "0 ", ZERO, ZERO, "1", "groups"},
      {"998\t998\t998\t998", "997\t997\t997\t997", "997 0 ", ZERO, ZERO, "1", "groups"},
      {"998\t998\t998\t998", "997\t997\t997\t997", "997 27 ", ZERO, ZERO, "1", "groups"},
      {"998\t998\t998\t998", "997\t997\t997\t997", "9970", ZERO, ZERO, "1", "groups"},
      {"998\t998\t998\t998", "997\t997\t997\t997", "997x", ZERO, ZERO, "1", "groups"},
      {"998\t998\t998\t998", "997\t997\t997\t997", "", "0000000000000400", ZERO, "1",
       "capabilities"},
      {"998\t998\t998\t998", "997\t997\t997\t997", "", ZERO, "000001ffffffffff", "1",
       "capabilities"},
      {"998\t998\t998\t998", "997\t997\t997\t997", "", ZERO, "zz", "1", "capabilities"},
      {"998\t998\t998\t998", "997\t997\t997\t997", "", ZERO, ZERO, "0", "no_new_privs"},
      {"998\t998\t998\t998", "997\t997\t997\t997", "", ZERO, ZERO, "", "no_new_privs"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *why =
        shim_status_unprivileged(status(b, sizeof b, bad[i].uid, bad[i].gid, bad[i].groups,
                                        bad[i].capprm, bad[i].capeff, bad[i].nnp),
                                 998, 997, true);
    if (!why || !strstr(why, bad[i].why)) fail_msg("case %zu: '%s'", i, why ? why : "(passed)");
  }
}

static void test_missing_lines(void **state) {
  (void)state;
  static const char *const texts[] = {
      "",
      "Uid:\t998\t998\t998\t998\nGid:\t997\t997\t997\t997\n",
      /* no Groups: line */
      "Name:\tq\nUid:\t998\t998\t998\t998\nGid:\t997\t997\t997\t997\nCapPrm:\t0\nCapEff:\t0\n"
      "NoNewPrivs:\t1\n",
      /* no CapEff: line */
      "Name:\tq\nUid:\t998\t998\t998\t998\nGid:\t997\t997\t997\t997\nGroups:\t\nCapPrm:\t0\n"
      "NoNewPrivs:\t1\n",
      /* no NoNewPrivs: line */
      "Name:\tq\nUid:\t998\t998\t998\t998\nGid:\t997\t997\t997\t997\nGroups:\t\nCapPrm:\t0\n"
      "CapEff:\t0\n",
  };
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
    if (!shim_status_unprivileged(texts[i], 998, 997, true)) fail_msg("text %zu passed", i);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dropped),
      cmocka_unit_test(test_kept),
      cmocka_unit_test(test_missing_lines),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
