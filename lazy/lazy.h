/* SPDX-License-Identifier: MIT */
/* Lazy binding of a whole shared library: build support, not a module.
 *
 * lazy-trampolines.sh writes, for one library, a trampoline for every function that
 * the given objects call in it. The trampolines are hidden symbols with the
 * library's own names, so the objects link against them and the program
 * (or libqvm.so) no longer lists the library as NEEDED. The first call of
 * any trampoline opens the library (dlopen) and binds every trampoline of it at once;
 * from then on a trampoline is one indirect jump. A library that a process never
 * calls is never mapped: `qvm list` does not load libcurl and its TLS
 * stack, qvmd without TLS does not load GnuTLS (docs/ARCHITECTURE.md,
 * "Lazy libraries"). x86-64 only; elsewhere the build links normally. */
#ifndef QVM_LAZY_H
#define QVM_LAZY_H

#include <stdbool.h>
#include <stddef.h>

struct qvm_lazy_lib {
  const char *soname;
  const char *names; /* each trampoline's name, NUL after each */
  void **ptrs;       /* the trampolines' jump targets */
  size_t n;
  void (*loaded)(void *handle); /* runs once, after dlopen, before any trampoline binds */
  void *handle;
  int state; /* 0 not yet, 1 bound */
};

/* Opens and binds LIB if that has not happened yet, and returns its jump
 * table. Called from the trampolines' first jump; exits the process with a
 * message naming the library when it cannot be loaded, which is what the
 * dynamic loader would have done at startup. */
void **qvm_lazy_resolve(struct qvm_lazy_lib *lib) __attribute__((visibility("hidden")));
/* dlsym in LIB, loading it first. NULL when it has no such symbol. */
void *qvm_lazy_sym(struct qvm_lazy_lib *lib, const char *name)
    __attribute__((visibility("hidden")));
bool qvm_lazy_is_loaded(const struct qvm_lazy_lib *lib) __attribute__((visibility("hidden")));

#endif
