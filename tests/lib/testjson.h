/* SPDX-License-Identifier: MIT */
#ifndef QVM_TESTJSON_H
#define QVM_TESTJSON_H

/* Lenient readers for the JSON that `qvm ... --json` prints, for tests: a
 * missing member (or a NULL object) reads as "" or -1, so an assertion on
 * it fails with a useful value instead of crashing the test. */
#include <json-c/json.h>

static inline const char *qvm_test_jstr(struct json_object *o, const char *key) {
  struct json_object *v = NULL;
  if (!o || !json_object_object_get_ex(o, key, &v) || !v) return "";
  return json_object_get_string(v);
}

static inline int qvm_test_jint(struct json_object *o, const char *key) {
  struct json_object *v = NULL;
  if (!o || !json_object_object_get_ex(o, key, &v) || !v) return -1;
  return json_object_get_int(v);
}

#endif
