/* SPDX-License-Identifier: MIT */
#include "util/strbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool strbuf_reserve(qvm_strbuf *sb, size_t extra) {
  if (sb->oom) return false;
  if (extra > SIZE_MAX - sb->len - 1) goto oom;
  size_t need = sb->len + extra + 1;
  if (need <= sb->cap) return true;
  size_t cap = sb->cap ? sb->cap : 64;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  char *p = realloc(sb->buf, cap);
  if (!p) goto oom;
  sb->buf = p;
  sb->cap = cap;
  return true;
oom:
  sb->oom = true;
  return false;
}

void qvm_strbuf_append(qvm_strbuf *sb, const void *data, size_t len) {
  if (!strbuf_reserve(sb, len)) return;
  if (len) memcpy(sb->buf + sb->len, data, len);
  sb->len += len;
  sb->buf[sb->len] = '\0';
}

void qvm_strbuf_puts(qvm_strbuf *sb, const char *s) { qvm_strbuf_append(sb, s, strlen(s)); }
void qvm_strbuf_putc(qvm_strbuf *sb, char c) { qvm_strbuf_append(sb, &c, 1); }

void qvm_strbuf_printf(qvm_strbuf *sb, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !strbuf_reserve(sb, (size_t)n)) return;
  va_start(ap, fmt);
  vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  sb->len += (size_t)n;
}

void qvm_strbuf_reset(qvm_strbuf *sb) {
  sb->len = 0;
  if (sb->buf) sb->buf[0] = '\0';
}

char *qvm_strbuf_steal(qvm_strbuf *sb) {
  if (sb->oom) {
    qvm_strbuf_free(sb);
    return NULL;
  }
  char *s = sb->buf ? sb->buf : strdup("");
  *sb = (qvm_strbuf)QVM_STRBUF_INIT;
  return s;
}

void qvm_strbuf_free(qvm_strbuf *sb) {
  free(sb->buf);
  *sb = (qvm_strbuf)QVM_STRBUF_INIT;
}

char *qvm_strndup(const char *s, size_t n) {
  const char *nul = memchr(s, '\0', n);
  size_t len = nul ? (size_t)(nul - s) : n;
  char *p = malloc(len + 1);
  if (!p) return NULL;
  memcpy(p, s, len);
  p[len] = '\0';
  return p;
}
