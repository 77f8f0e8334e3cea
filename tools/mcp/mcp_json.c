/* SPDX-License-Identifier: MIT */
/* JSON out of libqvm and out of guests, for the MCP tools and for qvmd's
 * REST replies alike: libqvm's snake_case made camelCase, a guest's bytes
 * made safe JSON strings. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qvm/error.h>
#include <qvm/ssh.h>
#include <qvm/text.h>

#include "mcp.h"

json_object *mcp_json_text(const char *bytes, size_t len) {
  if (qvm_text_utf8_valid(bytes, len)) return json_object_new_string_len(bytes, (int)len);
  char *safe = qvm_text_for_terminal(bytes, len, QVM_TEXT_KEEP_NEWLINE);
  json_object *s = json_object_new_string(safe ? safe : "");
  free(safe);
  return s;
}

static char *base64(const unsigned char *in, size_t len) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *out = malloc((len + 2) / 3 * 4 + 1), *p = out;
  if (!out) return NULL;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < len) v |= in[i + 2];
    *p++ = tab[(v >> 18) & 63];
    *p++ = tab[(v >> 12) & 63];
    *p++ = i + 1 < len ? tab[(v >> 6) & 63] : '=';
    *p++ = i + 2 < len ? tab[v & 63] : '=';
  }
  *p = '\0';
  return out;
}

/* Guest bytes as obj[key] (text), plus obj[key + "Base64"] when they are not
 * UTF-8 (the exact bytes). */
void mcp_json_add_guest_bytes(json_object *obj, const char *key, const void *data, size_t len) {
  const char *bytes = data;
  json_object_object_add(obj, key, mcp_json_text(bytes, len));
  if (qvm_text_utf8_valid(bytes, len)) return;
  char *b64 = base64((const unsigned char *)bytes, len), k[64];
  snprintf(k, sizeof k, "%sBase64", key);
  if (b64) json_object_object_add(obj, k, json_object_new_string(b64));
  free(b64);
}

static json_object *camel_copy(json_object *o);

static void camel_key(char *dst, size_t size, const char *src) {
  size_t n = 0;
  bool up = false;
  for (; *src && n + 1 < size; src++) {
    if (*src == '_' && n > 0) {
      up = true;
      continue;
    }
    dst[n++] = up && *src >= 'a' && *src <= 'z' ? (char)(*src - 'a' + 'A') : *src;
    up = false;
  }
  dst[n] = '\0';
}

/* libqvm's snake_case JSON as camelCase (labels kept as they are). */
static json_object *camel_copy(json_object *o) {
  switch (json_object_get_type(o)) {
  case json_type_object: {
    json_object *r = json_object_new_object();
    json_object_object_foreach(o, key, val) {
      char k[128];
      camel_key(k, sizeof k, key);
      json_object_object_add(r, k, strcmp(key, "labels") ? camel_copy(val) : json_object_get(val));
    }
    return r;
  }
  case json_type_array: {
    size_t n = json_object_array_length(o);
    json_object *r = json_object_new_array_ext((int)n);
    for (size_t i = 0; i < n; i++)
      json_object_array_add(r, camel_copy(json_object_array_get_idx(o, i)));
    return r;
  }
  default: return json_object_get(o);
  }
}

json_object *mcp_json_from_lib(const char *text) {
  json_object *o = text ? json_tokener_parse(text) : NULL;
  if (!o) return NULL;
  json_object *r = camel_copy(o);
  json_object_put(o);
  return r;
}

int mcp_capture_add(mcp_capture *c, const void *data, size_t len) {
  size_t room = MCP_OUTPUT_MAX - c->len;
  size_t take = len < room ? len : room;
  if (take < len) c->truncated = true;
  if (take == 0) return 0;
  if (!c->data && !(c->data = malloc(MCP_OUTPUT_MAX))) return QVM_ESYS;
  memcpy(c->data + c->len, data, take);
  c->len += take;
  return 0;
}

void mcp_json_exit_status(json_object *r, const qvm_ssh_exec_result *res) {
  json_object_object_add(r, "exitCode", res->signaled ? NULL : json_object_new_int(res->exit_code));
  if (res->signaled) {
    char sig[sizeof res->signal];
    qvm_text_for_terminal_into(sig, sizeof sig, res->signal,
                               strnlen(res->signal, sizeof res->signal), 0);
    json_object_object_add(r, "signal", json_object_new_string(sig));
  } else {
    json_object_object_add(r, "signal", NULL);
  }
}

void mcp_json_exec_result(json_object *r, const qvm_ssh_exec_result *res, const mcp_capture *out,
                          const mcp_capture *err, const char *ckpt) {
  mcp_json_exit_status(r, res);
  mcp_json_add_guest_bytes(r, "stdout", out->data ? out->data : "", out->len);
  mcp_json_add_guest_bytes(r, "stderr", err->data ? err->data : "", err->len);
  json_object_object_add(r, "stdoutTruncated", json_object_new_boolean(out->truncated));
  json_object_object_add(r, "stderrTruncated", json_object_new_boolean(err->truncated));
  json_object_object_add(r, "durationMs", json_object_new_int64(res->duration_ms));
  json_object_object_add(r, "checkpoint", ckpt[0] ? json_object_new_string(ckpt) : NULL);
}
