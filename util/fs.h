/* SPDX-License-Identifier: MIT */
#ifndef QVM_UTIL_FS_H
#define QVM_UTIL_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/error.h"

/*
 * Writes path atomically: a temp file in the same directory (O_CLOEXEC,
 * created with `mode` so it is never more readable than intended), write,
 * fsync, rename over path, then fsync the directory. Readers see the old
 * content or the new, never a torn file. The temp file is removed on failure.
 */
int qvm_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                          qvm_error **err);

/* Reads a whole file of at most max bytes into a NUL-terminated buffer. */
int qvm_read_file(char **out, size_t *out_len, const char *path, size_t max, qvm_error **err);

/* mkdir -p with the given mode for the directories it creates. */
int qvm_mkdir_p(const char *path, mode_t mode, qvm_error **err);

/* rm -rf that does not follow symlinks and stays on one filesystem. */
int qvm_rm_rf(const char *path, qvm_error **err);

/* Full read/write loops that retry on EINTR. Return bytes or -errno. */
ssize_t qvm_write_all(int fd, const void *buf, size_t len);
ssize_t qvm_read_all(int fd, void *buf, size_t len);

int qvm_fd_set_nonblock(int fd, bool on);
int qvm_fd_set_cloexec(int fd, bool on);

#endif
