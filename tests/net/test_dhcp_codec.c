/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "net/dhcp_codec.h"
#include "net/dhcp_frame.h"
#include "net_testlib.h"
#include "testlib.h"
#include "util/cleanup.h"

static const uint8_t vm_mac[6] = {0x0a, 0x11, 0x22, 0x33, 0x44, 0x55};

static dhcp_msg full_offer(void) {
  dhcp_msg m = {.op = DHCP_BOOTREPLY, .type = DHCP_OFFER, .xid = 0xdeadbeef, .flags = 0x8000};
  memcpy(m.chaddr, vm_mac, 6);
  m.ciaddr = 0x0a4d0001;
  m.yiaddr = 0x0a4d000a;
  m.has_server_id = m.has_lease_time = m.has_t1 = m.has_t2 = true;
  m.server_id = 0x0a4d0001;
  m.lease_time = 3600, m.t1 = 1800, m.t2 = 3150;
  m.has_subnet_mask = m.has_broadcast = m.has_mtu = true;
  m.subnet_mask = 0xffffff00, m.broadcast = 0x0a4d00ff, m.mtu = 1400;
  m.router = 0x0a4d0001;
  m.dns_count = 2, m.dns[0] = 0x01010101, m.dns[1] = 0x08080808;
  m.client_id_len = 7;
  memcpy(m.client_id, "\x01\x0a\x11\x22\x33\x44\x55", 7);
  strcpy(m.hostname, "guest");
  m.hostname_len = 5;
  return m;
}

static void test_round_trip_all_fields(void **state) {
  (void)state;
  dhcp_msg in = full_offer(), out;
  uint8_t buf[DHCP_MAX_LEN];
  size_t len = dhcp_msg_build(buf, sizeof buf, &in);
  assert_true(len >= DHCP_MIN_LEN);
  qvm_dhcp_stats st = {0};
  assert_int_equal(dhcp_msg_parse(&out, buf, len, &st), 0);
  assert_int_equal(st.received, 1);
  assert_int_equal(out.op, DHCP_BOOTREPLY);
  assert_int_equal(out.type, DHCP_OFFER);
  assert_int_equal(out.xid, 0xdeadbeef);
  assert_int_equal(out.flags, 0x8000);
  assert_memory_equal(out.chaddr, vm_mac, 6);
  assert_int_equal(out.ciaddr, in.ciaddr);
  assert_int_equal(out.yiaddr, in.yiaddr);
  assert_true(out.has_server_id && out.server_id == in.server_id);
  assert_true(out.has_lease_time && out.lease_time == 3600);
  assert_true(out.has_t1 && out.t1 == 1800 && out.has_t2 && out.t2 == 3150);
  assert_true(out.has_subnet_mask && out.subnet_mask == 0xffffff00);
  assert_true(out.has_broadcast && out.broadcast == 0x0a4d00ff);
  assert_true(out.has_mtu && out.mtu == 1400);
  assert_int_equal(out.router, 0x0a4d0001);
  assert_int_equal(out.dns_count, 2);
  assert_int_equal(out.dns[1], 0x08080808);
  assert_int_equal(out.client_id_len, 7);
  assert_memory_equal(out.client_id, in.client_id, 7);
  assert_int_equal(out.hostname_len, 5);
  assert_string_equal(out.hostname, "guest");
}

static void test_round_trip_table(void **state) {
  (void)state;
  static const uint8_t types[] = {DHCP_DISCOVER, DHCP_OFFER, DHCP_REQUEST, DHCP_DECLINE,
                                  DHCP_ACK,      DHCP_NAK,   DHCP_RELEASE, DHCP_INFORM};
  for (size_t i = 0; i < QVM_ARRAY_SIZE(types); i++) {
    dhcp_msg in = {.op = types[i] % 2 ? DHCP_BOOTREQUEST : DHCP_BOOTREPLY, .type = types[i]};
    in.xid = (uint32_t)i;
    memcpy(in.chaddr, vm_mac, 6);
    if (types[i] == DHCP_NAK) strcpy(in.message, "no");
    uint8_t buf[DHCP_MAX_LEN];
    size_t len = dhcp_msg_build(buf, sizeof buf, &in);
    assert_int_equal(len, DHCP_MIN_LEN); /* padded to the BOOTP minimum */
    dhcp_msg out;
    qvm_dhcp_stats st = {0};
    assert_int_equal(dhcp_msg_parse(&out, buf, len, &st), 0);
    assert_int_equal(out.type, types[i]);
    assert_int_equal(out.xid, i);
    assert_string_equal(out.message, in.message);
    assert_string_equal(dhcp_message_type_name(out.type), dhcp_message_type_name(types[i]));
  }
}

static void test_build_refuses_small_buffer(void **state) {
  (void)state;
  dhcp_msg in = full_offer();
  uint8_t buf[DHCP_MAX_LEN];
  assert_int_equal(dhcp_msg_build(buf, 100, &in), 0);
  in.hostname_len = 255;
  memset(in.hostname, 'a', 255);
  in.client_id_len = 255;
  assert_int_equal(dhcp_msg_build(buf, 400, &in), 0); /* options overflow the cap */
}

/* Each codec-level hostile corpus file, and the counter it must raise. */
static const struct {
  const char *file;
  size_t counter;
} codec_drops[] = {
    {"empty", offsetof(qvm_dhcp_stats, truncated)},
    {"truncated-header", offsetof(qvm_dhcp_stats, truncated)},
    {"truncated-cookie", offsetof(qvm_dhcp_stats, truncated)},
    {"bad-cookie", offsetof(qvm_dhcp_stats, bad_cookie)},
    {"bad-htype", offsetof(qvm_dhcp_stats, bad_header)},
    {"bad-hlen", offsetof(qvm_dhcp_stats, bad_header)},
    {"option-overrun", offsetof(qvm_dhcp_stats, option_overrun)},
    {"option-length-missing", offsetof(qvm_dhcp_stats, option_overrun)},
    {"overload", offsetof(qvm_dhcp_stats, option_overload)},
    {"missing-end", offsetof(qvm_dhcp_stats, missing_end)},
    {"missing-end-padded", offsetof(qvm_dhcp_stats, missing_end)},
    {"bad-len-message-type", offsetof(qvm_dhcp_stats, bad_option_length)},
    {"bad-len-server-id", offsetof(qvm_dhcp_stats, bad_option_length)},
    {"bad-len-requested-ip", offsetof(qvm_dhcp_stats, bad_option_length)},
    {"bad-len-lease-time", offsetof(qvm_dhcp_stats, bad_option_length)},
    {"bad-len-dns", offsetof(qvm_dhcp_stats, bad_option_length)},
    {"bad-len-client-id", offsetof(qvm_dhcp_stats, bad_option_length)},
    {"bad-len-hostname-empty", offsetof(qvm_dhcp_stats, bad_option_length)},
    {"duplicate-message-type", offsetof(qvm_dhcp_stats, duplicate_option)},
    {"duplicate-requested-ip", offsetof(qvm_dhcp_stats, duplicate_option)},
    {"bad-message-type-0", offsetof(qvm_dhcp_stats, bad_message_type)},
    {"bad-message-type-200", offsetof(qvm_dhcp_stats, bad_message_type)},
};

static void test_malformed_dropped_and_counted(void **state) {
  (void)state;
  for (size_t i = 0; i < QVM_ARRAY_SIZE(codec_drops); i++) {
    size_t len = 0;
    _cleanup_free_ uint8_t *data = net_test_corpus_file(&len, "dhcp", codec_drops[i].file);
    qvm_dhcp_stats st = {0};
    dhcp_msg m;
    if (dhcp_msg_parse(&m, data, len, &st) == 0) fail_msg("'%s' was accepted", codec_drops[i].file);
    uint64_t *counter = (uint64_t *)((char *)&st + codec_drops[i].counter);
    if (*counter != 1) fail_msg("'%s' did not raise its counter", codec_drops[i].file);
    assert_int_equal(net_test_drops(&st), 1); /* exactly one reason */
  }
}

static void test_every_truncation_is_dropped(void **state) {
  (void)state;
  dhcp_msg in = full_offer(), out;
  uint8_t buf[DHCP_MAX_LEN];
  size_t len = dhcp_msg_build(buf, sizeof buf, &in);
  size_t end = DHCP_HEADER_LEN;
  while (buf[end] != DHCP_OPT_END) end += 2 + buf[end + 1];
  for (size_t cut = 0; cut <= end; cut++) {
    qvm_dhcp_stats st = {0};
    uint8_t *copy = malloc(cut ? cut : 1); /* exact size: ASan sees overreads */
    memcpy(copy, buf, cut);
    assert_int_equal(dhcp_msg_parse(&out, copy, cut, &st), -1);
    assert_int_equal(net_test_drops(&st), 1);
    free(copy);
  }
  qvm_dhcp_stats st = {0};
  assert_int_equal(dhcp_msg_parse(&out, buf, len, &st), 0);
}

static void test_hostname_sanitize(void **state) {
  (void)state;
  static const struct {
    const char *raw, *want;
  } cases[] = {
      {"guest-1", "guest-1"},
      {"Guest.Example.COM", "guest"},
      {"../etc", ""},
      {"a;rm -rf /", ""},
      {"-lead", ""},
      {"trail-", ""},
      {"", ""},
      {"x\ny", ""},
      {"ok\0hidden", "ok"},
      {"%s%n", ""},
      {"a b", ""},
      {"UPPER", "upper"},
  };
  for (size_t i = 0; i < QVM_ARRAY_SIZE(cases); i++) {
    char out[QVM_NET_HOSTNAME_MAX];
    size_t len = strlen(cases[i].raw);
    if (i == 8) len = 9; /* with the embedded NUL */
    bool kept = dhcp_hostname_sanitize(out, cases[i].raw, len);
    if (i == 8) {
      assert_false(kept); /* a NUL is not [a-z0-9-] */
      continue;
    }
    assert_string_equal(out, cases[i].want);
    assert_int_equal(kept, cases[i].want[0] != '\0');
  }
  char long_name[100];
  memset(long_name, 'a', sizeof long_name);
  char out[QVM_NET_HOSTNAME_MAX];
  assert_false(dhcp_hostname_sanitize(out, long_name, 64));
  assert_true(dhcp_hostname_sanitize(out, long_name, 63));
}

static void test_frame_round_trip(void **state) {
  (void)state;
  uint8_t payload[DHCP_MIN_LEN] = {1, 2, 3};
  dhcp_frame f = {.src_ip = 0x0a4d0001,
                  .dst_ip = 0xffffffff,
                  .src_port = 67,
                  .dst_port = 68,
                  .payload = payload,
                  .payload_len = sizeof payload};
  memset(f.dst_mac, 0xff, 6);
  memcpy(f.src_mac, vm_mac, 6);
  uint8_t frame[DHCP_FRAME_MAX];
  size_t len = dhcp_frame_build(frame, sizeof frame, &f);
  assert_int_equal(len, DHCP_FRAME_OVERHEAD + sizeof payload);
  dhcp_frame g;
  assert_int_equal(dhcp_frame_parse(&g, frame, len), 0);
  assert_int_equal(g.src_ip, f.src_ip);
  assert_int_equal(g.dst_port, 68);
  assert_int_equal(g.payload_len, sizeof payload);
  assert_memory_equal(g.src_mac, vm_mac, 6);
  /* Truncations and a broken IP checksum are refused. */
  for (size_t cut = 0; cut < DHCP_FRAME_OVERHEAD + 10; cut++)
    assert_int_equal(dhcp_frame_parse(&g, frame, cut), -1);
  frame[14 + 10] ^= 0xff;
  assert_int_equal(dhcp_frame_parse(&g, frame, len), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_all_fields),
      cmocka_unit_test(test_round_trip_table),
      cmocka_unit_test(test_build_refuses_small_buffer),
      cmocka_unit_test(test_malformed_dropped_and_counted),
      cmocka_unit_test(test_every_truncation_is_dropped),
      cmocka_unit_test(test_hostname_sanitize),
      cmocka_unit_test(test_frame_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
