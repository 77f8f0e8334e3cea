/* SPDX-License-Identifier: MIT */
/*
 * Isolated bridge ports (qvm_net_isolate_apply, what the shim installs for
 * `qvm sandbox create --net isolated-bridge`), attacked by their guests.
 *
 * Namespaces this test creates: "host" with a bridge made and NATed by
 * qvm's library and an uplink veth to "outside" (the allow-list's
 * destinations); guests A and B on isolated ports and C on a plain port of
 * the bridge (a veth enslaved to it, named as a VM's tap, exactly where the
 * tap sits). A may open TCP 10.98.0.2:7000 and UDP 10.98.0.2:7001; B only
 * TCP 10.98.0.2:7002. Traffic: TCP to busybox nc servers, UDP to a python
 * echo, ICMP with ping.
 *
 * QVM_TEST_ISOLATE_OFF=1 leaves the rules out: every "dropped" assertion
 * then fails (how this test was checked to test something).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <nftables/libnftables.h>

#include "net_testlib.h"
#include "testlib.h"

#define TAP_A "qvm-aaaa0001"
#define TAP_B "qvm-bbbb0002"
#define MAC_A "0a:00:00:00:00:0a"
#define MAC_B "0a:00:00:00:00:0b"
#define IP_A "10.83.0.10"
#define IP_B "10.83.0.11"
#define IP_C "10.83.0.12"
#define HOST_IP "10.83.0.1"
#define OUT_IP "10.98.0.2"
#define OUT_IP2 "10.98.0.3"

static char host[32], outside[32], ga[32], gb[32], gc[32], *tmp, *ruleset_before;

static void sh_or_abort(const char *what, int rc) {
  if (rc != 0) {
    fprintf(stderr, "isolation_bridge: setting up %s failed\n", what);
    abort();
  }
}

/* `nft list ruleset` in the host netns (the context's socket is opened in
 * the netns it is made in). */
static char *ruleset(void) {
  /* Without br_netfilter's call into iptables (Debian's default unless
   * something loads it) IP prerouting runs after the bridge's input hook,
   * where our mark is set: the reset then takes it away. Per netns. */
  qvm_test_sh("ip netns exec %s sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null", host);
  net_test_netns_enter(host);
  struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
  assert_non_null(nft);
  nft_ctx_buffer_output(nft);
  nft_ctx_buffer_error(nft);
  int r = nft_run_cmd_from_buffer(nft, "list ruleset");
  net_test_netns_leave();
  assert_int_equal(r, 0);
  char *out = strdup(nft_ctx_get_output_buffer(nft));
  nft_ctx_free(nft);
  return out;
}

static void add_guest(char *ns, const char *tag, const char *port, const char *mac,
                      const char *addr) {
  net_test_netns_create(ns, tag);
  sh_or_abort(tag, qvm_test_sh("ip -n %s link add %s type veth peer name eth0 netns %s && "
                               "ip -n %s link set %s master qvmiso up && "
                               "ip -n %s link set eth0 address %s && "
                               "ip -n %s addr add %s/24 dev eth0 && ip -n %s link set eth0 up && "
                               "ip -n %s route add default via " HOST_IP,
                               host, port, ns, host, port, ns, mac, ns, addr, ns, ns));
}

/* A TCP server on port in ns answering "reached-<name>-<port>". */
static void serve_tcp(const char *ns, const char *name, int port) {
  char script[512];
  snprintf(script, sizeof script, "%s/srv-%s-%d.sh", tmp, name, port);
  FILE *f = fopen(script, "w");
  assert_non_null(f);
  fprintf(f, "#!/bin/sh\necho reached-%s-%d\n", name, port);
  fclose(f);
  chmod(script, 0755);
  net_test_spawn(ns, "exec busybox nc -ll -p %d -e %s", port, script);
}

/* A UDP server answering each datagram with "reached-<name>-<port>". */
static void serve_udp(const char *ns, const char *name, int port) {
  net_test_spawn(ns,
                 "exec python3 -c 'import socket\n"
                 "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                 "s.bind((\"0.0.0.0\",%d))\n"
                 "while True:\n"
                 "  d,a=s.recvfrom(100)\n"
                 "  s.sendto(b\"reached-%s-%d\",a)'",
                 port, name, port);
}

/* The host's "other DHCP server": UDP 67, answering to the client's 68. */
static void serve_dhcp(const char *ns) {
  net_test_spawn(ns, "exec python3 -c 'import socket\n"
                     "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                     "s.bind((\"0.0.0.0\",67))\n"
                     "while True:\n"
                     "  d,a=s.recvfrom(100)\n"
                     "  s.sendto(b\"reached-dhcp-67\",a)'");
}

static void wait_listening(const char *ns, const char *flag, int port) {
  assert_int_equal(qvm_test_sh("for i in $(seq 100); do ip netns exec %s ss -ln%s | "
                               "grep -q ':%d ' && exit 0; sleep 0.1; done; exit 1",
                               ns, flag, port),
                   0);
}

static bool output_is(char *out, const char *name, int port) {
  char want[64];
  snprintf(want, sizeof want, "reached-%s-%d", name, port);
  bool ok = out && !strcmp(out, want);
  free(out);
  return ok;
}

/* Whether TCP from ns to addr:port reaches the server `name` there. */
static bool tcp_reaches(const char *ns, const char *addr, int port, const char *name) {
  return output_is(qvm_test_sh_output("ip netns exec %s busybox nc -w 3 %s %d </dev/null "
                                      "2>/dev/null",
                                      ns, addr, port),
                   name, port);
}

static bool udp_reaches(const char *ns, const char *addr, int port, const char *name) {
  return output_is(qvm_test_sh_output("ip netns exec %s python3 -c 'import socket\n"
                                      "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                                      "s.settimeout(2)\n"
                                      "s.sendto(b\"x\",(\"%s\",%d))\n"
                                      "try: print(s.recv(100).decode())\n"
                                      "except OSError: pass' 2>/dev/null",
                                      ns, addr, port),
                   name, port);
}

/* UDP from port 68 (a DHCP client's) to addr:67. */
static bool dhcp_reaches(const char *ns, const char *addr) {
  return output_is(qvm_test_sh_output("ip netns exec %s python3 -c 'import socket\n"
                                      "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                                      "s.bind((\"0.0.0.0\",68))\n"
                                      "s.settimeout(2)\n"
                                      "s.sendto(b\"x\",(\"%s\",67))\n"
                                      "try: print(s.recv(100).decode())\n"
                                      "except OSError: pass' 2>/dev/null",
                                      ns, addr),
                   "dhcp", 67);
}

static bool pings(const char *ns, const char *addr) {
  return qvm_test_sh("ip netns exec %s busybox ping -c 1 -W 2 %s >/dev/null 2>&1", ns, addr) == 0;
}

static void isolate(const char *tap, const char *mac, const char *ip, const qvm_net_egress *egress,
                    size_t n) {
  unsigned idx = 0;
  qvm_error *err = NULL;
  net_test_netns_enter(host);
  int r = qvm_net_link_index(&idx, tap, &err);
  qvm_net_isolate_options o = {.tap = tap,
                               .tap_index = idx,
                               .subnet = HOST_IP "/24",
                               .bound_ip = ip,
                               .egress = egress,
                               .n_egress = n};
  if (r >= 0) r = qvm_net_mac_parse(o.mac, mac, &err);
  if (r >= 0) r = qvm_net_isolate_apply(&o, &err);
  net_test_netns_leave();
  if (r < 0) fail_msg("isolate %s: %s", tap, qvm_error_message(err));
}

static qvm_net_egress egress_a[2], egress_b[1];

static void isolate_both(void) {
  if (getenv("QVM_TEST_ISOLATE_OFF")) return;
  isolate(TAP_A, MAC_A, IP_A, egress_a, 2);
  isolate(TAP_B, MAC_B, IP_B, egress_b, 1);
}

static void setup_network(void) {
  net_test_netns_create(host, "ibh");
  net_test_netns_create(outside, "ibo");
  /* The uplink: the outside has no route to the bridge's subnet, so what
   * reaches it was masqueraded by qvm's NAT. */
  sh_or_abort("uplink",
              qvm_test_sh("ip -n %s link add up0 type veth peer name eth0 netns %s && "
                          "ip -n %s addr add 10.98.0.1/24 dev up0 && ip -n %s link set up0 up && "
                          "ip -n %s addr add " OUT_IP "/24 dev eth0 && "
                          "ip -n %s addr add " OUT_IP2 "/24 dev eth0 && ip -n %s link set eth0 up",
                          host, outside, host, host, outside, outside, outside));
  qvm_net_bridge_options bo = {.name = "qvmiso", .address = HOST_IP "/24"};
  qvm_error *err = NULL;
  net_test_netns_enter(host);
  int r = qvm_net_bridge_ensure(&bo, &err);
  if (r >= 0) r = qvm_net_nat_ensure("qvmiso", HOST_IP "/24", &err);
  net_test_netns_leave();
  if (r < 0) fail_msg("bridge: %s", qvm_error_message(err));
  qvm_test_sh("ip -n %s link set qvmiso type bridge stp_state 0 forward_delay 0", host);
  add_guest(ga, "iba", TAP_A, MAC_A, IP_A);
  add_guest(gb, "ibb", TAP_B, MAC_B, IP_B);
  add_guest(gc, "ibc", "qvm-cccc0003", "0a:00:00:00:00:0c", IP_C);
  sh_or_abort("bridge ports",
              qvm_test_sh("for i in $(seq 100); do ok=1; for p in %s %s qvm-cccc0003; do "
                          "[ \"$(ip netns exec %s cat /sys/class/net/$p/brport/state)\" = 3 ] || "
                          "ok=0; done; [ $ok = 1 ] && exit 0; sleep 0.1; done; exit 1",
                          TAP_A, TAP_B, host));
}

static int setup(void **state) {
  (void)state;
  tmp = qvm_test_mkdtemp("isolation-bridge");
  chmod(tmp, 0755);
  assert_int_equal(qvm_net_egress_parse(&egress_a[0], OUT_IP ":7000", NULL), 0);
  assert_int_equal(qvm_net_egress_parse(&egress_a[1], OUT_IP "/32:7001/udp", NULL), 0);
  assert_int_equal(qvm_net_egress_parse(&egress_b[0], OUT_IP ":7002/tcp", NULL), 0);
  setup_network();
  const char *names[] = {"outside", "a", "b", "c", "host"};
  const char *spaces[] = {outside, ga, gb, gc, host};
  /* TCP 7000 everywhere, 7002 outside and on the host, 7001 outside; UDP
   * 7001 but on C (net_testlib keeps at most 16 processes). */
  for (size_t i = 0; i < 5; i++) {
    serve_tcp(spaces[i], names[i], 7000);
    if (i != 3) serve_udp(spaces[i], names[i], 7001);
  }
  serve_tcp(outside, "outside", 7001);
  serve_tcp(outside, "outside", 7002);
  serve_tcp(host, "host", 7002);
  serve_dhcp(host);
  for (size_t i = 0; i < 5; i++) {
    wait_listening(spaces[i], "t", 7000);
    if (i != 3) wait_listening(spaces[i], "u", 7001);
  }
  wait_listening(outside, "t", 7002);
  wait_listening(host, "t", 7002);
  wait_listening(host, "u", 67);
  ruleset_before = ruleset();
  assert_non_null(strstr(ruleset_before, "chain fwd_qvmiso")); /* qvm's NAT, not ours */
  isolate_both();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  qvm_test_rmtree(tmp);
  free(tmp);
  free(ruleset_before);
  return 0; /* the namespaces go at exit (net_testlib) */
}

/* The host opens connections to its isolated guests (SSH in real life). */
static void test_host_reaches_guests(void **state) {
  (void)state;
  assert_true(tcp_reaches(host, IP_A, 7000, "a"));
  assert_true(tcp_reaches(host, IP_B, 7000, "b"));
  assert_true(pings(host, IP_A));
  assert_true(udp_reaches(host, IP_B, 7001, "b"));
}

/* Two isolated guests, and an isolated and a plain one: nothing passes,
 * in either direction, over TCP, UDP or ICMP. */
static void test_guests_cut_off(void **state) {
  (void)state;
  assert_false(tcp_reaches(ga, IP_B, 7000, "b"));
  assert_false(tcp_reaches(gb, IP_A, 7000, "a"));
  assert_false(udp_reaches(ga, IP_B, 7001, "b"));
  assert_false(udp_reaches(gb, IP_A, 7001, "a"));
  assert_false(pings(ga, IP_B));
  assert_false(pings(gb, IP_A));
  assert_false(tcp_reaches(ga, IP_C, 7000, "c"));
  assert_false(tcp_reaches(gc, IP_A, 7000, "a"));
  assert_false(pings(gc, IP_B));
  /* The plain port is no isolated port: C reaches the host as before. */
  assert_true(tcp_reaches(gc, HOST_IP, 7000, "host"));
}

/* No service of the host: not on the bridge's address, not on the uplink's
 * (which the host routes to itself), no ping. */
static void test_host_services_dropped(void **state) {
  (void)state;
  assert_false(tcp_reaches(ga, HOST_IP, 7000, "host"));
  assert_false(tcp_reaches(gb, HOST_IP, 7002, "host"));
  assert_false(tcp_reaches(ga, "10.98.0.1", 7000, "host"));
  assert_false(udp_reaches(ga, HOST_IP, 7001, "host"));
  assert_false(pings(ga, HOST_IP));
  /* DHCP reaches the host only at the bridge's address (qvm's server), not
   * another DHCP server of the host's. */
  assert_true(dhcp_reaches(ga, HOST_IP));
  assert_false(dhcp_reaches(ga, "10.98.0.1"));
}

/* The allow-list: the entry is reachable (through qvm's NAT), another port
 * or address is not, and one guest's entries are not another's. */
static void test_egress_allow_list(void **state) {
  (void)state;
  assert_true(tcp_reaches(ga, OUT_IP, 7000, "outside"));
  assert_true(udp_reaches(ga, OUT_IP, 7001, "outside"));
  assert_true(tcp_reaches(gb, OUT_IP, 7002, "outside"));
  assert_false(tcp_reaches(ga, OUT_IP, 7002, "outside"));
  assert_false(tcp_reaches(ga, OUT_IP, 7001, "outside")); /* 7001 is udp only */
  assert_false(tcp_reaches(ga, OUT_IP2, 7000, "outside"));
  assert_false(tcp_reaches(gb, OUT_IP, 7000, "outside"));
  assert_false(udp_reaches(gb, OUT_IP, 7001, "outside"));
  assert_false(pings(ga, OUT_IP));
}

/* UDP from port 68 of a second address the guest gave itself (neither
 * 0.0.0.0 nor its lease) to addr:67. */
static bool dhcp_from(const char *ns, const char *src, const char *addr) {
  return output_is(qvm_test_sh_output("ip netns exec %s python3 -c 'import socket\n"
                                      "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                                      "s.bind((\"%s\",68))\n"
                                      "s.settimeout(2)\n"
                                      "s.sendto(b\"x\",(\"%s\",67))\n"
                                      "try: print(s.recv(100).decode())\n"
                                      "except OSError: pass' 2>/dev/null",
                                      ns, src, addr),
                   "dhcp", 67);
}

/* From the hostile review: the guest's packets stay filtered when a host
 * rule rewrites the packet mark before ours see it (wg-quick's, a connmark
 * restore); another local user's process cannot open a connection to an
 * isolated guest (qvm's user can); "DHCP" from an address that is neither
 * 0.0.0.0 nor the lease does not reach the host. */
static void test_host_rules_and_users(void **state) {
  (void)state;
  net_test_netns_enter(host);
  struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
  assert_non_null(nft);
  nft_ctx_buffer_error(nft);
  int r = nft_run_cmd_from_buffer(nft, "add table ip markreset\n"
                                       "add chain ip markreset pre { type filter hook prerouting "
                                       "priority 0; }\n"
                                       "add rule ip markreset pre meta mark set 0\n");
  net_test_netns_leave();
  assert_int_equal(r, 0);
  assert_false(tcp_reaches(ga, OUT_IP2, 7000, "outside"));
  assert_false(tcp_reaches(ga, HOST_IP, 7000, "host"));
  assert_false(udp_reaches(ga, HOST_IP, 7001, "host"));
  assert_true(tcp_reaches(ga, OUT_IP, 7000, "outside")); /* the allow-list still works */
  net_test_netns_enter(host);
  r = nft_run_cmd_from_buffer(nft, "delete table ip markreset\n");
  net_test_netns_leave();
  qvm_test_sh("ip netns exec %s sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null", host);
  nft_ctx_free(nft);
  assert_int_equal(r, 0);
  /* another user on the host: refused; qvm's user (root here): served */
  assert_false(output_is(qvm_test_sh_output("ip netns exec %s setpriv --reuid=65534 --regid=65534 "
                                            "--clear-groups busybox nc -w 3 %s 7000 </dev/null "
                                            "2>/dev/null",
                                            host, IP_A),
                         "a", 7000));
  assert_true(tcp_reaches(host, IP_A, 7000, "a"));
  /* DHCP from a second address of A's */
  sh_or_abort("second address", qvm_test_sh("ip -n %s addr add 10.83.0.99/24 dev eth0", ga));
  bool reached = dhcp_from(ga, "10.83.0.99", HOST_IP);
  qvm_test_sh("ip -n %s addr del 10.83.0.99/24 dev eth0", ga);
  assert_false(reached);
}

/* A takes B's MAC and address (B's port is down, so nothing answers for B
 * meanwhile): its frames still come in by A's port, which holds A's MAC and
 * address only; B's allow-list does not become A's. Then A keeps its MAC
 * and takes B's address, then a fresh MAC with its own address. */
static void test_spoofing_guest(void **state) {
  (void)state;
  sh_or_abort("spoof", qvm_test_sh("ip -n %s link set %s down && "
                                   "ip -n %s link set eth0 address " MAC_B " && "
                                   "ip -n %s addr flush dev eth0 && "
                                   "ip -n %s addr add " IP_B "/24 dev eth0 && "
                                   "ip -n %s route add default via " HOST_IP,
                                   host, TAP_B, ga, ga, ga, ga));
  assert_false(tcp_reaches(ga, OUT_IP, 7002, "outside"));
  assert_false(tcp_reaches(ga, HOST_IP, 7000, "host"));
  assert_false(tcp_reaches(ga, IP_C, 7000, "c"));
  assert_false(tcp_reaches(host, IP_B, 7000, "a")); /* the host's SSH goes nowhere wrong */
  sh_or_abort("spoof ip", qvm_test_sh("ip -n %s link set eth0 address " MAC_A, ga));
  assert_false(tcp_reaches(ga, OUT_IP, 7002, "outside"));
  assert_false(tcp_reaches(ga, OUT_IP, 7000, "outside"));
  assert_false(tcp_reaches(ga, HOST_IP, 7000, "host"));
  sh_or_abort("spoof mac", qvm_test_sh("ip -n %s link set eth0 address 0a:00:00:00:00:99 && "
                                       "ip -n %s addr flush dev eth0 && "
                                       "ip -n %s addr add " IP_A "/24 dev eth0 && "
                                       "ip -n %s route add default via " HOST_IP,
                                       ga, ga, ga, ga));
  assert_false(tcp_reaches(ga, OUT_IP, 7000, "outside"));
  assert_false(tcp_reaches(ga, HOST_IP, 7000, "host"));
  /* Back to itself: A works again, so the drops above were the spoofing's. */
  sh_or_abort("unspoof", qvm_test_sh("ip -n %s link set eth0 address " MAC_A " && "
                                     "ip -n %s link set %s up && ip -n %s neigh flush all",
                                     ga, host, TAP_B, host));
  assert_true(tcp_reaches(ga, OUT_IP, 7000, "outside"));
}

/* Applying again changes nothing; removing restores the ruleset as it was
 * before; removing twice is no error; the guests are then no longer cut
 * off (the drops were the rules'), and isolating again cuts them off. */
static void test_ruleset(void **state) {
  (void)state;
  char *applied = ruleset();
  assert_non_null(strstr(applied, "table bridge qvm_iso_qvm_aaaa0001"));
  assert_non_null(strstr(applied, "table ip qvm_iso_qvm_bbbb0002"));
  assert_non_null(strstr(applied, "ip daddr 10.98.0.2 tcp dport 7000 ct state new accept"));
  isolate_both();
  char *again = ruleset();
  assert_string_equal(applied, again);
  net_test_netns_enter(host);
  assert_int_equal(qvm_net_isolate_remove(TAP_A, NULL), 0);
  assert_int_equal(qvm_net_isolate_remove(TAP_B, NULL), 0);
  assert_int_equal(qvm_net_isolate_remove(TAP_B, NULL), 0);
  net_test_netns_leave();
  char *after = ruleset();
  assert_string_equal(after, ruleset_before);
  assert_true(tcp_reaches(ga, IP_B, 7000, "b"));
  isolate_both();
  assert_false(tcp_reaches(ga, IP_B, 7000, "b"));
  free(applied);
  free(again);
  free(after);
}

int main(void) {
  qvm_test_require_root();
  qvm_test_require_program("busybox");
  qvm_test_require_program("ss");
  qvm_test_require_program("python3");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_host_reaches_guests),
      cmocka_unit_test(test_guests_cut_off),
      cmocka_unit_test(test_host_services_dropped),
      cmocka_unit_test(test_egress_allow_list),
      cmocka_unit_test(test_host_rules_and_users),
      cmocka_unit_test(test_spoofing_guest),
      cmocka_unit_test(test_ruleset),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
