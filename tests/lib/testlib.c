/* SPDX-License-Identifier: MIT */
#include "testlib.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool qvm_test_in_ci(void) {
  const char *ci = getenv("CI");
  return ci && (strcmp(ci, "true") == 0 || strcmp(ci, "1") == 0);
}

void qvm_test_skip(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, qvm_test_in_ci() ? "FAIL (a skip is a failure under CI=true): " : "SKIP: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(qvm_test_in_ci() ? 1 : QVM_TEST_SKIP_CODE);
}

void qvm_test_require_root(void) {
  if (geteuid() != 0) qvm_test_skip("needs root");
}

void qvm_test_require_program(const char *program) {
  if (qvm_test_sh("command -v '%s' >/dev/null 2>&1", program) != 0)
    qvm_test_skip("needs '%s' on PATH (run scripts/deps.sh)", program);
}

char *qvm_test_mkdtemp(const char *tag) {
  char *path = NULL;
  const char *base = getenv("TMPDIR");
  if (asprintf(&path, "%s/qvm-test-%s-XXXXXX", base ? base : "/tmp", tag) < 0) abort();
  if (!mkdtemp(path)) {
    perror("mkdtemp");
    abort();
  }
  return path;
}

void qvm_test_rmtree(const char *path) {
  if (path && *path && strcmp(path, "/") != 0) qvm_test_sh("rm -rf -- '%s'", path);
}

const char *qvm_test_source_dir(void) {
  const char *s = getenv("QVM_SOURCE_DIR");
  return s ? s : QVM_TEST_SOURCE_DIR;
}

const char *qvm_test_binary_dir(void) {
  const char *s = getenv("QVM_BINARY_DIR");
  return s ? s : QVM_TEST_BINARY_DIR;
}

static char *sh_vformat(const char *fmt, va_list ap) {
  char *cmd = NULL;
  if (vasprintf(&cmd, fmt, ap) < 0) abort();
  return cmd;
}

int qvm_test_sh(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *cmd = sh_vformat(fmt, ap);
  va_end(ap);
  int st = system(cmd);
  free(cmd);
  if (st == -1 || !WIFEXITED(st)) return -1;
  return WEXITSTATUS(st);
}

char *qvm_test_sh_output(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *cmd = sh_vformat(fmt, ap);
  va_end(ap);
  FILE *p = popen(cmd, "r");
  free(cmd);
  if (!p) return NULL;
  char *buf = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&buf, &len);
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, p)) > 0) fwrite(chunk, 1, n, mem);
  fclose(mem);
  int st = pclose(p);
  if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    free(buf);
    return NULL;
  }
  while (len > 0 && buf[len - 1] == '\n') buf[--len] = '\0';
  return buf;
}

void qvm_test_mini_guest(const char **kernel, const char **initrd) {
  static char k[PATH_MAX], i[PATH_MAX];
  if (!k[0]) {
    char *dir = qvm_test_sh_output("'%s/tests/guests/mini/build.sh' 2>&2 | tail -n 1",
                                   qvm_test_source_dir());
    if (!dir || !*dir)
      qvm_test_skip("the mini guest could not be built (tests/guests/mini/build.sh)");
    snprintf(k, sizeof k, "%s/vmlinuz", dir);
    snprintf(i, sizeof i, "%s/initrd.img", dir);
    free(dir);
    if (access(k, R_OK) != 0 || access(i, R_OK) != 0)
      qvm_test_skip("mini guest files missing in the cache: %s", k);
  }
  *kernel = k;
  *initrd = i;
}
