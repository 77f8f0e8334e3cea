/* SPDX-License-Identifier: MIT */
/* The server's state machine, fed with crafted packets in memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/dhcp_codec.h"
#include "net/lease_db.h"
#include "net_testlib.h"
#include "testlib.h"
#include "util/cleanup.h"
#include "util/fs.h"

static const uint8_t vm_mac[6] = {0x0a, 0x11, 0x22, 0x33, 0x44, 0x55};
static const uint8_t other_mac[6] = {0x0a, 0x99, 0x99, 0x99, 0x99, 0x99};
#define SERVER 0x0a4d0001u
#define IP(d) (0x0a4d0000u | (d))

typedef struct fixture {
  char *dir;
  char db[512];
  qvm_dhcp_server *server;
  qvm_dhcp_lease_event events[8];
  int nevents;
} fixture;

static void on_lease(const qvm_dhcp_lease_event *e, void *userdata) {
  fixture *f = userdata;
  if (f->nevents < 8) f->events[f->nevents++] = *e;
}

static void server_start(fixture *f) {
  qvm_dhcp_server_options o = QVM_DHCP_SERVER_OPTIONS_INIT;
  memcpy(o.client_mac, vm_mac, 6);
  o.lease_db = f->db;
  o.mtu = 1400;
  o.dns[0] = "10.77.0.1";
  o.hostname = "vm-one";
  o.on_lease = on_lease;
  o.userdata = f;
  qvm_error *err = NULL;
  if (qvm_dhcp_server_new(&f->server, &o, &err) < 0) fail_msg("%s", qvm_error_message(err));
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  f->dir = qvm_test_mkdtemp("dhcp-server");
  snprintf(f->db, sizeof f->db, "%s/qvmbr0.leases", f->dir);
  server_start(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  qvm_dhcp_server_free(f->server);
  qvm_test_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static dhcp_msg request(uint8_t type) {
  dhcp_msg m = {.op = DHCP_BOOTREQUEST, .type = type, .xid = 42};
  memcpy(m.chaddr, vm_mac, 6);
  return m;
}

/* Sends m; returns the parsed reply, or type 0 if there was none. */
static dhcp_msg exchange_from(fixture *f, const dhcp_msg *m, const uint8_t *src, bool *bcast) {
  uint8_t pkt[DHCP_MAX_LEN], reply[DHCP_MAX_LEN];
  size_t len = dhcp_msg_build(pkt, sizeof pkt, m), rlen = 0;
  qvm_error *err = NULL;
  bool b = false;
  if (qvm_dhcp_server_handle_packet(&rlen, &b, f->server, pkt, len, src, reply, sizeof reply,
                                    &err) < 0)
    fail_msg("%s", qvm_error_message(err));
  if (bcast) *bcast = b;
  dhcp_msg out = {0};
  qvm_dhcp_stats st = {0};
  if (rlen) assert_int_equal(dhcp_msg_parse(&out, reply, rlen, &st), 0);
  return out;
}

static dhcp_msg exchange(fixture *f, const dhcp_msg *m) {
  return exchange_from(f, m, vm_mac, NULL);
}

static uint32_t bind_address(fixture *f) {
  dhcp_msg d = request(DHCP_DISCOVER);
  dhcp_msg offer = exchange(f, &d);
  assert_int_equal(offer.type, DHCP_OFFER);
  dhcp_msg r = request(DHCP_REQUEST);
  r.has_server_id = r.has_requested_ip = true;
  r.server_id = SERVER;
  r.requested_ip = offer.yiaddr;
  strcpy(r.hostname, "Guest-1.lan");
  r.hostname_len = 11;
  dhcp_msg ack = exchange(f, &r);
  assert_int_equal(ack.type, DHCP_ACK);
  assert_int_equal(ack.yiaddr, offer.yiaddr);
  return ack.yiaddr;
}

static void test_discover_offer(void **state) {
  fixture *f = *state;
  dhcp_msg d = request(DHCP_DISCOVER);
  d.client_id_len = 7;
  memcpy(d.client_id, "\x01\x0a\x11\x22\x33\x44\x55", 7);
  bool bcast = true;
  dhcp_msg o = exchange_from(f, &d, vm_mac, &bcast);
  assert_int_equal(o.type, DHCP_OFFER);
  assert_int_equal(o.op, DHCP_BOOTREPLY);
  assert_int_equal(o.xid, 42);
  assert_int_equal(o.yiaddr, IP(10));
  assert_true(o.has_server_id && o.server_id == SERVER);
  assert_true(o.has_lease_time && o.lease_time == 3600);
  assert_true(o.t1 == 1800 && o.t2 == 3150);
  assert_int_equal(o.subnet_mask, 0xffffff00);
  assert_int_equal(o.router, SERVER);
  assert_int_equal(o.dns_count, 1);
  assert_int_equal(o.mtu, 1400);
  assert_int_equal(o.client_id_len, 7); /* echoed, RFC 6842 */
  assert_false(bcast);                  /* no broadcast bit: unicast to yiaddr */
  d.flags = DHCP_FLAG_BROADCAST;
  o = exchange_from(f, &d, vm_mac, &bcast);
  assert_true(bcast);
  assert_int_equal(f->nevents, 0);           /* an offer is no lease */
  assert_int_equal(access(f->db, F_OK), -1); /* and writes nothing */
}

static void test_request_ack_and_event(void **state) {
  fixture *f = *state;
  uint32_t ip = bind_address(f);
  assert_int_equal(f->nevents, 1);
  assert_int_equal(f->events[0].kind, QVM_DHCP_LEASE_ACK);
  assert_string_equal(f->events[0].ip, "10.77.0.10");
  assert_string_equal(f->events[0].mac, NET_TEST_VM_MAC);
  assert_string_equal(f->events[0].hostname, "guest-1");
  assert_int_equal(f->events[0].lease_seconds, 3600);
  assert_true(f->events[0].timestamp_us > 0);
  qvm_net_lease lease;
  assert_int_equal(qvm_net_lease_lookup(&lease, f->db, vm_mac, NULL), 0);
  assert_string_equal(lease.ip, "10.77.0.10");
  assert_string_equal(lease.hostname, "guest-1");
  (void)ip;
  qvm_dhcp_stats st;
  qvm_dhcp_server_stats(&st, f->server);
  assert_int_equal(st.offers, 1);
  assert_int_equal(st.acks, 1);
}

static void test_wrong_server_id_ignored(void **state) {
  fixture *f = *state;
  dhcp_msg r = request(DHCP_REQUEST);
  r.has_server_id = r.has_requested_ip = true;
  r.server_id = IP(2);
  r.requested_ip = IP(10);
  assert_int_equal(exchange(f, &r).type, 0);
  qvm_dhcp_stats st;
  qvm_dhcp_server_stats(&st, f->server);
  assert_int_equal(st.not_for_us, 1);
  assert_int_equal(f->nevents, 0);
}

static void test_foreign_ip_nak(void **state) {
  fixture *f = *state;
  dhcp_msg r = request(DHCP_REQUEST); /* init-reboot with an address from elsewhere */
  r.has_requested_ip = true;
  r.requested_ip = 0xc0a80505;
  bool bcast = false;
  dhcp_msg nak = exchange_from(f, &r, vm_mac, &bcast);
  assert_int_equal(nak.type, DHCP_NAK);
  assert_true(bcast); /* NAKs are broadcast */
  assert_int_equal(nak.yiaddr, 0);
  assert_false(nak.has_lease_time);
  assert_int_equal(f->nevents, 0);
}

static void test_init_reboot_and_renew(void **state) {
  fixture *f = *state;
  uint32_t ip = bind_address(f);
  dhcp_msg r = request(DHCP_REQUEST); /* init-reboot */
  r.has_requested_ip = true;
  r.requested_ip = ip;
  assert_int_equal(exchange(f, &r).type, DHCP_ACK);
  struct stat before, after;
  assert_int_equal(stat(f->db, &before), 0);
  dhcp_msg renew = request(DHCP_REQUEST); /* renewing/rebinding: ciaddr only */
  renew.ciaddr = ip;
  renew.flags = DHCP_FLAG_BROADCAST;
  bool bcast = true;
  dhcp_msg ack = exchange_from(f, &renew, vm_mac, &bcast);
  assert_int_equal(ack.type, DHCP_ACK);
  assert_int_equal(ack.yiaddr, ip);
  assert_int_equal(ack.ciaddr, ip);
  assert_false(bcast);             /* unicast to ciaddr despite the bit */
  assert_int_equal(f->nevents, 1); /* renewals that change nothing are not news */
  assert_int_equal(stat(f->db, &after), 0);
  assert_int_equal(before.st_ino, after.st_ino); /* an early renewal needs no rewrite */
}

static void test_release_frees(void **state) {
  fixture *f = *state;
  uint32_t ip = bind_address(f);
  dhcp_msg rel = request(DHCP_RELEASE);
  rel.ciaddr = ip;
  rel.has_server_id = true;
  rel.server_id = SERVER;
  assert_int_equal(exchange(f, &rel).type, 0);
  assert_int_equal(f->nevents, 2);
  assert_int_equal(f->events[1].kind, QVM_DHCP_LEASE_RELEASE);
  qvm_net_lease lease;
  assert_int_equal(qvm_net_lease_lookup(&lease, f->db, vm_mac, NULL), QVM_ENOTFOUND);
  /* The address stays the VM's: the next discover offers it again. */
  dhcp_msg d = request(DHCP_DISCOVER);
  assert_int_equal(exchange(f, &d).yiaddr, ip);
}

/* A guest that releases at every shutdown (systemd-networkd, udhcpc -R) and
 * reboots quickly gets its address at once every time: a RELEASE never takes
 * the last change the next binding needs. (Messages are not limited here:
 * real reboots are seconds apart.) */
static void test_release_reboot_loop(void **state) {
  fixture *f = *state;
  qvm_dhcp_server_free(f->server);
  qvm_dhcp_server_options o = QVM_DHCP_SERVER_OPTIONS_INIT;
  memcpy(o.client_mac, vm_mac, 6);
  o.lease_db = f->db;
  o.message_rate = (qvm_dhcp_rate){.burst = 1000, .per_minute = 1000};
  qvm_error *err = NULL;
  if (qvm_dhcp_server_new(&f->server, &o, &err) < 0) fail_msg("%s", qvm_error_message(err));
  for (int boot = 0; boot < 15; boot++) {
    uint32_t ip = bind_address(f); /* asserts the ACK */
    dhcp_msg rel = request(DHCP_RELEASE);
    rel.ciaddr = ip;
    rel.has_server_id = true;
    rel.server_id = SERVER;
    assert_int_equal(exchange(f, &rel).type, 0);
  }
}

static void test_decline_marks_bad(void **state) {
  fixture *f = *state;
  uint32_t ip = bind_address(f);
  dhcp_msg dec = request(DHCP_DECLINE);
  dec.has_requested_ip = dec.has_server_id = true;
  dec.requested_ip = ip;
  dec.server_id = SERVER;
  assert_int_equal(exchange(f, &dec).type, 0);
  assert_int_equal(f->events[1].kind, QVM_DHCP_LEASE_DECLINE);
  dhcp_msg d = request(DHCP_DISCOVER);
  dhcp_msg o = exchange(f, &d);
  assert_int_equal(o.type, DHCP_OFFER);
  assert_int_not_equal(o.yiaddr, ip);
  dhcp_msg r = request(DHCP_REQUEST); /* asking for the bad one is refused */
  r.has_requested_ip = true;
  r.requested_ip = ip;
  assert_int_equal(exchange(f, &r).type, DHCP_NAK);
}

static void test_inform_ack_without_lease(void **state) {
  fixture *f = *state;
  dhcp_msg inf = request(DHCP_INFORM);
  inf.ciaddr = IP(50);
  bool bcast = true;
  dhcp_msg ack = exchange_from(f, &inf, vm_mac, &bcast);
  assert_int_equal(ack.type, DHCP_ACK);
  assert_int_equal(ack.yiaddr, 0);
  assert_false(ack.has_lease_time);
  assert_int_equal(ack.subnet_mask, 0xffffff00);
  assert_false(bcast);
  assert_int_equal(f->nevents, 0);
  assert_int_equal(access(f->db, F_OK), -1);
}

static void test_foreign_mac_ignored(void **state) {
  fixture *f = *state;
  dhcp_msg d = request(DHCP_DISCOVER);
  assert_int_equal(exchange_from(f, &d, other_mac, NULL).type, 0); /* Ethernet source */
  memcpy(d.chaddr, other_mac, 6);
  assert_int_equal(exchange(f, &d).type, 0); /* chaddr */
  qvm_dhcp_stats st;
  qvm_dhcp_server_stats(&st, f->server);
  assert_int_equal(st.foreign_mac, 2);
  assert_int_equal(st.offers, 0);
}

static void test_same_ip_after_restart(void **state) {
  fixture *f = *state;
  uint32_t ip = bind_address(f);
  qvm_dhcp_server_free(f->server);
  /* Another VM takes the next address meanwhile. */
  lease_table t = {0};
  assert_int_equal(lease_db_read(&t, f->db, NULL), 0);
  lease_record other = {.state = LEASE_BOUND, .ip = IP(11), .expires = time(NULL) + 100};
  memcpy(other.mac, other_mac, 6);
  assert_int_equal(lease_table_put(&t, &other), 0);
  assert_int_equal(lease_db_write(&t, f->db, NULL), 0);
  lease_table_free(&t);
  server_start(f);
  dhcp_msg d = request(DHCP_DISCOVER);
  d.has_requested_ip = true;
  d.requested_ip = IP(11); /* asks for the other VM's: gets its own */
  assert_int_equal(exchange(f, &d).yiaddr, ip);
  dhcp_msg r = request(DHCP_REQUEST);
  r.has_requested_ip = true;
  r.requested_ip = IP(11);
  assert_int_equal(exchange(f, &r).type, DHCP_NAK);
}

static void test_lease_wait_immediate_and_timeout(void **state) {
  fixture *f = *state;
  char ip[QVM_NET_IP_MAX];
  qvm_error *err = NULL;
  assert_int_equal(qvm_net_lease_wait(ip, f->db, vm_mac, 50, &err), QVM_ETIMEOUT);
  assert_non_null(strstr(qvm_error_message(err), NET_TEST_VM_MAC));
  qvm_error_free(err);
  bind_address(f);
  assert_int_equal(qvm_net_lease_wait(ip, f->db, vm_mac, 0, NULL), 0);
  assert_string_equal(ip, "10.77.0.10");
}

static void test_lease_wait_wakes_on_write(void **state) {
  fixture *f = *state;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    usleep(200 * 1000);
    bind_address(f);
    _exit(0);
  }
  char ip[QVM_NET_IP_MAX];
  qvm_error *err = NULL;
  int r = qvm_net_lease_wait(ip, f->db, vm_mac, 20000, &err);
  waitpid(pid, NULL, 0);
  if (r < 0) fail_msg("%s", qvm_error_message(err));
  assert_string_equal(ip, "10.77.0.10");
}

/* Server-level drops of the hostile corpus, on top of the codec's. */
static const struct {
  const char *file;
  size_t counter;
} server_drops[] = {
    {"bootp-no-message-type", offsetof(qvm_dhcp_stats, bad_message_type)},
    {"reply-op", offsetof(qvm_dhcp_stats, not_for_us)},
    {"foreign-chaddr", offsetof(qvm_dhcp_stats, foreign_mac)},
    {"relayed", offsetof(qvm_dhcp_stats, not_for_us)},
    {"request-other-server", offsetof(qvm_dhcp_stats, not_for_us)},
    {"request-no-address", offsetof(qvm_dhcp_stats, not_for_us)},
    {"offer-from-client", offsetof(qvm_dhcp_stats, not_for_us)},
    {"overload", offsetof(qvm_dhcp_stats, option_overload)},
    {"missing-end", offsetof(qvm_dhcp_stats, missing_end)},
};

static void test_hostile_corpus_in_memory(void **state) {
  fixture *f = *state;
  for (size_t i = 0; i < QVM_ARRAY_SIZE(server_drops); i++) {
    size_t len = 0;
    _cleanup_free_ uint8_t *data = net_test_corpus_file(&len, "dhcp", server_drops[i].file);
    qvm_dhcp_stats before, after;
    qvm_dhcp_server_stats(&before, f->server);
    uint8_t reply[DHCP_MAX_LEN];
    size_t rlen = 1;
    assert_int_equal(qvm_dhcp_server_handle_packet(&rlen, NULL, f->server, data, len, vm_mac, reply,
                                                   sizeof reply, NULL),
                     0);
    qvm_dhcp_server_stats(&after, f->server);
    uint64_t *b = (uint64_t *)((char *)&before + server_drops[i].counter);
    uint64_t *a = (uint64_t *)((char *)&after + server_drops[i].counter);
    if (rlen != 0 || *a != *b + 1) fail_msg("'%s' was not dropped", server_drops[i].file);
  }
  assert_int_equal(access(f->db, F_OK), -1);
  assert_int_equal(f->nevents, 0);
}

/* Two (here four) shims serve VMs on one bridge at once: one server each,
 * one lease db. Each child process binds its MAC over and over (a NAK after
 * a lost race sends it back to DISCOVER); in the end every MAC has its own
 * address, and the db has exactly one bound line per MAC. */
#define SHARED_SERVERS 4
#define SHARED_ROUNDS 40

static int bind_loop(const char *db, int i) {
  fixture f = {0};
  snprintf(f.db, sizeof f.db, "%s", db);
  uint8_t mac[6] = {0x0a, 0x42, 0, 0, 0, (uint8_t)(i + 1)};
  qvm_dhcp_server_options o = QVM_DHCP_SERVER_OPTIONS_INIT;
  memcpy(o.client_mac, mac, 6);
  o.lease_db = f.db;
  /* Far faster than any client: lift the flood limit for this race test. */
  o.message_rate = (qvm_dhcp_rate){.burst = 1000, .per_minute = 60000};
  o.change_rate = o.message_rate;
  if (qvm_dhcp_server_new(&f.server, &o, NULL) < 0) return 10;
  uint32_t first = 0;
  int rc = 0;
  for (int round = 0; round < SHARED_ROUNDS && !rc; round++) {
    uint32_t got = 0;
    for (int tries = 0; tries < 20 && !got; tries++) {
      uint8_t pkt[DHCP_MAX_LEN], reply[DHCP_MAX_LEN];
      dhcp_msg m = {.op = DHCP_BOOTREQUEST, .type = DHCP_DISCOVER, .xid = (uint32_t)round};
      memcpy(m.chaddr, mac, 6);
      size_t rlen = 0, len = dhcp_msg_build(pkt, sizeof pkt, &m);
      dhcp_msg offer = {0}, ack = {0};
      qvm_dhcp_stats st = {0};
      if (qvm_dhcp_server_handle_packet(&rlen, NULL, f.server, pkt, len, mac, reply, sizeof reply,
                                        NULL) < 0 ||
          !rlen || dhcp_msg_parse(&offer, reply, rlen, &st) < 0 || offer.type != DHCP_OFFER)
        return 11;
      m.type = DHCP_REQUEST;
      m.has_server_id = m.has_requested_ip = true;
      m.server_id = SERVER;
      m.requested_ip = offer.yiaddr;
      len = dhcp_msg_build(pkt, sizeof pkt, &m);
      if (qvm_dhcp_server_handle_packet(&rlen, NULL, f.server, pkt, len, mac, reply, sizeof reply,
                                        NULL) < 0 ||
          !rlen || dhcp_msg_parse(&ack, reply, rlen, &st) < 0)
        return 12;
      if (ack.type == DHCP_ACK) got = ack.yiaddr;
    }
    if (!got)
      rc = 13;
    else if (!first)
      first = got;
    else if (got != first)
      rc = 14; /* a MAC keeps its address */
  }
  qvm_dhcp_server_free(f.server);
  return rc;
}

static void test_servers_share_lease_db(void **state) {
  fixture *f = *state;
  pid_t pids[SHARED_SERVERS];
  for (int i = 0; i < SHARED_SERVERS; i++) {
    pids[i] = fork();
    assert_true(pids[i] >= 0);
    if (pids[i] == 0) _exit(bind_loop(f->db, i));
  }
  for (int i = 0; i < SHARED_SERVERS; i++) {
    int st = 0;
    assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
  }
  _cleanup_free_ char *text = NULL;
  assert_int_equal(qvm_read_file(&text, NULL, f->db, 1 << 20, NULL), 0);
  lease_table t = {0};
  assert_int_equal(lease_table_parse(&t, text), 0);
  uint32_t ips[SHARED_SERVERS] = {0};
  size_t bound = 0;
  for (size_t k = 0; k < t.n; k++) {
    if (t.v[k].state != LEASE_BOUND || t.v[k].mac[1] != 0x42) continue;
    int i = t.v[k].mac[5] - 1;
    assert_true(i >= 0 && i < SHARED_SERVERS);
    assert_int_equal(ips[i], 0); /* one line per MAC */
    ips[i] = t.v[k].ip;
    bound++;
  }
  assert_int_equal(bound, SHARED_SERVERS);
  for (int i = 0; i < SHARED_SERVERS; i++) {
    qvm_net_lease l;
    uint8_t mac[6] = {0x0a, 0x42, 0, 0, 0, (uint8_t)(i + 1)};
    assert_int_equal(qvm_net_lease_lookup(&l, f->db, mac, NULL), 0);
    for (int k = 0; k < i; k++) assert_int_not_equal(ips[k], ips[i]);
  }
  lease_table_free(&t);
}

/* OFFER and ACK carry the VM's hostname (option 12); a bad one is refused
 * when the server is made. */
static void test_hostname_sent(void **state) {
  fixture *f = *state;
  dhcp_msg d = request(DHCP_DISCOVER);
  dhcp_msg offer = exchange(f, &d);
  assert_int_equal(offer.type, DHCP_OFFER);
  assert_int_equal(offer.hostname_len, 6);
  assert_string_equal(offer.hostname, "vm-one");
  dhcp_msg r = request(DHCP_REQUEST);
  r.has_server_id = r.has_requested_ip = true;
  r.server_id = SERVER;
  r.requested_ip = offer.yiaddr;
  dhcp_msg ack = exchange(f, &r);
  assert_int_equal(ack.type, DHCP_ACK);
  assert_string_equal(ack.hostname, "vm-one");
  const char *bad[] = {"", "-x", "x-", "a.b", "a b", "Zz_"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    qvm_dhcp_server_options o = QVM_DHCP_SERVER_OPTIONS_INIT;
    o.lease_db = f->db;
    o.hostname = bad[i];
    qvm_dhcp_server *s = NULL;
    qvm_error *err = NULL;
    assert_int_equal(qvm_dhcp_server_new(&s, &o, &err), QVM_EINVAL);
    assert_non_null(strstr(qvm_error_message(err), "hostname"));
    qvm_error_free(err);
  }
}

static void test_lease_file_tolerates_garbage(void **state) {
  fixture *f = *state;
  const char *text = "# comment\nbound 0a:11:22:33:44:55 10.77.0.20 99999999999 ok\n"
                     "bound zz 10.77.0.21 1 -\nbound 0a:11:22:33:44:56 10.77.0.22 1 ../x\n"
                     "garbage\n\nbound 0a:11:22:33:44:57 10.77.0.23 -5 -\n";
  assert_int_equal(qvm_write_file_atomic(f->db, text, strlen(text), 0644, NULL), 0);
  lease_table t = {0};
  assert_int_equal(lease_db_read(&t, f->db, NULL), 0);
  assert_int_equal(t.n, 1);
  assert_int_equal(t.v[0].ip, IP(20));
  lease_table_free(&t);
  dhcp_msg d = request(DHCP_DISCOVER);
  assert_int_equal(exchange(f, &d).yiaddr, IP(20));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_discover_offer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_request_ack_and_event, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wrong_server_id_ignored, setup, teardown),
      cmocka_unit_test_setup_teardown(test_foreign_ip_nak, setup, teardown),
      cmocka_unit_test_setup_teardown(test_init_reboot_and_renew, setup, teardown),
      cmocka_unit_test_setup_teardown(test_release_frees, setup, teardown),
      cmocka_unit_test_setup_teardown(test_decline_marks_bad, setup, teardown),
      cmocka_unit_test_setup_teardown(test_inform_ack_without_lease, setup, teardown),
      cmocka_unit_test_setup_teardown(test_foreign_mac_ignored, setup, teardown),
      cmocka_unit_test_setup_teardown(test_same_ip_after_restart, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lease_wait_immediate_and_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lease_wait_wakes_on_write, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hostile_corpus_in_memory, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lease_file_tolerates_garbage, setup, teardown),
      cmocka_unit_test_setup_teardown(test_servers_share_lease_db, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hostname_sent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_release_reboot_loop, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
