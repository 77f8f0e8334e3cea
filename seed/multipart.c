/* SPDX-License-Identifier: MIT */
/*
 * Multipart user-data (qvm_seed_render_multipart): the one writer of the
 * MIME documents qvm gives cloud-init, for its own seed (cloud_config.c),
 * a VM's several cloud-config parts (vm/access_seed.c) and a key added to a
 * written seed (keys.c).
 *
 * cloud-init parses a MIME user-data as a str (email.message_from_string)
 * and decodes each part's payload again; text that is not ASCII in an
 * "8bit" part comes out mangled (an e-acute as a lone surrogate, a check
 * mark as the six characters "\u2713"). A body that is not all ASCII
 * therefore goes base64, and an ASCII one stays readable as 8bit.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "seed/seed_internal.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/strbuf.h"
#include <qvm/seed.h>

#define MERGE_TYPE "list(append)+dict(no_replace,recurse_list)+str()"

static bool all_ascii(const unsigned char *p, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (p[i] >= 0x80 || p[i] == 0) return false;
  return true;
}

static void put_base64(qvm_strbuf *sb, const char *b64) {
  for (size_t n = strlen(b64), i = 0; i < n; i += 76) {
    qvm_strbuf_append(sb, b64 + i, n - i < 76 ? n - i : 76);
    qvm_strbuf_putc(sb, '\n');
  }
}

static int put_part(qvm_strbuf *sb, const char *boundary, const qvm_seed_part *p, qvm_error **err) {
  qvm_strbuf_printf(sb, "--%s\n", boundary);
  if (!p->content_type) { /* a whole MIME document, nested as it is */
    qvm_strbuf_append(sb, p->body, p->len);
  } else {
    bool ascii = all_ascii(p->body, p->len);
    qvm_strbuf_printf(sb, "Content-Type: %s; charset=\"utf-8\"\n", p->content_type);
    qvm_strbuf_printf(sb, "MIME-Version: 1.0\nContent-Transfer-Encoding: %s\n",
                      ascii ? "8bit" : "base64");
    if (p->filename) {
      qvm_strbuf_puts(sb, "Content-Disposition: attachment; filename=\"");
      for (const unsigned char *c = (const unsigned char *)p->filename; *c; c++)
        qvm_strbuf_putc(sb, (*c == '"' || *c == '\\' || *c < 0x20 || *c >= 0x7f) ? '_' : (char)*c);
      qvm_strbuf_puts(sb, "\"\n");
    }
    if (p->merge) qvm_strbuf_puts(sb, "Merge-Type: " MERGE_TYPE "\n");
    qvm_strbuf_putc(sb, '\n');
    if (ascii) {
      qvm_strbuf_append(sb, p->body, p->len);
    } else {
      _cleanup_free_ char *b64 = seed_base64(p->body, p->len);
      if (!b64) return qvm_error_set_errno(err, ENOMEM, "out of memory");
      put_base64(sb, b64);
      return 0;
    }
  }
  const char *b = p->body;
  if (!p->len || b[p->len - 1] != '\n') qvm_strbuf_putc(sb, '\n');
  return 0;
}

int qvm_seed_render_multipart(char **out, size_t *out_len, const char *boundary_prefix,
                              const qvm_seed_part *parts, size_t n_parts, qvm_error **err) {
  *out = NULL, *out_len = 0;
  if (!boundary_prefix || strlen(boundary_prefix) > 32 || !n_parts || !parts)
    return qvm_error_set(err, QVM_EINVAL, "a boundary prefix and at least one part are needed");
  for (const char *c = boundary_prefix; *c; c++)
    if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789-", *c))
      return qvm_error_set(err, QVM_EINVAL, "boundary prefix '%s' is not [a-z0-9-]",
                           boundary_prefix);
  char boundary[64];
  for (unsigned i = 0;; i++) {
    int blen = snprintf(boundary, sizeof boundary, "==%s-%u==", boundary_prefix, i);
    bool clash = false;
    for (size_t k = 0; k < n_parts && !clash; k++)
      clash = parts[k].body && memmem(parts[k].body, parts[k].len, boundary, (size_t)blen);
    if (!clash) break;
  }
  qvm_strbuf sb = QVM_STRBUF_INIT;
  qvm_strbuf_printf(&sb, "Content-Type: multipart/mixed; boundary=\"%s\"\n", boundary);
  qvm_strbuf_puts(&sb, "MIME-Version: 1.0\n\n");
  int r = 0;
  for (size_t i = 0; i < n_parts && r >= 0; i++) r = put_part(&sb, boundary, &parts[i], err);
  qvm_strbuf_printf(&sb, "--%s--\n", boundary);
  size_t len = sb.len;
  char *text = qvm_strbuf_steal(&sb);
  if (r < 0 || !text) {
    free(text);
    return r < 0 ? r : qvm_error_set_errno(err, ENOMEM, "out of memory");
  }
  *out = text, *out_len = len;
  return 0;
}
