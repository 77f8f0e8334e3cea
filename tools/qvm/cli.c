/* SPDX-License-Identifier: MIT */
#include "cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <string.h>

int qvm_cli_exit_code(int code) {
  switch (code) {
  case QVM_OK: return QVM_EXIT_OK;
  case QVM_EINVAL: return QVM_EXIT_FAILURE;
  case QVM_ENOTFOUND: return QVM_EXIT_NOTFOUND;
  case QVM_EEXISTS: return QVM_EXIT_EXISTS;
  case QVM_ETIMEOUT: return QVM_EXIT_TIMEOUT;
  case QVM_EBUSY: return QVM_EXIT_BUSY;
  case QVM_EQMP: return QVM_EXIT_QEMU;
  case QVM_EAUTH: return QVM_EXIT_AUTH;
  default: return QVM_EXIT_FAILURE;
  }
}

int qvm_cli_fail(const char *verb, qvm_error *err, const char *hint) {
  int code = qvm_error_code(err);
  fprintf(stderr, "qvm %s: %s\n", verb, err ? qvm_error_message(err) : "failed");
  if (hint) fprintf(stderr, "hint: %s\n", hint);
  qvm_error_free(err);
  return qvm_cli_exit_code(code ? code : QVM_ESYS);
}

int qvm_cli_usage_error(const char *verb, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "qvm %s: ", verb);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\ntry 'qvm %s --help'\n", verb);
  va_end(ap);
  return QVM_EXIT_USAGE;
}

int qvm_cli_bad_option(const char *verb, int c, char *const *argv) {
  const char *arg = optind > 0 ? argv[optind - 1] : NULL;
  bool is_long = arg && !strncmp(arg, "--", 2) && arg[2];
  int len = is_long ? (int)strcspn(arg, "=") : 0;
  if (c == ':' && is_long)
    return qvm_cli_usage_error(verb, "option '%.*s' needs a value", len, arg);
  if (c == ':') return qvm_cli_usage_error(verb, "option '-%c' needs a value", optopt);
  if (optopt || !is_long) return qvm_cli_usage_error(verb, "unknown option '-%c'", optopt);
  return qvm_cli_usage_error(verb, "unknown option '%.*s'", len, arg);
}

void qvm_cli_json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"': fputs("\\\"", f); break;
    case '\\': fputs("\\\\", f); break;
    case '\n': fputs("\\n", f); break;
    case '\r': fputs("\\r", f); break;
    case '\t': fputs("\\t", f); break;
    default:
      if (*p < 0x20)
        fprintf(f, "\\u%04x", *p);
      else
        fputc(*p, f);
    }
  }
  fputc('"', f);
}
