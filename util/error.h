/* SPDX-License-Identifier: MIT */
#ifndef QVM_UTIL_ERROR_H
#define QVM_UTIL_ERROR_H

/*
 * Error conventions (see util/CONVENTIONS.md for the whole story):
 *
 *   int qvm_thing_do(T **out, ..., qvm_error **err);
 *
 * - returns 0 or a negative QVM_E* code;
 * - sets *err once on failure via qvm_error_set*(), which return the code, so
 *   `return qvm_error_set(err, QVM_EINVAL, "name '%s' is invalid", n);`
 *   is the usual failure exit;
 * - a caller adds context with qvm_error_prefix(), never replaces;
 * - messages are one lowercase phrase, no trailing period, quoting user input.
 */
#include <stdarg.h>

#include <qvm/error.h>

#define QVM_PRINTF(a, b) __attribute__((format(printf, a, b)))

int qvm_error_set(qvm_error **err, int code, const char *fmt, ...) QVM_PRINTF(3, 4);
/* code QVM_ESYS (QVM_EPERM for EACCES and EPERM); appends ": strerror(errnum)"
 * and records errnum. */
int qvm_error_set_errno(qvm_error **err, int errnum, const char *fmt, ...) QVM_PRINTF(3, 4);
/* Any code, with errno recorded and ": strerror" appended. */
int qvm_error_set_code_errno(qvm_error **err, int code, int errnum, const char *fmt, ...)
    QVM_PRINTF(4, 5);
/* Sets the class of an error already set (takes a copy). */
void qvm_error_set_class(qvm_error *err, const char *cls);
/* Sets the VM the error is about (qvm_error_subject; takes a copy). */
void qvm_error_set_subject(qvm_error *err, const char *subject);
/* Class and subject of *err, set just before with `code` (the CLI turns
 * them into a hint). Returns code, also when err is NULL (then it does
 * nothing else), so that
 *   qvm_error_set(err, QVM_ECONFLICT, "vm '%s' is running", vm->name);
 *   return qvm_error_set_hint(err, QVM_ECONFLICT, "VmRunning", vm->name);
 * fails the same with or without an error to fill. */
int qvm_error_set_hint(qvm_error **err, int code, const char *cls, const char *subject);
/* "context: old message". A NULL err or *err is a no-op. Returns the code. */
int qvm_error_prefix(qvm_error **err, const char *fmt, ...) QVM_PRINTF(2, 3);
/* The message made safe for a terminal and JSON (qvm_text_for_terminal, line
 * ends kept): for messages that quote a guest's bytes (a file name). */
void qvm_error_neutralize(qvm_error *err);
/* "old message" + the text (which brings its own separator). Same rules. */
int qvm_error_suffix(qvm_error **err, const char *fmt, ...) QVM_PRINTF(2, 3);
/* Moves *src into *dst (dst may be NULL: then src is freed). Returns code. */
int qvm_error_propagate(qvm_error **dst, qvm_error *src);

/* An options struct's `version` against the one this library knows: 0, or
 * QVM_EINVAL naming the struct ("qvm_vm_start_options: unknown version 7
 * ..."). A caller that did not start from the _INIT macro has version 0. */
int qvm_options_check(unsigned version, unsigned known, const char *type, qvm_error **err);
#define QVM_OPTIONS_CHECK(opts, type, known, err)                                                  \
  ((opts) ? qvm_options_check((opts)->version, (known), #type, (err)) : 0)

static inline void qvm_error_freep(qvm_error **e) {
  if (*e) qvm_error_free(*e);
}

#endif
