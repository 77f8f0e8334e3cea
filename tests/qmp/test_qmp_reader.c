/* SPDX-License-Identifier: MIT */
/* The pure QMP framing layer: bytes in, messages out, in any chunking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "qmp/qmp_reader.h"

static const char transcript[] =
    "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "
    "\"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n"
    "{\"return\": {}, \"id\": \"qvm-1\"}\r\n"
    "\r\n"
    "   \n"
    "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\n"
    "{\"return\": {\"status\": \"paused\", \"name\": \"caf\xc3\xa9 \xf0\x9f\x98\x80\"}, "
    "\"id\": \"qvm-2\"}\r\n";

static qmp_reader *reader_new(size_t max_message, size_t max_depth) {
  qmp_reader *r = NULL;
  assert_int_equal(qmp_reader_new(&r, max_message, max_depth, NULL), 0);
  return r;
}

/* Feeds `len` bytes in chunks of `step` and collects the messages. */
static size_t feed_all(qmp_reader *r, const char *s, size_t len, size_t step,
                       struct json_object **msgs, size_t max) {
  size_t n = 0;
  for (size_t off = 0; off < len; off += step) {
    size_t chunk = len - off < step ? len - off : step;
    assert_int_equal(qmp_reader_feed(r, s + off, chunk, NULL), 0);
    struct json_object *obj = NULL;
    while (qmp_reader_next(&obj, r, NULL) == 1) {
      assert_true(n < max);
      msgs[n++] = obj;
    }
  }
  return n;
}

static void test_any_chunking(void **state) {
  (void)state;
  size_t steps[] = {1, 2, 3, 7, 64, sizeof(transcript)};
  for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
    qmp_reader *r = reader_new(4096, 16);
    struct json_object *msgs[8];
    size_t n = feed_all(r, transcript, strlen(transcript), steps[i], msgs, 8);
    assert_int_equal(n, 4);
    assert_true(json_object_object_get_ex(msgs[0], "QMP", NULL));
    assert_string_equal(json_object_get_string(json_object_object_get(msgs[2], "event")), "STOP");
    struct json_object *ret = json_object_object_get(msgs[3], "return");
    assert_string_equal(json_object_get_string(json_object_object_get(ret, "name")),
                        "caf\xc3\xa9 \xf0\x9f\x98\x80");
    for (size_t k = 0; k < n; k++) json_object_put(msgs[k]);
    assert_int_equal(qmp_reader_finish(r, NULL), 0);
    qmp_reader_free(r);
  }
}

#define LINE(s) s, sizeof(s) - 1

/* Each case is one line that must be refused with a message holding `what`. */
static void test_malformed_lines(void **state) {
  (void)state;
  struct {
    const char *line;
    size_t len;
    const char *what;
  } cases[] = {
      {LINE("{]\n"), "not valid json"},
      {LINE("{\xff\n"), "utf-8"},
      {LINE("{\"a\": \"\xc0\xaf\"}\n"), "utf-8"},         /* overlong '/' */
      {LINE("{\"a\": \"\xed\xa0\x80\"}\n"), "utf-8"},     /* surrogate */
      {LINE("{\"a\": \"\xf4\x90\x80\x80\"}\n"), "utf-8"}, /* past U+10FFFF */
      {LINE("{\"a\": \"\xe2\x82\"}\n"), "utf-8"},         /* truncated */
      {LINE("{\"a\": 1}{\"b\": 2}\n"), "not valid json"}, /* one object per line */
      {LINE("{\"a\": 1} x\n"), "not valid json"},
      {LINE("[1, 2]\n"), "not a json object"},
      {LINE("\"str\"\n"), "not a json object"},
      {LINE("{\"a\": [1, 2\n"), "ends in the middle"},
      {LINE("{\"a\"\0: 1}\n"), "control byte 0x00"},
      {LINE("{\"a\": \"x\x01\"}\n"), "control byte 0x01"},
      {LINE("{\"a\": 1,}\n"), "not valid json"},
      {LINE("{\"a\": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}\n"), "deeper than 16"},
      {LINE("hello\n"), "not valid json"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    qmp_reader *r = reader_new(4096, 16);
    qvm_error *err = NULL;
    assert_int_equal(qmp_reader_feed(r, cases[i].line, cases[i].len, NULL), 0);
    struct json_object *obj = NULL;
    int rc = qmp_reader_next(&obj, r, &err);
    if (rc != QVM_EPROTO)
      fail_msg("case %zu: accepted as %s", i, obj ? json_object_to_json_string(obj) : "nothing");
    assert_null(obj);
    if (!strstr(qvm_error_message(err), cases[i].what))
      fail_msg("case %zu: '%s' lacks '%s'", i, qvm_error_message(err), cases[i].what);
    qvm_error_free(err);
    err = NULL;
    /* Sticky: even a good line is refused afterwards. */
    assert_true(qmp_reader_broken(r));
    assert_int_equal(qmp_reader_feed(r, "{}\n", 3, &err), QVM_EPROTO);
    assert_non_null(strstr(qvm_error_message(err), "unusable after an earlier error"));
    qvm_error_free(err);
    qmp_reader_free(r);
  }
}

static void test_size_cap(void **state) {
  (void)state;
  /* Exactly the cap is fine, with or without "\r". */
  qmp_reader *r = reader_new(10, 8);
  struct json_object *obj = NULL;
  assert_int_equal(qmp_reader_feed(r, "{\"a\":1234}\r\n{\"a\":1234}\n", 23, NULL), 0);
  assert_int_equal(qmp_reader_next(&obj, r, NULL), 1);
  json_object_put(obj);
  assert_int_equal(qmp_reader_next(&obj, r, NULL), 1);
  json_object_put(obj);
  assert_int_equal(qmp_reader_next(&obj, r, NULL), 0);
  /* One byte more is refused as soon as it arrives, before any newline. */
  qvm_error *err = NULL;
  assert_int_equal(qmp_reader_feed(r, "{\"a\":12345", 10, NULL), 0);
  assert_int_equal(qmp_reader_feed(r, "6", 1, NULL), 0); /* may still be "\r" */
  assert_int_equal(qmp_reader_feed(r, "7", 1, &err), QVM_EPROTO);
  assert_non_null(strstr(qvm_error_message(err), "exceeds the 10-byte limit"));
  qvm_error_free(err);
  qmp_reader_free(r);

  /* An 11-byte line that ends in a newline is refused when taken. */
  r = reader_new(10, 8);
  err = NULL;
  assert_int_equal(qmp_reader_feed(r, "{\"a\":12345}\n", 12, NULL), 0);
  assert_int_equal(qmp_reader_next(&obj, r, &err), QVM_EPROTO);
  assert_non_null(strstr(qvm_error_message(err), "exceeds the 10-byte limit"));
  qvm_error_free(err);
  qmp_reader_free(r);
}

static void test_huge_line_bounded(void **state) {
  (void)state;
  /* 64 MiB of '[' with no newline against a 1 MiB cap: refused after about
   * 1 MiB has been fed, and the reader never holds more than that. */
  qmp_reader *r = reader_new(1u << 20, 64);
  static char chunk[65536];
  memset(chunk, '[', sizeof(chunk));
  size_t fed = 0;
  int rc = 0;
  while (fed < (64u << 20) && rc == 0) {
    rc = qmp_reader_feed(r, chunk, sizeof(chunk), NULL);
    if (rc == 0) fed += sizeof(chunk);
  }
  assert_int_equal(rc, QVM_EPROTO);
  assert_true(fed <= (1u << 20) + 1);
  assert_int_equal(qmp_reader_partial_len(r), 0); /* buffer released */
  qmp_reader_free(r);
}

static void test_deep_nesting(void **state) {
  (void)state;
  size_t n = 10000;
  char *deep = malloc(2 * n + 32);
  size_t len = (size_t)sprintf(deep, "{\"a\": ");
  memset(deep + len, '[', n);
  len += n;
  memset(deep + len, ']', n);
  len += n;
  len += (size_t)sprintf(deep + len, "}\n");
  qmp_reader *r = reader_new(1u << 20, 64);
  qvm_error *err = NULL;
  assert_int_equal(qmp_reader_feed(r, deep, len, NULL), 0);
  struct json_object *obj = NULL;
  assert_int_equal(qmp_reader_next(&obj, r, &err), QVM_EPROTO);
  assert_non_null(strstr(qvm_error_message(err), "nests deeper than 64 levels"));
  qvm_error_free(err);
  qmp_reader_free(r);
  free(deep);
}

static void test_eof(void **state) {
  (void)state;
  qmp_reader *r = reader_new(4096, 8);
  qvm_error *err = NULL;
  assert_int_equal(qmp_reader_feed(r, "{}\r\n\r", 5, NULL), 0);
  struct json_object *obj = NULL;
  assert_int_equal(qmp_reader_next(&obj, r, NULL), 1);
  json_object_put(obj);
  assert_int_equal(qmp_reader_finish(r, NULL), 0); /* a lone "\r" is not a message */
  assert_int_equal(qmp_reader_feed(r, "{\"return\": {\"st", 15, NULL), 0);
  assert_int_equal(qmp_reader_finish(r, &err), QVM_EPROTO);
  assert_non_null(strstr(qvm_error_message(err), "closed in the middle of a message"));
  qvm_error_free(err);
  qmp_reader_free(r);
}

static void test_utf8_check(void **state) {
  (void)state;
  const unsigned char ok[] = "a\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f"
                             "\xbf\xbf";
  assert_int_equal(qmp_utf8_check(ok, sizeof(ok) - 1), sizeof(ok) - 1);
  assert_int_equal(qmp_utf8_check((const unsigned char *)"ab\x80", 3), 2);
  assert_int_equal(qmp_utf8_check((const unsigned char *)"\xc1\xbf", 2), 0);
  assert_int_equal(qmp_utf8_check((const unsigned char *)"\xe0\x9f\xbf", 3), 0);
  assert_int_equal(qmp_utf8_check((const unsigned char *)"x\xf0\x90\x80", 4), 1);
  assert_int_equal(qmp_utf8_check((const unsigned char *)"\xf5\x80\x80\x80", 4), 0);
}

static void test_invalid_limits(void **state) {
  (void)state;
  qmp_reader *r = NULL;
  qvm_error *err = NULL;
  assert_int_equal(qmp_reader_new(&r, 0, 8, &err), QVM_EINVAL);
  qvm_error_free(err);
  assert_int_equal(qmp_reader_new(&r, 16, 0, NULL), QVM_EINVAL);
  assert_null(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_any_chunking), cmocka_unit_test(test_malformed_lines),
      cmocka_unit_test(test_size_cap),     cmocka_unit_test(test_huge_line_bounded),
      cmocka_unit_test(test_deep_nesting), cmocka_unit_test(test_eof),
      cmocka_unit_test(test_utf8_check),   cmocka_unit_test(test_invalid_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
