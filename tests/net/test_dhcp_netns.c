/* SPDX-License-Identifier: MIT */
/*
 * Over real sockets in private network namespaces:
 * - the hostile corpus is sent at qvm's server: no crash, every packet is
 *   counted as a drop, the lease db is untouched;
 * - the passive watcher learns the guest's address from dnsmasq's DHCPACK;
 * - the neighbour-table fallback finds it too.
 */
#include <dirent.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <arpa/inet.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/dhcp_frame.h"
#include "net_testlib.h"
#include "testlib.h"
#include "util/fs.h"
#include "util/time.h"

#define WAIT_MS 30000

static net_test_topology topo;
static char *dir;
static uint8_t vm_mac[6];

static int group_setup(void **state) {
  (void)state;
  net_test_topology_create(&topo, "dns");
  dir = qvm_test_mkdtemp("dhcp-netns");
  qvm_net_mac_parse(vm_mac, NET_TEST_VM_MAC, NULL);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  qvm_test_rmtree(dir);
  free(dir);
  return 0;
}

/* An AF_PACKET socket on the guest's vg, made inside the guest netns. */
static int guest_packet_socket(void) {
  net_test_netns_enter(topo.guest);
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_IP));
  struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP)};
  unsigned idx = 0;
  assert_int_equal(qvm_net_link_index(&idx, "vg", NULL), 0);
  sll.sll_ifindex = (int)idx;
  assert_int_equal(bind(fd, (struct sockaddr *)&sll, sizeof sll), 0);
  net_test_netns_enter(topo.host);
  return fd;
}

static void send_payload(int fd, const uint8_t *payload, size_t len, bool break_checksum) {
  dhcp_frame f = {.src_ip = 0,
                  .dst_ip = 0xffffffffu,
                  .src_port = 68,
                  .dst_port = 67,
                  .payload = payload,
                  .payload_len = len};
  memcpy(f.src_mac, vm_mac, 6);
  memset(f.dst_mac, 0xff, 6);
  uint8_t frame[DHCP_FRAME_MAX];
  size_t n = dhcp_frame_build(frame, sizeof frame, &f);
  assert_true(n > 0);
  if (break_checksum) frame[14 + 10] ^= 0x55;
  assert_int_equal(send(fd, frame, n, 0), (ssize_t)n);
}

static uint64_t seen(const qvm_dhcp_server *s) {
  qvm_dhcp_stats st;
  qvm_dhcp_server_stats(&st, s);
  return st.received + st.bad_frame;
}

static void test_hostile_corpus_over_socket(void **state) {
  (void)state;
  char db[512];
  snprintf(db, sizeof db, "%s/hostile.leases", dir);
  qvm_dhcp_server_options o = QVM_DHCP_SERVER_OPTIONS_INIT;
  o.ifname = NET_TEST_BRIDGE;
  memcpy(o.client_mac, vm_mac, 6);
  o.lease_db = db;
  qvm_dhcp_server *server = NULL;
  qvm_error *err = NULL;
  if (qvm_dhcp_server_new(&server, &o, &err) < 0) fail_msg("%s", qvm_error_message(err));
  int fd = guest_packet_socket();
  char corpus[600];
  snprintf(corpus, sizeof corpus, "%s/tests/net/corpus/dhcp", qvm_test_source_dir());
  struct dirent **names = NULL;
  int n = scandir(corpus, &names, NULL, alphasort);
  assert_true(n > 2);
  uint64_t sent = 0;
  for (int i = 0; i < n; i++) {
    char *dot = strstr(names[i]->d_name, ".bin");
    if (dot) {
      *dot = '\0';
      size_t len = 0;
      uint8_t *data = net_test_corpus_file(&len, "dhcp", names[i]->d_name);
      send_payload(fd, data, len, false);
      free(data);
      sent++;
    }
    free(names[i]);
  }
  free(names);
  int64_t deadline = qvm_now_ms() + WAIT_MS;
  while (seen(server) < sent && qvm_deadline_left_ms(deadline) > 0) {
    struct pollfd p = {.fd = qvm_dhcp_server_fd(server), .events = POLLIN};
    poll(&p, 1, 100);
    assert_int_equal(qvm_dhcp_server_handle_readable(server, NULL), 0);
  }
  qvm_dhcp_stats st;
  qvm_dhcp_server_stats(&st, server);
  assert_int_equal(seen(server), sent);
  assert_int_equal(net_test_drops(&st), sent); /* every one dropped and counted */
  assert_true(st.truncated >= 3 && st.option_overrun >= 2 && st.option_overload >= 1);
  assert_true(st.missing_end >= 2 && st.bad_option_length >= 7 && st.foreign_mac >= 1);
  assert_int_equal(st.offers + st.acks + st.naks + st.releases + st.declines + st.informs, 0);
  assert_int_equal(access(db, F_OK), -1); /* the lease db was never written */
  close(fd);
  qvm_dhcp_server_free(server);
}

/* dnsmasq writes no pid file with --no-daemon: its log says when it serves. */
static bool dnsmasq_ready(void) {
  return qvm_test_sh("grep -q 'IP range' %s/dnsmasq.log 2>/dev/null", dir) == 0;
}

static void test_watcher_learns_from_dnsmasq(void **state) {
  (void)state;
  qvm_test_require_program("dnsmasq");
  qvm_test_require_program("udhcpc");
  qvm_test_require_program("busybox");
  qvm_net_watcher *w = NULL;
  qvm_error *err = NULL;
  /* vh stands in for the VM's tap: the guest's side of the bridge. */
  if (qvm_net_watcher_new(&w, "vh", vm_mac, &err) < 0) fail_msg("%s", qvm_error_message(err));
  int dns = net_test_spawn(
      topo.host,
      "exec dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --port=0 "
      "--user=root --interface=" NET_TEST_BRIDGE " --bind-interfaces "
      "--dhcp-range=10.77.0.100,10.77.0.150,255.255.255.0,1h --dhcp-authoritative "
      "--dhcp-leasefile=%1$s/dnsmasq.leases --pid-file=%1$s/dnsmasq.pid "
      ">%1$s/dnsmasq.log 2>&1",
      dir);
  int64_t deadline = qvm_now_ms() + WAIT_MS;
  while (!dnsmasq_ready() && qvm_deadline_left_ms(deadline) > 0) usleep(50 * 1000);
  int cli = net_test_spawn(topo.guest,
                           "exec udhcpc -f -q -i vg -s /bin/true -t 20 -T 1 -A 1 "
                           ">%s/udhcpc.log 2>&1",
                           dir);
  char ip[QVM_NET_IP_MAX] = "";
  int found = 0;
  while (!found && qvm_deadline_left_ms(deadline) > 0) {
    struct pollfd p = {.fd = qvm_net_watcher_fd(w), .events = POLLIN};
    poll(&p, 1, 100);
    found = qvm_net_watcher_handle_readable(ip, w, &err);
    if (found < 0) fail_msg("%s", qvm_error_message(err));
  }
  net_test_kill(cli);
  net_test_kill(dns);
  qvm_dhcp_stats st;
  qvm_net_watcher_stats(&st, w);
  if (!found)
    fprintf(stderr, "watcher: %llu parsed, %llu bad frames, %llu other macs, %llu not acks\n",
            (unsigned long long)st.received, (unsigned long long)st.bad_frame,
            (unsigned long long)st.foreign_mac, (unsigned long long)st.not_for_us);
  qvm_net_watcher_free(w);
  if (!found) qvm_test_sh("cat %1$s/dnsmasq.log %1$s/udhcpc.log >&2", dir);
  if (!found) fail_msg("the watcher saw no DHCPACK within %d ms", WAIT_MS);
  char *leases = NULL;
  size_t len = 0;
  char path[600];
  snprintf(path, sizeof path, "%s/dnsmasq.leases", dir);
  assert_int_equal(qvm_read_file(&leases, &len, path, 1 << 20, NULL), 0);
  assert_non_null(strstr(leases, NET_TEST_VM_MAC));
  assert_non_null(strstr(leases, ip)); /* what dnsmasq handed out */
  assert_int_equal(strncmp(ip, "10.77.0.1", 9), 0);
  free(leases);
  /* The fallback: once the host has talked to the guest, its neighbour
   * table knows the MAC. */
  assert_int_equal(qvm_test_sh("ip -n %s addr add %s/24 dev vg", topo.guest, ip), 0);
  assert_int_equal(
      qvm_test_sh("ip netns exec %s busybox ping -c1 -W5 %s >/dev/null", topo.host, ip), 0);
  unsigned idx = 0;
  assert_int_equal(qvm_net_link_index(&idx, NET_TEST_BRIDGE, NULL), 0);
  char neigh[QVM_NET_IP_MAX];
  if (qvm_net_neigh_lookup(neigh, vm_mac, idx, &err) < 0) fail_msg("%s", qvm_error_message(err));
  assert_string_equal(neigh, ip);
  assert_string_equal(qvm_net_ip_source_name(QVM_NET_IP_SOURCE_NEIGH), "neighbour");
  uint8_t other[6] = {0x0a, 0, 0, 0, 0, 1};
  assert_int_equal(qvm_net_neigh_lookup(neigh, other, 0, NULL), QVM_ENOTFOUND);
}

int main(void) {
  qvm_test_require_root();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hostile_corpus_over_socket),
      cmocka_unit_test(test_watcher_learns_from_dnsmasq),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
