/* SPDX-License-Identifier: MIT */
/* Replies, and errors as application/problem+json (RFC 9457):
 * {"type","title","status","detail","code"} plus "class" (libqvm's error
 * class) and "field" (422) when there is one. docs/qvmd.md has the table. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qvmd.h"

static const char *title_for(unsigned status) {
  switch (status) {
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 413: return "Content Too Large";
  case 415: return "Unsupported Media Type";
  case 422: return "Unprocessable Content";
  case 429: return "Too Many Requests";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return "Error";
  }
}

void qvmd_reply_json(qvmd_reply *out, unsigned status, json_object *body) {
  const char *text =
      json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  free(out->body);
  out->body = strdup(text ? text : "null");
  out->status = status;
  out->content_type = "application/json";
  json_object_put(body);
}

void qvmd_reply_empty(qvmd_reply *out, unsigned status) {
  free(out->body);
  out->body = strdup("");
  out->status = status;
  out->content_type = NULL;
}

static void problem(qvmd_reply *out, unsigned status, const char *code, const char *cls,
                    const char *field, const char *detail) {
  json_object *o = json_object_new_object();
  char type[96];
  snprintf(type, sizeof type, "urn:qvm:problem:%s", code);
  json_object_object_add(o, "type", json_object_new_string(type));
  json_object_object_add(o, "title", json_object_new_string(title_for(status)));
  json_object_object_add(o, "status", json_object_new_int((int)status));
  json_object_object_add(o, "detail", json_object_new_string(detail));
  json_object_object_add(o, "code", json_object_new_string(code));
  if (cls) json_object_object_add(o, "class", json_object_new_string(cls));
  if (field) json_object_object_add(o, "field", json_object_new_string(field));
  qvmd_reply_json(out, status, o);
  out->content_type = "application/problem+json";
}

void qvmd_problem(qvmd_reply *out, unsigned status, const char *code, const char *fmt, ...) {
  char detail[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  problem(out, status, code, NULL, NULL, detail);
}

void qvmd_problem_field(qvmd_reply *out, const char *field, const char *fmt, ...) {
  char detail[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  problem(out, 422, "Validation", NULL, field, detail);
}

void qvmd_problem_not_found(qvmd_reply *out, const char *what, const char *name) {
  char detail[256];
  snprintf(detail, sizeof detail, "%s '%s' not found", what, name);
  problem(out, 404, "ENOTFOUND", NULL, NULL, detail);
}

unsigned qvmd_status_for_code(int code) {
  switch (code) {
  case QVM_EINVAL: return 422;
  case QVM_ENOTFOUND: return 404;
  case QVM_EPERM: return 403; /* the system or a rule refused (a self-approval) */
  case QVM_EEXISTS:
  case QVM_EBUSY:
  case QVM_ECONFLICT: return 409;
  case QVM_ETIMEOUT: return 504;
  case QVM_EUNAVAIL: return 503;
  case QVM_EQMP:
  case QVM_EPROTO:
  case QVM_EAUTH:
  case QVM_EGUEST: return 502;
  default: return 500;
  }
}

void qvmd_problem_qvm(qvmd_reply *out, qvm_error *err, const char *field) {
  int code = err ? qvm_error_code(err) : QVM_ESYS;
  unsigned status = qvmd_status_for_code(code);
  problem(out, status, qvm_error_code_name(code), err ? qvm_error_class(err) : NULL,
          status == 422 ? field : NULL, err ? qvm_error_message(err) : "failed");
  qvm_error_free(err);
}
