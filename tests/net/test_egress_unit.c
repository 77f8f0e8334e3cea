/* SPDX-License-Identifier: MIT */
/* qvm_net_egress_parse/format: the --allow-egress and vm.json syntax. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "net/net.h"

static void expect_canonical(const char *text, const char *canonical) {
  qvm_net_egress e;
  qvm_error *err = NULL;
  if (qvm_net_egress_parse(&e, text, &err) < 0) fail_msg("%s: %s", text, qvm_error_message(err));
  char out[QVM_NET_EGRESS_STR_MAX];
  qvm_net_egress_format(out, &e);
  assert_string_equal(out, canonical);
  qvm_net_egress again;
  assert_int_equal(qvm_net_egress_parse(&again, out, NULL), 0);
  assert_true(again.addr == e.addr && again.prefix == e.prefix && again.port == e.port &&
              again.udp == e.udp);
}

static void test_valid(void **state) {
  (void)state;
  expect_canonical("10.0.0.1:80", "10.0.0.1/32:80/tcp");
  expect_canonical("10.0.0.1:53/udp", "10.0.0.1/32:53/udp");
  expect_canonical("192.168.7.9/24:443/tcp", "192.168.7.0/24:443/tcp"); /* host bits dropped */
  expect_canonical("0.0.0.0/0:65535", "0.0.0.0/0:65535/tcp");
  expect_canonical("255.255.255.255/32:1/udp", "255.255.255.255/32:1/udp");
}

/* Each bad entry is refused and named, with what is wrong. */
static void expect_bad(const char *text, const char *why) {
  qvm_net_egress e;
  qvm_error *err = NULL;
  assert_int_equal(qvm_net_egress_parse(&e, text, &err), QVM_EINVAL);
  const char *msg = qvm_error_message(err);
  if (text && !strstr(msg, text)) fail_msg("'%s' not named in: %s", text, msg);
  if (!strstr(msg, why)) fail_msg("'%s' not in: %s", why, msg);
  qvm_error_free(err);
}

static void test_invalid(void **state) {
  (void)state;
  expect_bad("example.com:80", "no DNS names");
  expect_bad("10.0.0.1", "HOST:PORT");
  expect_bad("10.0.0.1:", "port");
  expect_bad("10.0.0.1:0", "port");
  expect_bad("10.0.0.1:65536", "port");
  expect_bad("10.0.0.1:+80", "port");
  expect_bad("10.0.0.1:80/icmp", "tcp or udp");
  expect_bad("10.0.0.1:80/", "tcp or udp");
  expect_bad("10.0.0.1/33:80", "prefix");
  expect_bad("10.0.0.1/:80", "prefix");
  expect_bad("10.0.0.1/-1:80", "prefix");
  expect_bad("10.0.0:80", "no DNS names");
  expect_bad("::1:80", "no DNS names");
  expect_bad("[::1]:80", "no DNS names");
  expect_bad("10.0.0.1:80 ", "port");
  expect_bad("", "HOST:PORT");
  expect_bad(NULL, "too long");
  char longer[200];
  memset(longer, '1', sizeof longer - 1);
  longer[sizeof longer - 1] = '\0';
  qvm_net_egress e;
  assert_int_equal(qvm_net_egress_parse(&e, longer, NULL), QVM_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_valid), cmocka_unit_test(test_invalid)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
