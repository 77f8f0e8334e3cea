/* SPDX-License-Identifier: MIT */
#include <qvm/text.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/strbuf.h"

/* Length of the valid UTF-8 sequence at p (1..4), its code point in *cp, or
 * 0 when the bytes are not valid UTF-8 (overlong, surrogate, > U+10FFFF,
 * truncated). */
static size_t utf8_decode(const unsigned char *p, size_t left, uint32_t *cp) {
  unsigned char c = p[0];
  size_t n;
  uint32_t v, min;
  if (c < 0x80) {
    *cp = c;
    return 1;
  } else if (c >= 0xc2 && c <= 0xdf) {
    n = 2, v = c & 0x1f, min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3, v = c & 0x0f, min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4, v = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (left < n) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    v = (v << 6) | (p[i] & 0x3f);
  }
  if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
  *cp = v;
  return n;
}

/* Code points a terminal acts on, or that change how the text around them is
 * shown, and that guest text never needs. U+FEFF (BOM, zero width no-break
 * space) is deprecated inside text (U+2060 took its place) and invisible: it
 * is shown, so that two names that look the same are not different bytes
 * unseen. Joiners (U+200C, U+200D) stay: scripts and emoji need them. */
static bool unsafe_code_point(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f) ||     /* C1 controls, CSI = U+009B */
         cp == 0x061c ||                   /* arabic letter mark */
         cp == 0x200e || cp == 0x200f ||   /* left-to-right, right-to-left marks */
         (cp >= 0x202a && cp <= 0x202e) || /* bidi embeddings and overrides */
         (cp >= 0x2066 && cp <= 0x2069) || /* bidi isolates */
         cp == 0x2028 || cp == 0x2029 ||   /* line/paragraph separators */
         cp == 0xfeff;                     /* BOM, zero width no-break space */
}

char *qvm_text_for_terminal(const void *bytes, size_t len, unsigned flags) {
  const unsigned char *p = bytes;
  qvm_strbuf sb = QVM_STRBUF_INIT;
  qvm_strbuf_append(&sb, "", 0);
  for (size_t i = 0; i < len;) {
    unsigned char c = p[i];
    uint32_t cp = 0;
    size_t n;
    if (c == '\n' && (flags & QVM_TEXT_KEEP_NEWLINE)) {
      qvm_strbuf_putc(&sb, '\n');
      n = 1;
    } else if (c == '\n') {
      qvm_strbuf_puts(&sb, "\\n");
      n = 1;
    } else if (c == '\r') {
      qvm_strbuf_puts(&sb, "\\r");
      n = 1;
    } else if (c == '\t' || (c >= 0x20 && c < 0x7f)) {
      qvm_strbuf_putc(&sb, (char)c);
      n = 1;
    } else if (c < 0x80 || (n = utf8_decode(p + i, len - i, &cp)) == 0) {
      qvm_strbuf_printf(&sb, "\\x%02x", c);
      n = 1;
    } else if (unsafe_code_point(cp)) {
      qvm_strbuf_printf(&sb, "\\u{%04x}", (unsigned)cp);
    } else {
      qvm_strbuf_append(&sb, p + i, n);
    }
    i += n;
  }
  return qvm_strbuf_steal(&sb);
}

char *qvm_text_quote(const void *bytes, size_t len, const char *prefix) {
  _cleanup_free_ char *safe = qvm_text_for_terminal(bytes, len, QVM_TEXT_KEEP_NEWLINE);
  if (!safe) return NULL;
  size_t n = strlen(safe);
  const char *line = n ? safe : NULL;
  if (n && safe[n - 1] == '\n') safe[n - 1] = '\0'; /* ends the last line; not a line */
  qvm_strbuf sb = QVM_STRBUF_INIT;
  qvm_strbuf_append(&sb, "", 0);
  while (line) {
    const char *nl = strchr(line, '\n');
    qvm_strbuf_puts(&sb, prefix);
    qvm_strbuf_append(&sb, line, nl ? (size_t)(nl - line) : strlen(line));
    if (nl) qvm_strbuf_putc(&sb, '\n');
    line = nl ? nl + 1 : NULL;
  }
  return qvm_strbuf_steal(&sb);
}

void qvm_text_for_terminal_into(char *out, size_t size, const void *bytes, size_t len,
                                unsigned flags) {
  char *safe = qvm_text_for_terminal(bytes, len, flags);
  size_t n = safe ? strlen(safe) : 0;
  if (n >= size) {
    n = size - 1;
    while (n > 0 && ((unsigned char)safe[n] & 0xc0) == 0x80) n--;
  }
  memcpy(out, safe ? safe : "", n);
  out[n] = '\0';
  free(safe);
}

size_t qvm_text_edit_distance(const char *a, size_t la, const char *b) {
  size_t lb = strlen(b), row[65];
  if (la > 64 || lb > 64) return SIZE_MAX;
  for (size_t j = 0; j <= lb; j++) row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      diag = up;
      row[j] = best;
    }
  }
  return row[lb];
}

bool qvm_text_utf8_valid(const void *bytes, size_t len) {
  const unsigned char *s = bytes;
  size_t i = 0;
  while (i < len) {
    unsigned char c = s[i];
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (len - i <= n) return false;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
}
