/* SPDX-License-Identifier: MIT */
#include "util/error.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qvm/text.h>

struct qvm_error {
  int code;
  int errnum;
  char *message;
  char *cls;
  char *subject;
};

/* Used when even the error cannot be allocated: the caller still sees a code. */
static struct qvm_error oom_error = {QVM_ESYS, 12, (char *)"out of memory", NULL, NULL};

static qvm_error *error_new(int code, int errnum, char *message) {
  qvm_error *e = calloc(1, sizeof(*e));
  if (!e || !message) {
    free(e);
    free(message);
    return &oom_error;
  }
  e->code = code;
  e->errnum = errnum;
  e->message = message;
  return e;
}

static int error_setv(qvm_error **err, int code, int errnum, const char *fmt, va_list ap) {
  assert(code < 0);
  if (!err) return code;
  assert(*err == NULL && "error set twice");
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
  if (msg && errnum) {
    char *full = NULL;
    if (asprintf(&full, "%s: %s", msg, strerror(errnum)) < 0) full = NULL;
    free(msg);
    msg = full;
  }
  *err = error_new(code, errnum, msg);
  return code;
}

int qvm_error_set(qvm_error **err, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int r = error_setv(err, code, 0, fmt, ap);
  va_end(ap);
  return r;
}

int qvm_error_set_errno(qvm_error **err, int errnum, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int code = errnum == EACCES || errnum == EPERM ? QVM_EPERM : QVM_ESYS;
  int r = error_setv(err, code, errnum, fmt, ap);
  va_end(ap);
  return r;
}

int qvm_error_set_code_errno(qvm_error **err, int code, int errnum, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int r = error_setv(err, code, errnum, fmt, ap);
  va_end(ap);
  return r;
}

void qvm_error_set_class(qvm_error *err, const char *cls) {
  if (!err || err == &oom_error) return;
  free(err->cls);
  err->cls = cls ? strdup(cls) : NULL;
}

void qvm_error_set_subject(qvm_error *err, const char *subject) {
  if (!err || err == &oom_error) return;
  free(err->subject);
  err->subject = subject ? strdup(subject) : NULL;
}

int qvm_error_set_hint(qvm_error **err, int code, const char *cls, const char *subject) {
  if (err && *err) {
    qvm_error_set_class(*err, cls);
    qvm_error_set_subject(*err, subject);
  }
  return code;
}

int qvm_error_prefix(qvm_error **err, const char *fmt, ...) {
  if (!err || !*err) return 0;
  qvm_error *e = *err;
  if (e == &oom_error) return e->code;
  char *prefix = NULL, *full = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&prefix, fmt, ap) < 0) prefix = NULL;
  va_end(ap);
  if (prefix && asprintf(&full, "%s: %s", prefix, e->message) >= 0) {
    free(e->message);
    e->message = full;
  }
  free(prefix);
  return e->code;
}

int qvm_error_suffix(qvm_error **err, const char *fmt, ...) {
  if (!err || !*err) return 0;
  qvm_error *e = *err;
  if (e == &oom_error) return e->code;
  char *suffix = NULL, *full = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&suffix, fmt, ap) < 0) suffix = NULL;
  va_end(ap);
  if (suffix && asprintf(&full, "%s%s", e->message, suffix) >= 0) {
    free(e->message);
    e->message = full;
  }
  free(suffix);
  return e->code;
}

void qvm_error_neutralize(qvm_error *e) {
  if (!e || e == &oom_error || !e->message) return;
  char *safe = qvm_text_for_terminal(e->message, strlen(e->message), QVM_TEXT_KEEP_NEWLINE);
  if (!safe) return;
  free(e->message);
  e->message = safe;
}

int qvm_error_propagate(qvm_error **dst, qvm_error *src) {
  assert(src);
  int code = src->code;
  if (dst) {
    assert(*dst == NULL);
    *dst = src;
  } else {
    qvm_error_free(src);
  }
  return code;
}

int qvm_error_code(const qvm_error *err) { return err ? err->code : 0; }
int qvm_error_errno(const qvm_error *err) { return err ? err->errnum : 0; }
const char *qvm_error_message(const qvm_error *err) { return err ? err->message : ""; }
const char *qvm_error_class(const qvm_error *err) { return err ? err->cls : NULL; }
const char *qvm_error_subject(const qvm_error *err) { return err ? err->subject : NULL; }

const char *qvm_error_code_name(int code) {
  switch (code) {
  case QVM_OK: return "OK";
  case QVM_EINVAL: return "EINVAL";
  case QVM_ENOTFOUND: return "ENOTFOUND";
  case QVM_EEXISTS: return "EEXISTS";
  case QVM_ETIMEOUT: return "ETIMEOUT";
  case QVM_EBUSY: return "EBUSY";
  case QVM_EQMP: return "EQMP";
  case QVM_ESYS: return "ESYS";
  case QVM_EPROTO: return "EPROTO";
  case QVM_EAUTH: return "EAUTH";
  case QVM_EUNAVAIL: return "EUNAVAIL";
  case QVM_EGUEST: return "EGUEST";
  case QVM_EPERM: return "EPERM";
  case QVM_ECONFLICT: return "ECONFLICT";
  default: return "EUNKNOWN";
  }
}

void qvm_error_free(qvm_error *err) {
  if (!err || err == &oom_error) return;
  free(err->message);
  free(err->cls);
  free(err->subject);
  free(err);
}

int qvm_options_check(unsigned version, unsigned known, const char *type, qvm_error **err) {
  if (version == known) return 0;
  return qvm_error_set(err, QVM_EINVAL,
                       "%s: unknown version %u (this libqvm knows %u; start from its _INIT macro)",
                       type, version, known);
}
