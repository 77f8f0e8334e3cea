/* SPDX-License-Identifier: MIT */
/* Request bodies (strict JSON objects, members checked by name) and the
 * JSON that goes out: libqvm's snake_case made camelCase, guest bytes made
 * safe strings. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include <qvm/text.h>

#include "mcp.h"
#include "qvmd.h"

#define BODY_DEPTH_MAX 16

json_object *qvmd_body_object(qvmd_reply *out, const qvmd_request *req) {
  if (req->body_len == 0) {
    qvmd_problem(out, 400, "BadJson", "the request needs a JSON object body");
    return NULL;
  }
  if (!qvm_text_utf8_valid(req->body, req->body_len)) {
    qvmd_problem(out, 400, "BadJson", "the body is not valid UTF-8");
    return NULL;
  }
  json_tokener *tok = json_tokener_new_ex(BODY_DEPTH_MAX);
  if (!tok) {
    qvmd_problem(out, 500, "ESYS", "out of memory");
    return NULL;
  }
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
  json_object *o = json_tokener_parse_ex(tok, req->body, (int)req->body_len);
  enum json_tokener_error jerr = json_tokener_get_error(tok);
  size_t used = json_tokener_get_parse_end(tok);
  json_tokener_free(tok);
  if (!o || jerr != json_tokener_success) {
    json_object_put(o);
    qvmd_problem(out, 400, "BadJson", "the body is not valid JSON: %s",
                 jerr == json_tokener_success ? "incomplete" : json_tokener_error_desc(jerr));
    return NULL;
  }
  while (used < req->body_len && isspace((unsigned char)req->body[used])) used++;
  if (used != req->body_len) {
    json_object_put(o);
    qvmd_problem(out, 400, "BadJson", "the body has data after its JSON value");
    return NULL;
  }
  if (!json_object_is_type(o, json_type_object)) {
    json_object_put(o);
    qvmd_problem(out, 400, "BadJson", "the body must be a JSON object");
    return NULL;
  }
  return o;
}

bool qvmd_body_known(qvmd_reply *out, json_object *body, const char *const *known) {
  json_object_object_foreach(body, key, val) {
    (void)val;
    bool ok = false;
    for (const char *const *k = known; *k && !ok; k++) ok = !strcmp(*k, key);
    if (!ok) {
      char shown[64];
      qvm_text_for_terminal_into(shown, sizeof shown, key, strlen(key), 0);
      qvmd_problem_field(out, shown, "unknown member '%s'", shown);
      return false;
    }
  }
  return true;
}

bool qvmd_body_string(qvmd_reply *out, json_object *body, const char *key, size_t max,
                      const char **value) {
  json_object *v = NULL;
  *value = NULL;
  if (!json_object_object_get_ex(body, key, &v) || json_object_is_type(v, json_type_null))
    return true;
  if (!json_object_is_type(v, json_type_string)) {
    qvmd_problem_field(out, key, "'%s' must be a string", key);
    return false;
  }
  size_t len = (size_t)json_object_get_string_len(v);
  const char *s = json_object_get_string(v);
  if (len == 0 || len > max || strlen(s) != len) {
    qvmd_problem_field(out, key, "'%s' must be 1 to %zu bytes without NUL", key, max);
    return false;
  }
  *value = s;
  return true;
}

bool qvmd_body_int(qvmd_reply *out, json_object *body, const char *key, int64_t min, int64_t max,
                   bool *present, int64_t *value) {
  json_object *v = NULL;
  *present = false;
  if (!json_object_object_get_ex(body, key, &v) || json_object_is_type(v, json_type_null))
    return true;
  errno = 0;
  int64_t n = json_object_get_int64(v);
  if (!json_object_is_type(v, json_type_int) || errno || n < min || n > max) {
    qvmd_problem_field(out, key, "'%s' must be an integer from %lld to %lld", key, (long long)min,
                       (long long)max);
    return false;
  }
  *present = true;
  *value = n;
  return true;
}

bool qvmd_body_bool(qvmd_reply *out, json_object *body, const char *key, bool *value) {
  json_object *v = NULL;
  if (!json_object_object_get_ex(body, key, &v) || json_object_is_type(v, json_type_null))
    return true;
  if (!json_object_is_type(v, json_type_boolean)) {
    qvmd_problem_field(out, key, "'%s' must be true or false", key);
    return false;
  }
  *value = json_object_get_boolean(v);
  return true;
}

/* The same conversions as the MCP tools' (tools/mcp/mcp_json.c). */
json_object *qvmd_json_from_lib(const char *text) { return mcp_json_from_lib(text); }

void qvmd_json_add_guest_bytes(json_object *obj, const char *key, const void *bytes, size_t len) {
  mcp_json_add_guest_bytes(obj, key, bytes, len);
}

const char *qvmd_query(const qvmd_request *req, const char *key) {
  return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

bool qvmd_body_labels(qvmd_reply *out, json_object *body, qvm_vm_label *labels, size_t *n) {
  json_object *v = NULL;
  *n = 0;
  if (!json_object_object_get_ex(body, "labels", &v) || json_object_is_type(v, json_type_null))
    return true;
  if (!json_object_is_type(v, json_type_object) ||
      json_object_object_length(v) > QVM_VM_LABELS_MAX) {
    qvmd_problem_field(out, "labels", "'labels' must be an object of at most %d strings",
                       QVM_VM_LABELS_MAX);
    return false;
  }
  json_object_object_foreach(v, key, val) {
    qvm_error *err = NULL;
    if (!json_object_is_type(val, json_type_string) ||
        strlen(json_object_get_string(val)) != (size_t)json_object_get_string_len(val)) {
      qvmd_problem_field(out, "labels", "every label value must be a string without NUL");
      return false;
    }
    if (qvm_vm_label_check(key, json_object_get_string(val), &err) < 0) {
      qvmd_problem_qvm(out, err, "labels");
      return false;
    }
    labels[(*n)++] = (qvm_vm_label){key, json_object_get_string(val)};
  }
  return true;
}
