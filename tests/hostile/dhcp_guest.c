/* SPDX-License-Identifier: MIT */
/*
 * The hostile guest against qvm's DHCP, with raw frames in network
 * namespaces this test makes: the guest is "vg" (MAC NET_TEST_VM_MAC) in its
 * own netns; its veth peer "vh", a port of a bridge made by qvm's library,
 * stands in for the VM's tap, and carries qvm's DHCP server (or, for
 * dhcp=external, the lease watcher) exactly as the shim sets them up. Another
 * VM is a second server on the same lease db, fed in memory as its own shim
 * would be.
 *
 * - a DECLINE of another VM's address neither frees nor blocks it;
 * - DECLINE over and over cannot empty the pool for other VMs, and declined
 *   addresses come back when their hold expires;
 * - 20,000 REQUESTs (plain renewals, then with a new hostname each) are rate
 *   limited and cost a few lease events and lease-db writes, not thousands;
 * - the lease db and its lock are 0600, also when an older qvm made them 0644;
 * - the watcher ignores a DHCPACK the guest forges, and learns the real one.
 */
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/dhcp_codec.h"
#include "net/dhcp_frame.h"
#include "net/lease_db.h"
#include "net_testlib.h"
#include "testlib.h"
#include "util/cleanup.h"
#include "util/time.h"

#define WAIT_MS 10000
#define FLOOD 20000
#define FLOOD_MS 120000 /* the whole flood, whatever the machine's speed */
#define BATCH 50
#define SERVER_IP 0x0a4d0001u
#define IP(d) (0x0a4d0000u | (d))

static net_test_topology topo;
static char *dir;
static uint8_t vm_mac[6];
static const uint8_t other_mac[6] = {0x0a, 0x99, 0x99, 0x99, 0x99, 0x99};
static int guest_fd = -1;
static uint64_t sent;

typedef struct event_count {
  int acks, releases, declines;
} event_count;

static void count_event(const qvm_dhcp_lease_event *e, void *userdata) {
  event_count *c = userdata;
  if (e->kind == QVM_DHCP_LEASE_ACK) c->acks++;
  if (e->kind == QVM_DHCP_LEASE_RELEASE) c->releases++;
  if (e->kind == QVM_DHCP_LEASE_DECLINE) c->declines++;
}

/* A packet socket on the guest's vg, made inside the guest netns; it only
 * sends (protocol 0 receives nothing). */
static int guest_socket(void) {
  net_test_netns_enter(topo.guest);
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  unsigned idx = 0;
  assert_int_equal(qvm_net_link_index(&idx, "vg", NULL), 0);
  struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = (int)idx};
  assert_int_equal(bind(fd, (struct sockaddr *)&sll, sizeof sll), 0);
  net_test_netns_enter(topo.host);
  return fd;
}

static int group_setup(void **state) {
  (void)state;
  net_test_topology_create(&topo, "hd");
  dir = qvm_test_mkdtemp("hostile-dhcp");
  qvm_net_mac_parse(vm_mac, NET_TEST_VM_MAC, NULL);
  guest_fd = guest_socket();
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  close(guest_fd);
  qvm_test_rmtree(dir);
  free(dir);
  return 0;
}

/* Sends one frame out of fd (bound to its interface). */
static void send_frame(int fd, const dhcp_frame *f) {
  uint8_t frame[DHCP_FRAME_MAX];
  size_t n = dhcp_frame_build(frame, sizeof frame, f);
  assert_true(n > 0);
  struct sockaddr_ll sll;
  socklen_t len = sizeof sll;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sll, &len), 0);
  sll.sll_protocol = htons(ETH_P_IP);
  sll.sll_halen = 6;
  memcpy(sll.sll_addr, f->dst_mac, 6);
  assert_int_equal(sendto(fd, frame, n, 0, (struct sockaddr *)&sll, sizeof sll), (ssize_t)n);
}

/* The guest broadcasts m as a client would (68 -> 67). */
static void guest_send(const dhcp_msg *m) {
  uint8_t payload[DHCP_MAX_LEN];
  dhcp_frame f = {.src_ip = m->ciaddr, .dst_ip = 0xffffffffu, .src_port = 68, .dst_port = 67};
  f.payload = payload;
  f.payload_len = dhcp_msg_build(payload, sizeof payload, m);
  assert_true(f.payload_len > 0);
  memcpy(f.src_mac, vm_mac, 6);
  memset(f.dst_mac, 0xff, 6);
  send_frame(guest_fd, &f);
  sent++;
}

static dhcp_msg client_msg(uint8_t type, const uint8_t mac[6]) {
  dhcp_msg m = {.op = DHCP_BOOTREQUEST, .type = type, .xid = 0x5eed};
  memcpy(m.chaddr, mac, 6);
  return m;
}

static dhcp_msg request_ip(uint32_t ip, const char *hostname) {
  dhcp_msg m = client_msg(DHCP_REQUEST, vm_mac); /* init-reboot */
  m.has_requested_ip = true;
  m.requested_ip = ip;
  m.hostname_len = (uint8_t)strlen(hostname);
  memcpy(m.hostname, hostname, m.hostname_len);
  return m;
}

static dhcp_msg decline_ip(uint32_t ip) {
  dhcp_msg m = client_msg(DHCP_DECLINE, vm_mac);
  m.has_requested_ip = m.has_server_id = true;
  m.requested_ip = ip;
  m.server_id = SERVER_IP;
  return m;
}

/* qvm's server on vh as the shim runs it on a VM's tap. */
static qvm_dhcp_server *guest_server(const char *db, qvm_dhcp_server_options *o) {
  o->ifname = "vh";
  o->bridge = NET_TEST_BRIDGE;
  memcpy(o->client_mac, vm_mac, 6);
  o->lease_db = db;
  qvm_dhcp_server *s = NULL;
  qvm_error *err = NULL;
  if (qvm_dhcp_server_new(&s, o, &err) < 0) fail_msg("%s", qvm_error_message(err));
  sent = 0;
  return s;
}

static uint64_t received(const qvm_dhcp_server *s) {
  qvm_dhcp_stats st;
  qvm_dhcp_server_stats(&st, s);
  return st.received;
}

/* Serves until the server has parsed every frame the guest sent. */
static void serve_sent(qvm_dhcp_server *s) {
  int64_t deadline = qvm_now_ms() + WAIT_MS;
  while (received(s) < sent && qvm_deadline_left_ms(deadline) > 0) {
    struct pollfd p = {.fd = qvm_dhcp_server_fd(s), .events = POLLIN};
    poll(&p, 1, 50);
    qvm_error *err = NULL;
    if (qvm_dhcp_server_handle_readable(s, &err) < 0) fail_msg("%s", qvm_error_message(err));
  }
  if (received(s) < sent)
    fail_msg("the server saw %llu of %llu frames", (unsigned long long)received(s),
             (unsigned long long)sent);
}

/* Another VM's shim: a server for other_mac on the same lease db. */
static qvm_dhcp_server *other_vm_server(const char *db) {
  qvm_dhcp_server_options o = QVM_DHCP_SERVER_OPTIONS_INIT;
  memcpy(o.client_mac, other_mac, 6);
  o.lease_db = db;
  o.pool_start = "10.77.0.10";
  o.pool_end = "10.77.0.17";
  qvm_dhcp_server *s = NULL;
  if (qvm_dhcp_server_new(&s, &o, NULL) < 0) fail_msg("cannot make the other vm's server");
  return s;
}

/* The other VM's client in memory: the reply's type and address. */
static dhcp_msg other_vm_exchange(qvm_dhcp_server *s, const dhcp_msg *m) {
  uint8_t pkt[DHCP_MAX_LEN], reply[DHCP_MAX_LEN];
  size_t len = dhcp_msg_build(pkt, sizeof pkt, m), rlen = 0;
  assert_int_equal(
      qvm_dhcp_server_handle_packet(&rlen, NULL, s, pkt, len, other_mac, reply, sizeof reply, NULL),
      0);
  dhcp_msg out = {0};
  qvm_dhcp_stats st = {0};
  if (rlen) assert_int_equal(dhcp_msg_parse(&out, reply, rlen, &st), 0);
  return out;
}

/* DISCOVER + REQUEST for the other VM; its address, or 0 without one. */
static uint32_t other_vm_bind(qvm_dhcp_server *s) {
  dhcp_msg d = client_msg(DHCP_DISCOVER, other_mac);
  dhcp_msg offer = other_vm_exchange(s, &d);
  if (offer.type != DHCP_OFFER) return 0;
  dhcp_msg r = client_msg(DHCP_REQUEST, other_mac);
  r.has_server_id = r.has_requested_ip = true;
  r.server_id = SERVER_IP;
  r.requested_ip = offer.yiaddr;
  dhcp_msg ack = other_vm_exchange(s, &r);
  return ack.type == DHCP_ACK ? ack.yiaddr : 0;
}

static void make_db_path(char *out, size_t cap, const char *tag) {
  snprintf(out, cap, "%s/%s", dir, tag);
  assert_int_equal(mkdir(out, 0700), 0);
  snprintf(out + strlen(out), cap - strlen(out), "/" NET_TEST_BRIDGE ".leases");
}

static size_t declined_records(const char *db, uint32_t ip) {
  lease_table t = {0};
  assert_int_equal(lease_db_read(&t, db, NULL), 0);
  size_t n = 0;
  for (size_t i = 0; i < t.n; i++)
    if (t.v[i].state == LEASE_DECLINED && (!ip || t.v[i].ip == ip)) n++;
  lease_table_free(&t);
  return n;
}

/* (a) A DECLINE names an address; the guest names the other VM's. */
static void test_decline_of_another_vms_address(void **state) {
  (void)state;
  char db[512];
  make_db_path(db, sizeof db, "a");
  qvm_dhcp_server *other = other_vm_server(db);
  uint32_t theirs = other_vm_bind(other);
  assert_int_not_equal(theirs, 0);
  event_count ev = {0};
  qvm_dhcp_server_options o = QVM_DHCP_SERVER_OPTIONS_INIT;
  o.on_lease = count_event;
  o.userdata = &ev;
  /* Every DECLINE is to be refused for what it says, not for the rate. */
  o.message_rate = (qvm_dhcp_rate){.burst = 1000, .per_minute = 60000};
  qvm_dhcp_server *s = guest_server(db, &o);
  dhcp_msg dec = decline_ip(theirs);
  guest_send(&dec);
  dec.has_server_id = false; /* and without a server id */
  guest_send(&dec);
  for (uint32_t d = 1; d < 30; d++) { /* and every other address of the subnet's start */
    dhcp_msg any = decline_ip(IP(d));
    guest_send(&any);
  }
  serve_sent(s);
  qvm_net_lease lease;
  char want[QVM_NET_IP_MAX];
  struct in_addr a = {.s_addr = htonl(theirs)};
  inet_ntop(AF_INET, &a, want, sizeof want);
  assert_int_equal(qvm_net_lease_lookup(&lease, db, other_mac, NULL), 0);
  assert_string_equal(lease.ip, want);
  assert_int_equal(declined_records(db, 0), 0);
  qvm_dhcp_stats st;
  qvm_dhcp_server_stats(&st, s);
  assert_int_equal(st.declines, 0);
  assert_int_equal(st.declines_refused, sent);
  assert_int_equal(ev.declines, 0);
  /* The other VM still gets its address. */
  assert_int_equal(other_vm_bind(other), theirs);
  qvm_dhcp_server_free(s);
  qvm_dhcp_server_free(other);
}

/* (b) Bind, decline, bind the next, decline...: the guest must not walk
 * through the pool. The flood limits are lifted so that the cap on declines,
 * not the rate, is what stops it. */
static void test_declines_cannot_empty_the_pool(void **state) {
  (void)state;
  char db[512];
  make_db_path(db, sizeof db, "b");
  qvm_dhcp_server_options o = QVM_DHCP_SERVER_OPTIONS_INIT;
  o.pool_start = "10.77.0.10";
  o.pool_end = "10.77.0.17";
  o.message_rate = (qvm_dhcp_rate){.burst = 10000, .per_minute = 600000};
  o.change_rate = o.message_rate;
  qvm_dhcp_server *s = guest_server(db, &o);
  for (int sweep = 0; sweep < 4; sweep++) {
    for (uint32_t d = 10; d <= 17; d++) {
      dhcp_msg r = request_ip(IP(d), "greedy");
      guest_send(&r);
      dhcp_msg dec = decline_ip(IP(d));
      guest_send(&dec);
      serve_sent(s); /* in order: the DECLINE after its ACK */
    }
  }
  qvm_dhcp_server *other = other_vm_server(db);
  uint32_t theirs = other_vm_bind(other); /* another VM still gets an address */
  qvm_dhcp_server_free(other);
  assert_int_not_equal(theirs, 0);
  qvm_dhcp_stats st;
  qvm_dhcp_server_stats(&st, s);
  assert_true(st.declines <= QVM_DHCP_DECLINES_PER_MAC);
  assert_true(st.declines_refused > 0);
  assert_true(declined_records(db, 0) <= QVM_DHCP_DECLINES_PER_MAC);
  qvm_dhcp_server_free(s);
}

/* (b) Declined records are held for a while, not for ever: expired ones
 * no longer count against the cap and leave the db with its next write. */
static void test_declined_records_expire(void **state) {
  (void)state;
  char db[512];
  make_db_path(db, sizeof db, "b2");
  lease_table t = {0};
  int64_t now = (int64_t)time(NULL);
  for (uint32_t d = 20; d < 20 + QVM_DHCP_DECLINES_PER_MAC; d++) {
    lease_record rec = {.state = LEASE_DECLINED, .ip = IP(d), .expires = now - 1};
    memcpy(rec.mac, vm_mac, 6);
    assert_int_equal(lease_table_put(&t, &rec), 0);
  }
  lease_record bound = {.state = LEASE_BOUND, .ip = IP(10), .expires = now + 3600};
  memcpy(bound.mac, vm_mac, 6);
  assert_int_equal(lease_table_put(&t, &bound), 0);
  assert_int_equal(lease_db_write(&t, db, NULL), 0);
  lease_table_free(&t);
  qvm_dhcp_server_options o = QVM_DHCP_SERVER_OPTIONS_INIT;
  memcpy(o.client_mac, vm_mac, 6);
  o.lease_db = db;
  qvm_dhcp_server *s = NULL;
  assert_int_equal(qvm_dhcp_server_new(&s, &o, NULL), 0);
  dhcp_msg dec = decline_ip(IP(10));
  uint8_t pkt[DHCP_MAX_LEN], reply[DHCP_MAX_LEN];
  size_t len = dhcp_msg_build(pkt, sizeof pkt, &dec), rlen = 0;
  assert_int_equal(
      qvm_dhcp_server_handle_packet(&rlen, NULL, s, pkt, len, vm_mac, reply, sizeof reply, NULL),
      0);
  qvm_dhcp_stats st;
  qvm_dhcp_server_stats(&st, s);
  qvm_dhcp_server_free(s);
  assert_int_equal(st.declines, 1);
  assert_int_equal(declined_records(db, 0), 1); /* the new one; the expired are gone */
  assert_int_equal(declined_records(db, IP(10)), 1);
}

/* Counts the renames onto the lease db (each lease-db write is one). */
static int db_writes(int ifd, const char *name) {
  int n = 0;
  char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
  ssize_t len;
  while ((len = read(ifd, buf, sizeof buf)) > 0) {
    for (char *p = buf; p < buf + len;) {
      struct inotify_event *e = (struct inotify_event *)p;
      if ((e->mask & IN_MOVED_TO) && e->len && strcmp(e->name, name) == 0) n++;
      p += sizeof *e + e->len;
    }
  }
  return n;
}

typedef dhcp_msg (*flood_msg)(int i);

static dhcp_msg renewal(int i) {
  (void)i;
  dhcp_msg m = client_msg(DHCP_REQUEST, vm_mac); /* renewing: ciaddr */
  m.ciaddr = IP(10);
  m.hostname_len = 5;
  memcpy(m.hostname, "guest", 5);
  return m;
}

static dhcp_msg renamed_renewal(int i) {
  dhcp_msg m = renewal(i);
  m.hostname_len = (uint8_t)snprintf(m.hostname, sizeof m.hostname, "guest-%d", i);
  return m;
}

/* Sends FLOOD messages in batches, serving each batch, and stops early once
 * the lease db was written more than max_writes times; the elapsed ms. */
static int64_t flood(qvm_dhcp_server *s, flood_msg make, int ifd, int *writes, int max_writes) {
  int64_t start = qvm_now_ms(), deadline = start + FLOOD_MS;
  for (int i = 0; i < FLOOD && *writes <= max_writes && qvm_deadline_left_ms(deadline) > 0;) {
    for (int k = 0; k < BATCH && i < FLOOD; k++, i++) {
      dhcp_msg m = make(i);
      guest_send(&m);
    }
    serve_sent(s);
    *writes += db_writes(ifd, NET_TEST_BRIDGE ".leases");
  }
  return qvm_now_ms() - start;
}

/* How many tokens a bucket can have given in elapsed ms. */
static uint64_t budget(qvm_dhcp_rate r, int64_t elapsed_ms) {
  return r.burst + (uint64_t)elapsed_ms * r.per_minute / 60000 + 1;
}

typedef struct flood_setup {
  char db[512];
  int64_t started_ms; /* the server's buckets start full here */
  int ifd, writes;
  event_count ev;
  qvm_dhcp_server *server;
} flood_setup;

/* A server watched by inotify on its db's directory, with the guest bound
 * to .10 as "guest" (one event, one write). */
static void flood_start(flood_setup *f, const char *tag, qvm_dhcp_server_options *o) {
  char sub[512];
  make_db_path(f->db, sizeof f->db, tag);
  snprintf(sub, sizeof sub, "%s/%s", dir, tag);
  f->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  assert_true(f->ifd >= 0);
  /* Not IN_MOVED_TO alone: inotify merges identical events in a row. */
  assert_true(inotify_add_watch(f->ifd, sub, IN_CREATE | IN_MOVED_FROM | IN_MOVED_TO) >= 0);
  o->on_lease = count_event;
  o->userdata = &f->ev;
  f->started_ms = qvm_now_ms();
  f->server = guest_server(f->db, o);
  dhcp_msg bind = request_ip(IP(10), "guest");
  guest_send(&bind);
  serve_sent(f->server);
  f->writes = db_writes(f->ifd, NET_TEST_BRIDGE ".leases");
  assert_int_equal(f->ev.acks, 1);
  assert_int_equal(f->writes, 1);
}

static void flood_report(const flood_setup *f, const char *what, int64_t ms) {
  qvm_dhcp_stats st;
  qvm_dhcp_server_stats(&st, f->server);
  fprintf(stderr,
          "%s: %llu sent in %lld ms, %llu acks, %llu rate limited, %d events, %d db writes\n", what,
          (unsigned long long)sent, (long long)ms, (unsigned long long)st.acks,
          (unsigned long long)st.rate_limited, f->ev.acks, f->writes);
}

/* (c) 20,000 renewals that change nothing, at qvm's default limits. */
static void test_renewal_flood(void **state) {
  (void)state;
  flood_setup f = {0};
  qvm_dhcp_server_options o = QVM_DHCP_SERVER_OPTIONS_INIT;
  flood_start(&f, "c1", &o);
  int64_t ms = flood(f.server, renewal, f.ifd, &f.writes, 100);
  flood_report(&f, "renewals", ms);
  ms = qvm_now_ms() - f.started_ms; /* all the time the buckets had to refill */
  qvm_dhcp_stats st;
  qvm_dhcp_server_stats(&st, f.server);
  assert_int_equal(f.ev.acks, 1); /* nothing changed: nothing reported */
  assert_int_equal(f.writes, 1);  /* nor written */
  assert_int_equal(st.lease_writes, 1);
  qvm_dhcp_rate messages = QVM_DHCP_MESSAGE_RATE_DEFAULT;
  uint64_t answered = st.acks + st.naks;
  assert_true(answered <= budget(messages, ms)); /* the rest was dropped unanswered */
  assert_int_equal(st.rate_limited, sent - answered);
  close(f.ifd);
  qvm_dhcp_server_free(f.server);
}

/* (c) 20,000 REQUESTs with a new hostname each. The message limit is lifted
 * so that every one is handled: the lease db and the events must still not
 * follow each new name. */
static void test_hostname_flood(void **state) {
  (void)state;
  flood_setup f = {0};
  qvm_dhcp_server_options o = QVM_DHCP_SERVER_OPTIONS_INIT;
  o.message_rate = (qvm_dhcp_rate){.burst = FLOOD * 2, .per_minute = 6000000};
  flood_start(&f, "c2", &o);
  qvm_dhcp_rate changes = QVM_DHCP_CHANGE_RATE_DEFAULT;
  int64_t ms =
      flood(f.server, renamed_renewal, f.ifd, &f.writes, (int)budget(changes, FLOOD_MS) + 1);
  flood_report(&f, "renamed", ms);
  ms = qvm_now_ms() - f.started_ms;
  qvm_dhcp_stats st;
  qvm_dhcp_server_stats(&st, f.server);
  assert_true((uint64_t)f.writes <= budget(changes, ms));
  assert_true((uint64_t)f.ev.acks <= budget(changes, ms) + 1);
  assert_int_equal(st.lease_writes, f.writes);
  assert_true(st.acks > FLOOD / 2); /* they were answered */
  /* New names do reach the db, within the change rate. */
  qvm_net_lease lease;
  assert_int_equal(qvm_net_lease_lookup(&lease, f.db, vm_mac, NULL), 0);
  assert_int_equal(strncmp(lease.hostname, "guest-", 6), 0);
  close(f.ifd);
  qvm_dhcp_server_free(f.server);
}

static unsigned file_mode(const char *path) {
  struct stat st;
  if (stat(path, &st) < 0) fail_msg("cannot stat '%s'", path);
  return st.st_mode & 07777;
}

/* (d) The lease db names every VM's MAC, address and guest-chosen hostname. */
static void test_lease_db_mode(void **state) {
  (void)state;
  char db[512], lock[600];
  make_db_path(db, sizeof db, "d");
  snprintf(lock, sizeof lock, "%s.lock", db);
  qvm_dhcp_server_options o = QVM_DHCP_SERVER_OPTIONS_INIT;
  qvm_dhcp_server *s = guest_server(db, &o);
  dhcp_msg bind = request_ip(IP(10), "guest");
  guest_send(&bind);
  serve_sent(s);
  qvm_dhcp_server_free(s);
  assert_int_equal(file_mode(db), 0600);
  assert_int_equal(file_mode(lock), 0600);
  /* A db and lock an older qvm left 0644 are tightened. */
  assert_int_equal(chmod(db, 0644), 0);
  assert_int_equal(chmod(lock, 0644), 0);
  s = guest_server(db, &o);
  qvm_dhcp_server_free(s);
  assert_int_equal(file_mode(db), 0600);
  assert_int_equal(file_mode(lock), 0600);
}

static uint64_t watcher_seen(const qvm_net_watcher *w) {
  qvm_dhcp_stats st;
  qvm_net_watcher_stats(&st, w);
  return st.received + st.bad_frame + st.from_guest;
}

/* A server's DHCPACK giving the VM ip. */
static void ack_frame(dhcp_frame *f, uint8_t *payload, uint32_t ip, const uint8_t src[6],
                      const uint8_t dst[6]) {
  dhcp_msg m = {.op = DHCP_BOOTREPLY, .type = DHCP_ACK, .xid = 7, .yiaddr = ip};
  memcpy(m.chaddr, vm_mac, 6);
  m.has_server_id = m.has_lease_time = true;
  m.server_id = SERVER_IP;
  m.lease_time = 3600;
  *f = (dhcp_frame){.src_ip = SERVER_IP, .dst_ip = ip, .src_port = 67, .dst_port = 68};
  f->payload = payload;
  f->payload_len = dhcp_msg_build(payload, DHCP_MAX_LEN, &m);
  memcpy(f->src_mac, src, 6);
  memcpy(f->dst_mac, dst, 6);
}

/* Drains the watcher until it has seen n frames or learned an address. */
static int watch(char *ip, qvm_net_watcher *w, uint64_t n) {
  int64_t deadline = qvm_now_ms() + WAIT_MS;
  int found = 0;
  while (!found && watcher_seen(w) < n && qvm_deadline_left_ms(deadline) > 0) {
    struct pollfd p = {.fd = qvm_net_watcher_fd(w), .events = POLLIN};
    poll(&p, 1, 50);
    qvm_error *err = NULL;
    found = qvm_net_watcher_handle_readable(ip, w, &err);
    if (found < 0) fail_msg("%s", qvm_error_message(err));
  }
  return found;
}

/* (e) dhcp=external: the guest forges the ACK the watcher waits for. */
static void test_watcher_ignores_forged_ack(void **state) {
  (void)state;
  qvm_net_watcher *w = NULL;
  qvm_error *err = NULL;
  if (qvm_net_watcher_new(&w, "vh", vm_mac, &err) < 0) fail_msg("%s", qvm_error_message(err));
  static const uint8_t fake_server[6] = {0x02, 0, 0, 0, 0, 0x67};
  static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  uint8_t payload[DHCP_MAX_LEN];
  dhcp_frame f;
  /* From the VM's own MAC, then from a made-up server's, to the broadcast
   * address and to the VM's own MAC. */
  const uint8_t *forged[][2] = {{vm_mac, bcast}, {fake_server, bcast}, {fake_server, vm_mac}};
  for (size_t i = 0; i < QVM_ARRAY_SIZE(forged); i++) {
    ack_frame(&f, payload, IP(66), forged[i][0], forged[i][1]);
    send_frame(guest_fd, &f);
  }
  char ip[QVM_NET_IP_MAX] = "";
  int found = watch(ip, w, QVM_ARRAY_SIZE(forged));
  if (found) fail_msg("the watcher believed the guest's forged ack for '%s'", ip);
  qvm_dhcp_stats st;
  qvm_net_watcher_stats(&st, w);
  assert_int_equal(st.from_guest, QVM_ARRAY_SIZE(forged));
  assert_int_equal(st.acks, 0);
  /* The real server's ACK reaches the guest through the bridge. */
  unsigned br = 0;
  assert_int_equal(qvm_net_link_index(&br, NET_TEST_BRIDGE, NULL), 0);
  int host_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  assert_true(host_fd >= 0);
  struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = (int)br};
  assert_int_equal(bind(host_fd, (struct sockaddr *)&sll, sizeof sll), 0);
  static const uint8_t real_server[6] = {0x02, 0, 0, 0, 0, 0x01};
  ack_frame(&f, payload, IP(77), real_server, vm_mac);
  send_frame(host_fd, &f);
  found = watch(ip, w, UINT64_MAX);
  close(host_fd);
  qvm_net_watcher_free(w);
  if (!found) fail_msg("the watcher missed the server's ack within %d ms", WAIT_MS);
  assert_string_equal(ip, "10.77.0.77");
}

int main(void) {
  qvm_test_require_root();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decline_of_another_vms_address),
      cmocka_unit_test(test_declines_cannot_empty_the_pool),
      cmocka_unit_test(test_declined_records_expire),
      cmocka_unit_test(test_renewal_flood),
      cmocka_unit_test(test_hostname_flood),
      cmocka_unit_test(test_lease_db_mode),
      cmocka_unit_test(test_watcher_ignores_forged_ack),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
