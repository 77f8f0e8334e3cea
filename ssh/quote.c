/* SPDX-License-Identifier: MIT */
/* Pure text helpers: POSIX shell quoting and JSON string escaping. */
#include <string.h>

#include "ssh/ssh_internal.h"

void ssh_shell_quote(qvm_strbuf *sb, const char *s) {
  qvm_strbuf_putc(sb, '\'');
  for (; *s; s++) {
    if (*s == '\'')
      qvm_strbuf_puts(sb, "'\\''");
    else
      qvm_strbuf_putc(sb, *s);
  }
  qvm_strbuf_putc(sb, '\'');
}

static bool env_name_valid(const char *kv, size_t len) {
  if (len == 0 || (kv[0] >= '0' && kv[0] <= '9')) return false;
  for (size_t i = 0; i < len; i++) {
    char c = kv[i];
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
      return false;
  }
  return true;
}

int qvm_ssh_quote_command(char **out, const char *const *argv, const char *const *env,
                          qvm_error **err) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  if (!argv || !argv[0]) return qvm_error_set(err, QVM_EINVAL, "command is empty");
  for (size_t i = 0; env && env[i]; i++) {
    const char *eq = strchr(env[i], '=');
    if (!eq || !env_name_valid(env[i], (size_t)(eq - env[i]))) {
      qvm_strbuf_free(&sb);
      return qvm_error_set(err, QVM_EINVAL, "environment entry '%s' is not NAME=VALUE", env[i]);
    }
    qvm_strbuf_append(&sb, env[i], (size_t)(eq - env[i]) + 1);
    ssh_shell_quote(&sb, eq + 1);
    qvm_strbuf_putc(&sb, ' ');
  }
  for (size_t i = 0; argv[i]; i++) {
    if (i) qvm_strbuf_putc(&sb, ' ');
    ssh_shell_quote(&sb, argv[i]);
  }
  *out = qvm_strbuf_steal(&sb);
  return *out ? 0 : qvm_error_set(err, QVM_ESYS, "out of memory");
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *p) {
  size_t n = *p >= 0xf0 && *p <= 0xf4 ? 4 : *p >= 0xe0 ? 3 : *p >= 0xc2 && *p < 0xe0 ? 2 : 0;
  if (n == 0) return 0;
  for (size_t i = 1; i < n; i++)
    if ((p[i] & 0xc0) != 0x80) return 0;
  if (n == 3 && ((*p == 0xe0 && p[1] < 0xa0) || (*p == 0xed && p[1] >= 0xa0))) return 0;
  if (n == 4 && ((*p == 0xf0 && p[1] < 0x90) || (*p == 0xf4 && p[1] >= 0x90))) return 0;
  return n;
}

/* Bytes that are not UTF-8 become U+FFFD, so the line stays valid JSON. */
void ssh_json_string(qvm_strbuf *sb, const char *s) {
  qvm_strbuf_putc(sb, '"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"': qvm_strbuf_puts(sb, "\\\""); break;
    case '\\': qvm_strbuf_puts(sb, "\\\\"); break;
    case '\n': qvm_strbuf_puts(sb, "\\n"); break;
    case '\r': qvm_strbuf_puts(sb, "\\r"); break;
    case '\t': qvm_strbuf_puts(sb, "\\t"); break;
    default:
      if (*p < 0x20 || *p == 0x7f) {
        qvm_strbuf_printf(sb, "\\u%04x", *p);
      } else if (*p < 0x80) {
        qvm_strbuf_putc(sb, (char)*p);
      } else {
        size_t n = utf8_len(p);
        if (n == 0)
          qvm_strbuf_puts(sb, "\\ufffd");
        else
          qvm_strbuf_append(sb, p, n);
        if (n > 1) p += n - 1;
      }
    }
  }
  qvm_strbuf_putc(sb, '"');
}
