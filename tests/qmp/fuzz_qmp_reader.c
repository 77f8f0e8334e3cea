/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the QMP framing layer. The first three bytes pick the limits and the
 * chunking; the rest is the stream. The stream is fed twice, once whole and
 * once in pseudo-random chunks, and both runs must yield the same messages
 * and the same verdict: framing must not depend on how reads split the bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qmp/qmp_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct run_result {
  char *messages; /* every message serialized, '\n'-separated */
  size_t len;
  int verdict; /* 0 or the first error code */
} run_result;

static void append(run_result *res, const char *s) {
  size_t n = strlen(s);
  char *m = realloc(res->messages, res->len + n + 2);
  if (!m) abort();
  memcpy(m + res->len, s, n);
  m[res->len + n] = '\n';
  m[res->len + n + 1] = '\0';
  res->messages = m;
  res->len += n + 1;
}

static int drain(qmp_reader *r, size_t max_message, run_result *res) {
  for (;;) {
    struct json_object *obj = NULL;
    qvm_error *err = NULL;
    int rc = qmp_reader_next(&obj, r, &err);
    if (rc < 0) {
      if (qvm_error_code(err) != QVM_EPROTO || !qmp_reader_broken(r)) abort();
      qvm_error_free(err);
      return rc;
    }
    if (rc == 0) return 0;
    if (!json_object_is_type(obj, json_type_object)) abort();
    const char *s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
    /* Re-serializing can grow a message (escapes), but not beyond 6x. */
    if (strlen(s) > 6 * max_message + 16) abort();
    append(res, s);
    json_object_put(obj);
  }
}

static void run(const uint8_t *data, size_t size, size_t max_message, size_t max_depth,
                uint32_t seed, run_result *res) {
  qmp_reader *r = NULL;
  if (qmp_reader_new(&r, max_message, max_depth, NULL) < 0) abort();
  size_t off = 0;
  int rc = 0;
  while (off < size && rc == 0) {
    size_t chunk = size - off;
    if (seed) {
      seed = seed * 1103515245u + 12345u;
      size_t pick = (seed >> 16) % 67 + 1;
      if (pick < chunk) chunk = pick;
    }
    qvm_error *err = NULL;
    rc = qmp_reader_feed(r, data + off, chunk, &err);
    qvm_error_free(err);
    off += chunk;
    if (rc == 0) rc = drain(r, max_message, res);
  }
  if (rc == 0) {
    qvm_error *err = NULL;
    rc = qmp_reader_finish(r, &err);
    qvm_error_free(err);
  } else {
    /* Broken is sticky. */
    qvm_error *err = NULL;
    if (qmp_reader_feed(r, "{}\n", 3, &err) >= 0) abort();
    qvm_error_free(err);
  }
  res->verdict = rc;
  qmp_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  size_t max_depth = 2 + data[0] % 63;
  static const size_t caps[] = {16, 64, 256, 4096, 1u << 20};
  size_t max_message = caps[data[1] % 5];
  uint32_t seed = data[2] | 1u;
  data += 3;
  size -= 3;
  run_result whole = {0}, chunked = {0};
  run(data, size, max_message, max_depth, 0, &whole);
  run(data, size, max_message, max_depth, seed, &chunked);
  /* The whole-feed run may refuse an over-long line earlier (before a line
   * that a chunked run already parsed); otherwise both must agree. */
  if (whole.verdict == 0 && chunked.verdict == 0) {
    if (whole.len != chunked.len ||
        (whole.len && memcmp(whole.messages, chunked.messages, whole.len) != 0))
      abort();
  }
  if ((whole.verdict == 0) != (chunked.verdict == 0)) abort();
  free(whole.messages);
  free(chunked.messages);
  return 0;
}
