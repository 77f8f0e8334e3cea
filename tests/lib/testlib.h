/* SPDX-License-Identifier: MIT */
#ifndef QVM_TESTLIB_H
#define QVM_TESTLIB_H

/*
 * Shared helpers for every test tier.
 *
 * Skips: a test that cannot run here (no root, no QEMU, no netns) calls
 * qvm_test_skip(). On a laptop that exits 77, which ctest reports as skipped.
 * Under CI=true it prints why and exits 1: CI never passes by skipping.
 */
#include <stdbool.h>
#include <stddef.h>

#define QVM_TEST_SKIP_CODE 77

bool qvm_test_in_ci(void);
__attribute__((noreturn, format(printf, 1, 2))) void qvm_test_skip(const char *fmt, ...);

/* Skip unless running as root / the binary is on PATH / netns works. */
void qvm_test_require_root(void);
void qvm_test_require_program(const char *program);

/* Creates a fresh private temp directory; the caller frees the string and
 * removes the directory (qvm_test_rmtree). */
char *qvm_test_mkdtemp(const char *tag);
void qvm_test_rmtree(const char *path);

/* The project's source and build directories (from ctest's environment, or
 * compiled-in fallbacks). */
const char *qvm_test_source_dir(void);
const char *qvm_test_binary_dir(void);

/* Builds (or finds cached) the mini guest via tests/guests/mini/build.sh and
 * returns the paths of its kernel and initramfs (static storage). Skips (or
 * fails under CI) if the guest cannot be built. */
void qvm_test_mini_guest(const char **kernel, const char **initrd);

/* Runs a shell command, returns its exit status (or -1). */
int qvm_test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Runs a shell command and returns its stdout (malloc'd, trailing newline
 * stripped), or NULL if it failed. */
char *qvm_test_sh_output(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
