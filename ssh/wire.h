/* SPDX-License-Identifier: MIT */
#ifndef QVM_SSH_WIRE_H
#define QVM_SSH_WIRE_H

/* SSH wire encoding (RFC 4251 section 5): big-endian integers and
 * length-prefixed strings, written into a strbuf and read through a
 * bounds-checked reader that never reads past `left`. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "util/strbuf.h"

static inline void ssh_put_u32(qvm_strbuf *sb, uint32_t v) {
  unsigned char b[4] = {v >> 24, v >> 16, v >> 8, v};
  qvm_strbuf_append(sb, b, 4);
}

static inline void ssh_put_u64(qvm_strbuf *sb, uint64_t v) {
  ssh_put_u32(sb, (uint32_t)(v >> 32));
  ssh_put_u32(sb, (uint32_t)v);
}

static inline void ssh_put_string(qvm_strbuf *sb, const void *data, size_t len) {
  ssh_put_u32(sb, (uint32_t)len);
  if (len) qvm_strbuf_append(sb, data, len);
}

static inline void ssh_put_cstring(qvm_strbuf *sb, const char *s) {
  ssh_put_string(sb, s, strlen(s));
}

typedef struct ssh_reader {
  const unsigned char *p;
  size_t left;
} ssh_reader;

static inline bool ssh_get_u32(ssh_reader *r, uint32_t *v) {
  if (r->left < 4) return false;
  *v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
  r->p += 4;
  r->left -= 4;
  return true;
}

static inline bool ssh_get_u64(ssh_reader *r, uint64_t *v) {
  uint32_t hi, lo;
  if (r->left < 8) return false;
  ssh_get_u32(r, &hi);
  ssh_get_u32(r, &lo);
  *v = (uint64_t)hi << 32 | lo;
  return true;
}

static inline bool ssh_get_string(ssh_reader *r, const unsigned char **s, size_t *len) {
  uint32_t n;
  if (r->left < 4) return false;
  ssh_reader save = *r;
  ssh_get_u32(r, &n);
  if (n > r->left) {
    *r = save;
    return false;
  }
  *s = r->p;
  *len = n;
  r->p += n;
  r->left -= n;
  return true;
}

static inline bool ssh_bytes_are(const unsigned char *s, size_t len, const char *want) {
  return len == strlen(want) && memcmp(s, want, len) == 0;
}

#endif
