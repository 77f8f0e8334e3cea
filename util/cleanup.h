/* SPDX-License-Identifier: MIT */
#ifndef QVM_UTIL_CLEANUP_H
#define QVM_UTIL_CLEANUP_H

/*
 * Scope-bound cleanup in the style of systemd's src/basic/ *-util.h.
 * Every variable declared with one of these must be initialized, and every
 * destructor accepts NULL (or -1 for fds). Hand ownership out with TAKE_PTR /
 * TAKE_FD.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void qvm_freep(void *p) { free(*(void **)p); }
static inline void qvm_closep(int *fd) {
  if (*fd >= 0) {
    int saved = errno;
    close(*fd);
    errno = saved;
  }
}
static inline void qvm_fclosep(FILE **f) {
  if (*f) fclose(*f);
}

#define _cleanup_free_ _cleanup_(qvm_freep)
#define _cleanup_close_ _cleanup_(qvm_closep)
#define _cleanup_fclose_ _cleanup_(qvm_fclosep)

/* Defines `static inline void namep(type **p)` calling func(*p) if non-NULL. */
#define QVM_DEFINE_CLEANUP(type, func)                                                             \
  static inline void func##p(type **p) {                                                           \
    if (*p) func(*p);                                                                              \
  }

#define TAKE_PTR(p)                                                                                \
  ({                                                                                               \
    __typeof__(p) _taken_ = (p);                                                                   \
    (p) = NULL;                                                                                    \
    _taken_;                                                                                       \
  })

#define TAKE_FD(fd)                                                                                \
  ({                                                                                               \
    int _taken_fd_ = (fd);                                                                         \
    (fd) = -1;                                                                                     \
    _taken_fd_;                                                                                    \
  })

#define QVM_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
