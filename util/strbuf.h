/* SPDX-License-Identifier: MIT */
#ifndef QVM_UTIL_STRBUF_H
#define QVM_UTIL_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

/* A growable, always NUL-terminated byte buffer. Zero-initialize to use. */
typedef struct qvm_strbuf {
  char *buf;
  size_t len;
  size_t cap;
  bool oom; /* set once an allocation failed; later appends are no-ops */
} qvm_strbuf;

#define QVM_STRBUF_INIT                                                                            \
  { 0 }

void qvm_strbuf_append(qvm_strbuf *sb, const void *data, size_t len);
void qvm_strbuf_puts(qvm_strbuf *sb, const char *s);
void qvm_strbuf_putc(qvm_strbuf *sb, char c);
void qvm_strbuf_printf(qvm_strbuf *sb, const char *fmt, ...) QVM_PRINTF(2, 3);
void qvm_strbuf_reset(qvm_strbuf *sb);
/* Returns the buffer ("" if empty) and leaves sb empty; caller frees.
 * Returns NULL if any append ran out of memory. */
char *qvm_strbuf_steal(qvm_strbuf *sb);

/* strndup(3) that reads only [s, s + n): s need not be NUL-terminated
 * (ASan's strict_string_checks, which CI uses, reads a strndup argument up
 * to its NUL). NULL on OOM. */
char *qvm_strndup(const char *s, size_t n);
void qvm_strbuf_free(qvm_strbuf *sb);

#endif
