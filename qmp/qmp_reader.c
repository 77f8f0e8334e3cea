/* SPDX-License-Identifier: MIT */
#include "qmp/qmp_reader.h"

#include <assert.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"

struct qmp_reader {
  char *buf;    /* bytes received; buf[start..len) not yet taken */
  size_t start; /* first byte not yet taken */
  size_t len;
  size_t cap;
  size_t tail;  /* bytes after the last '\n' in the buffer */
  size_t lines; /* complete lines buffered in buf[start..len) */
  size_t max_message;
  int max_depth;
  struct json_tokener *tok;
  char *broken; /* message of the first error; NULL while usable */
};

int qmp_reader_new(qmp_reader **out, size_t max_message, size_t max_depth, qvm_error **err) {
  assert(out);
  if (max_message == 0 || max_message > QMP_READER_MAX_MESSAGE || max_depth == 0 ||
      max_depth > QMP_READER_MAX_DEPTH)
    return qvm_error_set(err, QVM_EINVAL, "qmp limits %zu bytes and depth %zu are invalid",
                         max_message, max_depth);
  qmp_reader *r = calloc(1, sizeof(*r));
  if (!r) return qvm_error_set_errno(err, ENOMEM, "cannot allocate the qmp reader");
  r->max_message = max_message;
  r->max_depth = (int)max_depth;
  r->tok = json_tokener_new_ex(r->max_depth);
  if (!r->tok) {
    free(r);
    return qvm_error_set_errno(err, ENOMEM, "cannot allocate the json tokener");
  }
  json_tokener_set_flags(r->tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
  *out = r;
  return 0;
}

void qmp_reader_free(qmp_reader *reader) {
  if (!reader) return;
  json_tokener_free(reader->tok);
  free(reader->buf);
  free(reader->broken);
  free(reader);
}

size_t qmp_reader_partial_len(const qmp_reader *reader) { return reader->tail; }
bool qmp_reader_has_line(const qmp_reader *reader) { return reader->lines > 0; }
bool qmp_reader_broken(const qmp_reader *reader) { return reader->broken != NULL; }

/* Records the first error so every later call repeats it, and releases the
 * buffer: a broken stream is never read again. */
QVM_PRINTF(3, 4) static int reader_fail(qmp_reader *r, qvm_error **err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
  va_end(ap);
  int code = qvm_error_set(err, QVM_EPROTO, "%s", msg ? msg : "qmp stream is invalid");
  free(r->broken);
  r->broken = msg ? msg : strdup("qmp stream is invalid");
  free(r->buf);
  r->buf = NULL;
  r->start = r->len = r->cap = r->tail = r->lines = 0;
  return code;
}

static int reader_check_usable(const qmp_reader *r, qvm_error **err) {
  if (!r->broken) return 0;
  return qvm_error_set(err, QVM_EPROTO, "qmp stream is unusable after an earlier error: %s",
                       r->broken);
}

/* Counts the lines in data and checks each against the limit before a byte
 * of it is stored. */
static int reader_scan(qmp_reader *r, const char *data, size_t len, size_t *out_lines,
                       size_t *out_tail, qvm_error **err) {
  size_t tail = r->tail, lines = 0, off = 0;
  while (off < len) {
    const char *nl = memchr(data + off, '\n', len - off);
    size_t seg = nl ? (size_t)(nl - (data + off)) : len - off;
    /* A trailing '\r' belongs to the line ending, not the message. */
    if (tail + seg > r->max_message + 1)
      return reader_fail(r, err, "qmp message exceeds the %zu-byte limit", r->max_message);
    if (!nl) {
      tail += seg;
      break;
    }
    lines++;
    tail = 0;
    off += seg + 1;
  }
  *out_lines = lines;
  *out_tail = tail;
  return 0;
}

static int reader_reserve(qmp_reader *r, size_t extra, qvm_error **err) {
  if (r->start > 0) {
    memmove(r->buf, r->buf + r->start, r->len - r->start);
    r->len -= r->start;
    r->start = 0;
  }
  if (extra > SIZE_MAX - r->len - 1)
    return reader_fail(r, err, "qmp input of %zu bytes is too large", extra);
  size_t need = r->len + extra + 1;
  if (need <= r->cap) return 0;
  size_t cap = r->cap ? r->cap : 4096;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  char *buf = realloc(r->buf, cap);
  if (!buf) return reader_fail(r, err, "cannot buffer %zu bytes of qmp input", need);
  r->buf = buf;
  r->cap = cap;
  return 0;
}

int qmp_reader_feed(qmp_reader *reader, const void *data, size_t len, qvm_error **err) {
  int r = reader_check_usable(reader, err);
  if (r < 0) return r;
  if (len == 0) return 0;
  size_t lines = 0, tail = 0;
  r = reader_scan(reader, data, len, &lines, &tail, err);
  if (r < 0) return r;
  r = reader_reserve(reader, len, err);
  if (r < 0) return r;
  memcpy(reader->buf + reader->len, data, len);
  reader->len += len;
  reader->buf[reader->len] = '\0';
  reader->lines += lines;
  reader->tail = tail;
  return 0;
}

size_t qmp_utf8_check(const unsigned char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf)
      n = 1, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
      n = 2, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
      n = 3, cp = c & 0x07, min = 0x10000;
    else
      return i;
    if (len - i <= n) return i;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n + 1;
  }
  return len;
}

static bool only_whitespace(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
  return true;
}

/* Raw control bytes are never valid JSON outside whitespace, and json-c
 * would stop at a NUL; refuse them before parsing. */
static int line_check_bytes(qmp_reader *r, const char *line, size_t len, qvm_error **err) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)line[i];
    if (c < 0x20 && c != '\t' && c != '\r')
      return reader_fail(r, err, "qmp message has control byte 0x%02x at offset %zu", c, i);
  }
  size_t bad = qmp_utf8_check((const unsigned char *)line, len);
  if (bad != len) return reader_fail(r, err, "qmp message is not valid utf-8 at offset %zu", bad);
  return 0;
}

static int line_parse(struct json_object **out, qmp_reader *r, const char *line, size_t len,
                      qvm_error **err) {
  if (len > INT_MAX) return reader_fail(r, err, "qmp message of %zu bytes is too large", len);
  int rc = line_check_bytes(r, line, len, err);
  if (rc < 0) return rc;
  json_tokener_reset(r->tok);
  struct json_object *obj = json_tokener_parse_ex(r->tok, line, (int)len);
  enum json_tokener_error jerr = json_tokener_get_error(r->tok);
  if (jerr == json_tokener_error_depth)
    return reader_fail(r, err, "qmp message nests deeper than %d levels", r->max_depth);
  if (jerr == json_tokener_continue)
    return reader_fail(r, err, "qmp message ends in the middle of a json value");
  if (jerr != json_tokener_success || !obj)
    return reader_fail(r, err, "qmp message is not valid json: %s", json_tokener_error_desc(jerr));
  size_t end = json_tokener_get_parse_end(r->tok);
  if (end < len && !only_whitespace(line + end, len - end)) {
    json_object_put(obj);
    return reader_fail(r, err, "qmp message has bytes after its json object at offset %zu", end);
  }
  if (!json_object_is_type(obj, json_type_object)) {
    json_object_put(obj);
    return reader_fail(r, err, "qmp message is not a json object");
  }
  *out = obj;
  return 1;
}

int qmp_reader_next(struct json_object **out, qmp_reader *reader, qvm_error **err) {
  assert(out);
  int r = reader_check_usable(reader, err);
  if (r < 0) return r;
  while (reader->lines > 0) {
    char *line = reader->buf + reader->start;
    char *nl = memchr(line, '\n', reader->len - reader->start);
    assert(nl);
    size_t len = (size_t)(nl - line);
    reader->start += len + 1;
    reader->lines--;
    if (len > 0 && line[len - 1] == '\r') len--;
    if (only_whitespace(line, len)) continue;
    if (len > reader->max_message)
      return reader_fail(reader, err, "qmp message exceeds the %zu-byte limit",
                         reader->max_message);
    return line_parse(out, reader, line, len, err);
  }
  return 0;
}

int qmp_reader_finish(qmp_reader *reader, qvm_error **err) {
  int r = reader_check_usable(reader, err);
  if (r < 0) return r;
  const char *tail = reader->buf ? reader->buf + reader->len - reader->tail : "";
  if (reader->lines > 0 || !only_whitespace(tail, reader->tail))
    return reader_fail(reader, err,
                       "qmp connection closed in the middle of a message (%zu bytes pending)",
                       reader->len - reader->start);
  return 0;
}
