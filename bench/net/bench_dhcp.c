/* SPDX-License-Identifier: MIT */
/*
 * DISCOVER -> OFFER -> REQUEST -> ACK latency, qvm's DHCP server against
 * dnsmasq, in the same run and the same netns topology (bridge + veth, the
 * client in a guest netns), driven by one raw-socket client. Prints p50/p99
 * for both and the ratio. Needs root; all traffic stays in the netns pair.
 *
 *   bench_dhcp [exchanges]    (default 1000)
 */
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/dhcp_codec.h"
#include "net/dhcp_frame.h"
#include "net_testlib.h"
#include "testlib.h"
#include "util/time.h"

static net_test_topology topo;
static uint8_t vm_mac[6];
static char *dir;

static int client_socket(void) {
  net_test_netns_enter(topo.guest);
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_IP));
  unsigned idx = 0;
  qvm_net_link_index(&idx, "vg", NULL);
  struct sockaddr_ll sll = {
      .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP), .sll_ifindex = (int)idx};
  if (fd < 0 || bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) abort();
  net_test_netns_enter(topo.host);
  return fd;
}

static void send_msg(int fd, const dhcp_msg *m) {
  uint8_t payload[DHCP_MAX_LEN], frame[DHCP_FRAME_MAX];
  dhcp_frame f = {.dst_ip = 0xffffffffu, .src_port = 68, .dst_port = 67, .payload = payload};
  f.payload_len = dhcp_msg_build(payload, sizeof payload, m);
  memcpy(f.src_mac, vm_mac, 6);
  memset(f.dst_mac, 0xff, 6);
  size_t n = dhcp_frame_build(frame, sizeof frame, &f);
  if (send(fd, frame, n, 0) != (ssize_t)n) abort();
}

/* Waits for a reply of type `type` to xid; false after 2 s. */
static bool await(int fd, uint32_t xid, uint8_t type, dhcp_msg *out) {
  int64_t deadline = qvm_now_ms() + 2000;
  while (qvm_deadline_left_ms(deadline) > 0) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, qvm_deadline_left_ms(deadline)) <= 0) continue;
    uint8_t buf[2048];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    dhcp_frame f;
    qvm_dhcp_stats st = {0};
    if (n <= 0 || dhcp_frame_parse(&f, buf, (size_t)n) < 0 || f.dst_port != 68) continue;
    if (dhcp_msg_parse(out, f.payload, f.payload_len, &st) == 0 && out->xid == xid &&
        out->type == type)
      return true;
  }
  return false;
}

static bool exchange(int fd, uint32_t xid, int64_t *out_us) {
  dhcp_msg d = {
      .op = DHCP_BOOTREQUEST, .type = DHCP_DISCOVER, .xid = xid, .flags = DHCP_FLAG_BROADCAST};
  memcpy(d.chaddr, vm_mac, 6);
  dhcp_msg offer, ack;
  int64_t t0 = qvm_now_us();
  send_msg(fd, &d);
  if (!await(fd, xid, DHCP_OFFER, &offer)) return false;
  dhcp_msg r = d;
  r.type = DHCP_REQUEST;
  r.has_server_id = r.has_requested_ip = true;
  r.server_id = offer.server_id;
  r.requested_ip = offer.yiaddr;
  send_msg(fd, &r);
  if (!await(fd, xid, DHCP_ACK, &ack)) return false;
  *out_us = qvm_now_us() - t0;
  return true;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

typedef struct result {
  double p50, p99, mean;
  int ok, failed;
} result;

static result run(int fd, int n, uint32_t xid_base) {
  int64_t *lat = calloc((size_t)n, sizeof *lat);
  result r = {0};
  double sum = 0;
  for (int i = 0; i < n; i++) {
    int64_t us = 0;
    if (exchange(fd, xid_base + (uint32_t)i, &us)) {
      lat[r.ok++] = us;
      sum += (double)us;
    } else {
      r.failed++;
    }
  }
  if (r.ok) {
    qsort(lat, (size_t)r.ok, sizeof *lat, cmp_i64);
    r.p50 = (double)lat[r.ok / 2];
    r.p99 = (double)lat[(r.ok * 99) / 100 < r.ok ? (r.ok * 99) / 100 : r.ok - 1];
    r.mean = sum / r.ok;
  }
  free(lat);
  return r;
}

static pid_t start_qvm_server(void) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid != 0) return pid;
  char db[600];
  snprintf(db, sizeof db, "%s/qvmbr0.leases", dir);
  qvm_dhcp_server_options o = QVM_DHCP_SERVER_OPTIONS_INIT;
  o.ifname = NET_TEST_BRIDGE;
  memcpy(o.client_mac, vm_mac, 6);
  o.lease_db = db;
  /* The per-VM flood limit (2 messages a second after a burst of 20) would
   * drop most of this run's 1000 back-to-back exchanges: lifted, so both
   * servers do the same work (dnsmasq has no such limit by default). */
  o.message_rate = (qvm_dhcp_rate){.burst = 100000, .per_minute = 6000000};
  qvm_dhcp_server *s = NULL;
  qvm_error *err = NULL;
  if (qvm_dhcp_server_new(&s, &o, &err) < 0) {
    fprintf(stderr, "qvm server: %s\n", qvm_error_message(err));
    _exit(1);
  }
  for (;;) {
    struct pollfd p = {.fd = qvm_dhcp_server_fd(s), .events = POLLIN};
    poll(&p, 1, -1);
    if (qvm_dhcp_server_handle_readable(s, &err) < 0) _exit(1);
  }
}

static void print(const char *name, const result *r) {
  printf("%-8s p50 %8.1f us   p99 %8.1f us   mean %8.1f us   (%d ok, %d failed)\n", name, r->p50,
         r->p99, r->mean, r->ok, r->failed);
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1000;
  if (n <= 0) n = 1000;
  qvm_test_require_root();
  qvm_test_require_program("dnsmasq");
  qvm_net_mac_parse(vm_mac, NET_TEST_VM_MAC, NULL);
  net_test_topology_create(&topo, "bench");
  dir = qvm_test_mkdtemp("bench-dhcp");
  int fd = client_socket();

  pid_t qvm = start_qvm_server();
  usleep(200 * 1000);
  run(fd, 20, 0x10000000); /* warm-up */
  result rq = run(fd, n, 0x20000000);
  kill(qvm, SIGKILL);
  waitpid(qvm, NULL, 0);

  int dns = net_test_spawn(
      topo.host,
      "exec dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --port=0 "
      "--user=root --interface=" NET_TEST_BRIDGE " --bind-interfaces --quiet-dhcp --no-ping "
      "--dhcp-range=10.77.0.10,10.77.0.250,255.255.255.0,1h --dhcp-authoritative "
      "--dhcp-leasefile=%1$s/dnsmasq.leases >%1$s/dnsmasq.log 2>&1",
      dir);
  for (int i = 0; i < 100 && qvm_test_sh("grep -q 'IP range' %s/dnsmasq.log 2>/dev/null", dir) != 0;
       i++)
    usleep(50 * 1000);
  run(fd, 20, 0x30000000);
  result rd = run(fd, n, 0x40000000);
  net_test_kill(dns);
  close(fd);

  printf("DHCP DISCOVER->ACK latency, %d exchanges each, same netns topology and client\n", n);
  print("qvm", &rq);
  print("dnsmasq", &rd);
  if (rd.p50 > 0 && rd.p99 > 0)
    printf("ratio qvm/dnsmasq: p50 %.2f  p99 %.2f\n", rq.p50 / rd.p50, rq.p99 / rd.p99);
  qvm_test_rmtree(dir);
  free(dir);
  return rq.ok && rd.ok ? 0 : 1;
}
