/* SPDX-License-Identifier: MIT */
/* image/build: option validation, the host's apt sources, and the failure
 * paths of a build (no root, a missing tool, a failing tool, an interrupt),
 * with fake tools on PATH. The real build is tests/guests/cloud/build.sh. */
#include <errno.h>
#include <sys/syscall.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "image/build.h"
#include "testlib.h"

static void test_package_names(void **state) {
  (void)state;
  const char *good[] = {"openssh-server", "g++", "libc6", "netplan.io", "0ad", "a"};
  const char *bad[] = {"", "Bad", "-x", ".x", "+x", "a b", "a,b", "a;rm", "x/y", "a_b", "é"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++)
    assert_true(img_package_name_valid(good[i]));
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_false(img_package_name_valid(bad[i]));
  assert_false(img_package_name_valid(NULL));
  char longname[200];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  assert_false(img_package_name_valid(longname));
}

static void expect_mirror(const char *url, bool ok) {
  qvm_error *err = NULL;
  int r = img_build_mirror_check(url, &err);
  if (ok) {
    assert_int_equal(r, 0);
    assert_null(err);
  } else {
    assert_int_equal(r, QVM_EINVAL);
    assert_non_null(strstr(qvm_error_message(err), "mirror url"));
    qvm_error_free(err);
  }
}

static void test_mirror(void **state) {
  (void)state;
  expect_mirror("http://deb.debian.org/debian", true);
  expect_mirror("https://snapshot.debian.org/archive/debian/20250520T000000Z", true);
  expect_mirror("file:///srv/mirror", true);
  expect_mirror("copy:///srv/mirror", true);
  expect_mirror("ftp://x/debian", false);
  expect_mirror("http://", false);
  expect_mirror("deb.debian.org/debian", false);
  expect_mirror("http://x/debian bookworm main", false);
  expect_mirror("http://x/\ndeb http://evil/ bookworm main", false);
  expect_mirror("[trusted=yes] http://x/", false);
  expect_mirror("", false);
  char big[IMG_BUILD_MIRROR_MAX + 20];
  memset(big, 'a', sizeof big - 1);
  memcpy(big, "http://", 7);
  big[sizeof big - 1] = '\0';
  expect_mirror(big, false);
}

static void expect_opts(const img_build_opts *o, const char *needle) {
  qvm_error *err = NULL;
  int r = img_build_opts_check(o, &err);
  if (!needle) {
    assert_int_equal(r, 0);
    return;
  }
  assert_int_equal(r, QVM_EINVAL);
  if (!strstr(qvm_error_message(err), needle))
    fail_msg("'%s' lacks '%s'", qvm_error_message(err), needle);
  qvm_error_free(err);
}

static void test_opts(void **state) {
  (void)state;
  img_build_opts o = {.distro = "debian-12"};
  expect_opts(&o, NULL);
  o.distro = "debian-13";
  expect_opts(&o, NULL);
  o.distro = "ubuntu-24.04";
  expect_opts(&o, "unknown distribution 'ubuntu-24.04' (known: debian-12, debian-13)");
  o.distro = NULL;
  expect_opts(&o, "unknown distribution");
  o.distro = "debian-12";
  o.size = IMG_BUILD_SIZE_MIN - (1 << 20);
  expect_opts(&o, "out of range");
  o.size = IMG_BUILD_SIZE_MAX + (1 << 20);
  expect_opts(&o, "out of range");
  o.size = (UINT64_C(3) << 30) + 512;
  expect_opts(&o, "not a multiple of 1 MiB");
  o.size = IMG_BUILD_SIZE_MIN;
  expect_opts(&o, NULL);
  o.size = IMG_BUILD_SIZE_MAX;
  expect_opts(&o, NULL);
  o.size = 0;
  const char *pk[] = {"vim", "Bad;rm -rf /"};
  o.packages = pk;
  o.n_packages = 1;
  expect_opts(&o, NULL);
  o.n_packages = 2;
  expect_opts(&o, "package name 'Bad;rm -rf /' is invalid");
  o.n_packages = IMG_BUILD_PACKAGES_MAX + 1;
  expect_opts(&o, "more than 256");
  o.n_packages = 0;
  o.mirror = "gopher://x";
  expect_opts(&o, "mirror url");
}

static void test_sources_list(void **state) {
  (void)state;
  const char *text = "# comment\n"
                     "deb http://deb.debian.org/debian bookworm main\n"
                     "deb-src http://deb.debian.org/debian bookworm main\n"
                     "deb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm-updates main # c\n"
                     "deb http://security.debian.org/debian-security bookworm-security main\n"
                     "deb http://deb.debian.org/debian bookworm-backports main\n"
                     "deb http://deb.debian.org/debian trixie main\n"
                     "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"
                     "deb http://short\n"
                     "deb [broken\n";
  char *out = NULL;
  assert_int_equal(img_apt_sources_from_list(&out, text, "bookworm"), 0);
  assert_string_equal(out,
                      "deb http://deb.debian.org/debian bookworm main\n"
                      "deb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm-updates main\n"
                      "deb http://security.debian.org/debian-security bookworm-security main\n");
  free(out);
  out = NULL;
  assert_int_equal(img_apt_sources_from_list(&out, text, "sid"), 0);
  assert_null(out);
}

static void test_sources_deb822(void **state) {
  (void)state;
  const char *text = "Types: deb\n"
                     "# http://snapshot.debian.org/archive/debian/20250520T000000Z\n"
                     "URIs: http://deb.debian.org/debian\n"
                     "Suites: bookworm bookworm-updates\n"
                     "Components: main\n"
                     "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
                     "\n"
                     "Types: deb deb-src\n"
                     "URIs: http://deb.debian.org/debian-security\n"
                     "Suites: bookworm-security trixie-security\n"
                     "Components: main contrib\n"
                     "Signed-By:\n"
                     " -----BEGIN PGP PUBLIC KEY BLOCK-----\n"
                     "\n"
                     "Types: deb\n"
                     "URIs: http://off/debian\n"
                     "Suites: bookworm\n"
                     "Components: main\n"
                     "Enabled: no\n"
                     "\n"
                     "Types: deb-src\n"
                     "URIs: http://src/debian\n"
                     "Suites: bookworm\n"
                     "Components: main\n";
  char *out = NULL;
  assert_int_equal(img_apt_sources_from_deb822(&out, text, "bookworm"), 0);
  assert_string_equal(out,
                      "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
                      "http://deb.debian.org/debian bookworm main\n"
                      "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
                      "http://deb.debian.org/debian bookworm-updates main\n"
                      "deb http://deb.debian.org/debian-security bookworm-security main contrib\n");
  free(out);
}

static void test_host_sources(void **state) {
  (void)state;
  char *dir = qvm_test_mkdtemp("img-build-apt");
  assert_int_equal(
      qvm_test_sh("mkdir -p %s/sources.list.d && "
                  "echo 'deb http://a/debian bookworm main' >%s/sources.list && "
                  "printf 'Types: deb\\nURIs: http://b/debian\\nSuites: bookworm-security\\n"
                  "Components: main\\n' >%s/sources.list.d/x.sources && "
                  "echo 'deb http://c/debian bookworm main' >%s/sources.list.d/y.list.off",
                  dir, dir, dir, dir),
      0);
  char *out = NULL;
  qvm_error *err = NULL;
  assert_int_equal(img_host_apt_sources(&out, dir, "bookworm", &err), 0);
  assert_string_equal(out, "deb http://a/debian bookworm main\n"
                           "deb http://b/debian bookworm-security main\n");
  free(out);
  out = NULL;
  assert_int_equal(img_host_apt_sources(&out, dir, "trixie", &err), QVM_ENOTFOUND);
  assert_non_null(strstr(qvm_error_message(err), "suite 'trixie'"));
  qvm_error_free(err);
  qvm_test_rmtree(dir);
  free(dir);
}

/* A dir of fake tools; mmdebstrap runs `body`. */
static char *fake_tools(const char *body) {
  char *dir = qvm_test_mkdtemp("img-build-tools");
  assert_int_equal(
      qvm_test_sh(
          "cd %s && printf '#!/bin/sh\\n%s\\n' >mmdebstrap && "
          "for t in mkfs.ext4 sfdisk qemu-img; do printf '#!/bin/sh\\nexit 0\\n' >$t; done && "
          "chmod 755 *",
          dir, body),
      0);
  return dir;
}

typedef struct build_run {
  int r;
  qvm_error *err;
  bool tmp_left, dest_left;
} build_run;

static build_run run_build(const char *path_env, const char *work) {
  char *old = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
  setenv("PATH", path_env, 1);
  char tmp[512], dest[512];
  snprintf(tmp, sizeof tmp, "%s/build", work);
  snprintf(dest, sizeof dest, "%s/out.qcow2", work);
  img_build_opts o = {.distro = "debian-12", .mirror = "http://127.0.0.1:9/debian", .tmpdir = tmp};
  img_build_result res = {0};
  build_run b = {0};
  b.r = img_build(&res, dest, &o, &b.err);
  if (old) setenv("PATH", old, 1);
  free(old);
  b.tmp_left = access(tmp, F_OK) == 0;
  b.dest_left = access(dest, F_OK) == 0;
  img_build_result_clear(&res);
  return b;
}

static void test_not_root(void **state) {
  (void)state;
  if (geteuid() == 0) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0) _exit(3);
      build_run b = run_build("/usr/bin:/bin", "/nonexistent-qvm");
      bool ok = b.r == QVM_EUNAVAIL && strstr(qvm_error_message(b.err), "needs root");
      _exit(ok ? 0 : 1);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
  } else {
    build_run b = run_build("/usr/bin:/bin", "/nonexistent-qvm");
    assert_int_equal(b.r, QVM_EUNAVAIL);
    assert_non_null(strstr(qvm_error_message(b.err), "needs root"));
    qvm_error_free(b.err);
  }
}

static void test_missing_tool(void **state) {
  (void)state;
  qvm_test_require_root();
  char *work = qvm_test_mkdtemp("img-build-missing");
  char *tools = fake_tools("exit 0");
  assert_int_equal(qvm_test_sh("rm %s/sfdisk", tools), 0);
  build_run b = run_build(tools, work);
  assert_int_equal(b.r, QVM_EUNAVAIL);
  assert_string_equal(qvm_error_message(b.err),
                      "'sfdisk' not found in PATH (it is in the 'fdisk' package)");
  assert_false(b.tmp_left);
  qvm_error_free(b.err);
  b = run_build("/nonexistent-qvm", work);
  assert_int_equal(b.r, QVM_EUNAVAIL);
  assert_non_null(strstr(qvm_error_message(b.err), "'mmdebstrap' package"));
  qvm_error_free(b.err);
  qvm_test_rmtree(tools);
  qvm_test_rmtree(work);
  free(tools);
  free(work);
}

static void test_tool_fails(void **state) {
  (void)state;
  qvm_test_require_root();
  char *work = qvm_test_mkdtemp("img-build-fails");
  char *tools =
      fake_tools("echo \"I: args $*\"; echo \"E: \\\\033[31mno such package\" >&2; exit 100");
  build_run b = run_build(tools, work);
  assert_int_equal(b.r, QVM_ESYS);
  const char *m = qvm_error_message(b.err);
  if (!strstr(m, "bootstrap: 'mmdebstrap' failed (exit status 100):") ||
      !strstr(m, "E: \\x1b[31mno such package") || !strstr(m, "--mode=root"))
    fail_msg("unexpected message: %s", m);
  assert_false(b.tmp_left);
  assert_false(b.dest_left);
  qvm_error_free(b.err);
  qvm_test_rmtree(tools);
  qvm_test_rmtree(work);
  free(tools);
  free(work);
}

static void test_interrupt(void **state) {
  (void)state;
  qvm_test_require_root();
  char *work = qvm_test_mkdtemp("img-build-intr");
  char body[1024];
  /* /bin/sleep by its path: the build runs its tools with PATH set to the
   * fake tools only, where a bare 'sleep' is not found, the fake mmdebstrap
   * exited at once, and a loaded machine finished the build (SIGINT
   * unblocked again) before the SIGINT came: it killed the test in CI. */
  snprintf(body, sizeof body, "echo $$ >%s/tool.pid; exec /bin/sleep 60", work);
  char *tools = fake_tools(body);
  pid_t killer = fork();
  assert_true(killer >= 0);
  if (killer == 0) {
    char pidfile[600];
    snprintf(pidfile, sizeof pidfile, "%s/tool.pid", work);
    for (int i = 0; i < 100 && access(pidfile, F_OK) != 0; i++) usleep(50000);
    /* to the thread running the build, as Ctrl-C reaches a one-thread qvm */
    pid_t parent = getppid();
    syscall(SYS_tgkill, parent, parent, SIGINT);
    _exit(0);
  }
  build_run b = run_build(tools, work);
  waitpid(killer, NULL, 0);
  assert_int_equal(b.r, QVM_ESYS);
  assert_int_equal(qvm_error_errno(b.err), EINTR);
  assert_string_equal(qvm_error_message(b.err),
                      "bootstrap: image build interrupted by SIGINT: Interrupted system call");
  assert_false(b.tmp_left);
  /* the fake mmdebstrap (its process group) was stopped */
  char *pid = qvm_test_sh_output("cat %s/tool.pid", work);
  assert_non_null(pid);
  assert_int_equal(kill(atoi(pid), 0), -1);
  assert_int_equal(errno, ESRCH);
  /* and SIGINT is unblocked again */
  sigset_t cur;
  sigprocmask(SIG_SETMASK, NULL, &cur);
  assert_false(sigismember(&cur, SIGINT));
  free(pid);
  qvm_error_free(b.err);
  qvm_test_rmtree(tools);
  qvm_test_rmtree(work);
  free(tools);
  free(work);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_package_names),  cmocka_unit_test(test_mirror),
      cmocka_unit_test(test_opts),           cmocka_unit_test(test_sources_list),
      cmocka_unit_test(test_sources_deb822), cmocka_unit_test(test_host_sources),
      cmocka_unit_test(test_not_root),       cmocka_unit_test(test_missing_tool),
      cmocka_unit_test(test_tool_fails),     cmocka_unit_test(test_interrupt),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
