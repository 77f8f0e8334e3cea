/* SPDX-License-Identifier: MIT */
/*
 * A guest on a --nat bridge attacks what the host routes to: the guests of
 * another NAT bridge, and (from the outside) a host that sends new
 * connections into the NAT bridge. qvm's nftables table (qvm_net_nat_ensure,
 * what the shim installs for --nat) must forward only the guest's own new
 * connections out and their replies back.
 *
 * Everything runs in network namespaces this test creates: "host" (the
 * router qvm runs on) with two bridges made and NATed by qvm's library, an
 * "outside" namespace on the host's uplink (a veth), and a namespace per
 * bridge playing its guest (a veth enslaved to the bridge, exactly where a
 * VM's tap sits). Traffic is TCP to busybox nc servers in those namespaces.
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

#include "net_testlib.h"
#include "testlib.h"

#define PORT 7000

static char host[32], outside[32], guest_a[32], guest_b[32], *tmp;

static void sh_or_abort(const char *what, int rc) {
  if (rc != 0) {
    fprintf(stderr, "isolation_nat: setting up %s failed\n", what);
    abort();
  }
}

/* A guest namespace behind bridge br of the host: its eth0 has addr/24 and
 * the bridge's address as its default route. */
static void add_guest(char *ns, const char *tag, const char *br, const char *port, const char *addr,
                      const char *gw) {
  net_test_netns_create(ns, tag);
  sh_or_abort(tag, qvm_test_sh("ip -n %s link add %s type veth peer name eth0 netns %s && "
                               "ip -n %s link set %s master %s up && "
                               "ip -n %s addr add %s/24 dev eth0 && ip -n %s link set eth0 up && "
                               "ip -n %s route add default via %s",
                               host, port, ns, host, port, br, ns, addr, ns, ns, gw));
}

static void add_bridge(const char *br, const char *addr) {
  qvm_net_bridge_options bo = {.name = br, .address = addr};
  qvm_error *err = NULL;
  net_test_netns_enter(host);
  int r = qvm_net_bridge_ensure(&bo, &err);
  if (r >= 0) r = qvm_net_nat_ensure(br, addr, &err);
  net_test_netns_leave();
  if (r < 0) fail_msg("bridge %s: %s", br, qvm_error_message(err));
  qvm_test_sh("ip -n %s link set %s type bridge stp_state 0 forward_delay 0", host, br);
}

/* A TCP server in ns that answers every connection with "reached-<name>". */
static void serve(const char *ns, const char *name) {
  char script[512];
  snprintf(script, sizeof script, "%s/srv-%s.sh", tmp, name);
  FILE *f = fopen(script, "w");
  assert_non_null(f);
  fprintf(f, "#!/bin/sh\necho reached-%s\n", name);
  fclose(f);
  chmod(script, 0755);
  net_test_spawn(ns, "exec busybox nc -ll -p %d -e %s", PORT, script);
  assert_int_equal(qvm_test_sh("for i in $(seq 100); do ip netns exec %s ss -ltn | "
                               "grep -q ':%d ' && exit 0; sleep 0.1; done; exit 1",
                               ns, PORT),
                   0);
}

/* Whether a connection from ns to addr reaches the server there. A dropped
 * SYN ends with nc's connect timeout: nothing here waits on a clock but nc. */
static bool reaches(const char *ns, const char *addr, const char *name) {
  char *out = qvm_test_sh_output("ip netns exec %s busybox nc -w 5 %s %d </dev/null 2>/dev/null",
                                 ns, addr, PORT);
  char want[64];
  snprintf(want, sizeof want, "reached-%s", name);
  bool ok = out && !strcmp(out, want);
  free(out);
  return ok;
}

static int setup(void **state) {
  (void)state;
  tmp = qvm_test_mkdtemp("isolation-nat");
  chmod(tmp, 0755);
  net_test_netns_create(host, "isoh");
  net_test_netns_create(outside, "isoo");
  /* The uplink: the host's 10.99.0.1, an outside machine's 10.99.0.2 that
   * routes the guests' subnets through the host (as a LAN neighbour can). */
  sh_or_abort("uplink",
              qvm_test_sh("ip -n %s link add up0 type veth peer name eth0 netns %s && "
                          "ip -n %s addr add 10.99.0.1/24 dev up0 && ip -n %s link set up0 up && "
                          "ip -n %s addr add 10.99.0.2/24 dev eth0 && ip -n %s link set eth0 up && "
                          "ip -n %s route add 10.81.0.0/16 via 10.99.0.1 && "
                          "ip -n %s route add 10.82.0.0/16 via 10.99.0.1 && "
                          /* a cloud's metadata service, one hop out */
                          "ip -n %s addr add 169.254.169.254/32 dev eth0 && "
                          "ip -n %s route add 169.254.169.254/32 via 10.99.0.2",
                          host, outside, host, host, outside, outside, outside, outside, outside,
                          host));
  add_bridge("qvmia", "10.81.0.1/24");
  add_bridge("qvmib", "10.82.0.1/24");
  add_guest(guest_a, "isoa", "qvmia", "pa", "10.81.0.10", "10.81.0.1");
  add_guest(guest_b, "isob", "qvmib", "pb", "10.82.0.10", "10.82.0.1");
  sh_or_abort("bridge ports",
              qvm_test_sh("for i in $(seq 100); do "
                          "[ \"$(ip netns exec %s cat /sys/class/net/pa/brport/state)\" = 3 ] && "
                          "[ \"$(ip netns exec %s cat /sys/class/net/pb/brport/state)\" = 3 ] && "
                          "exit 0; sleep 0.1; done; exit 1",
                          host, host));
  serve(outside, "outside");
  serve(guest_a, "a");
  serve(guest_b, "b");
  serve(host, "host");
  return 0;
}

static int teardown(void **state) {
  (void)state;
  qvm_test_rmtree(tmp);
  free(tmp);
  return 0; /* the namespaces go at exit (net_testlib) */
}

static char *ruleset(void) {
  char *rules = NULL;
  net_test_netns_enter(host);
  int r = qvm_net_nat_list(&rules, NULL);
  net_test_netns_leave();
  assert_int_equal(r, 0);
  return rules;
}

/* The guest's own connections out still work (masqueraded), and the host
 * itself still reaches its guests (qvm's SSH to a bridged guest is not
 * forwarded traffic). */
static void test_outbound_allowed(void **state) {
  (void)state;
  assert_true(reaches(guest_a, "10.99.0.2", "outside"));
  assert_true(reaches(guest_b, "10.99.0.2", "outside"));
  assert_true(reaches(host, "10.81.0.10", "a"));
  assert_true(reaches(guest_a, "10.81.0.1", "host"));
}

/* The outside opens a connection into the NAT bridge: dropped. */
static void test_inbound_dropped(void **state) {
  (void)state;
  assert_false(reaches(outside, "10.81.0.10", "a"));
  assert_false(reaches(outside, "10.82.0.10", "b"));
}

/* A guest of one NAT bridge attacks a guest of another: dropped both ways. */
static void test_cross_bridge_dropped(void **state) {
  (void)state;
  assert_false(reaches(guest_a, "10.82.0.10", "b"));
  assert_false(reaches(guest_b, "10.81.0.10", "a"));
}

/* A guest asks the cloud's metadata service for the host's credentials:
 * dropped, while the host itself still reaches it. */
static void test_metadata_dropped(void **state) {
  (void)state;
  assert_true(reaches(host, "169.254.169.254", "outside"));
  assert_false(reaches(guest_a, "169.254.169.254", "outside"));
}

/* The ruleset: per bridge a forward chain; ensuring twice adds nothing; the
 * removal takes the bridge's chains and its set element. */
static void test_ruleset(void **state) {
  (void)state;
  char *before = ruleset();
  assert_non_null(strstr(before, "chain fwd_qvmia"));
  assert_non_null(strstr(before, "type filter hook forward priority filter; policy accept;"));
  assert_non_null(strstr(before, "oifname \"qvmia\" ct state established,related accept"));
  assert_non_null(strstr(before, "oifname \"qvmia\" drop"));
  assert_non_null(strstr(before, "iifname \"qvmia\" oifname @bridges drop"));
  assert_non_null(strstr(before, "iifname \"qvmia\" ct state established,related,new accept"));
  assert_non_null(strstr(before, "ip saddr 10.81.0.0/24 oifname != \"qvmia\" masquerade"));
  /* A guest that spoofs a source outside its subnet gets nothing forwarded. */
  assert_non_null(strstr(before, "iifname \"qvmia\" ip saddr != 10.81.0.0/24 drop"));
  assert_non_null(strstr(before, "iifname \"qvmia\" ip daddr 169.254.0.0/16 drop"));
  net_test_netns_enter(host);
  assert_int_equal(qvm_net_nat_ensure("qvmia", "10.81.0.1/24", NULL), 0);
  net_test_netns_leave();
  char *again = ruleset();
  assert_string_equal(before, again);
  net_test_netns_enter(host);
  assert_int_equal(qvm_net_nat_remove("qvmib", NULL), 0);
  assert_int_equal(qvm_net_nat_remove("qvmib", NULL), QVM_ENOTFOUND);
  net_test_netns_leave();
  char *after = ruleset();
  assert_null(strstr(after, "fwd_qvmib"));
  assert_null(strstr(after, "nat_qvmib"));
  assert_null(strstr(after, "\"qvmib\""));
  assert_non_null(strstr(after, "fwd_qvmia"));
  free(before);
  free(again);
  free(after);
  net_test_netns_enter(host);
  assert_int_equal(qvm_net_nat_ensure("qvmib", "10.82.0.1/24", NULL), 0);
  net_test_netns_leave();
}

int main(void) {
  qvm_test_require_root();
  qvm_test_require_program("busybox");
  qvm_test_require_program("ss");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_outbound_allowed),
      cmocka_unit_test(test_inbound_dropped),
      cmocka_unit_test(test_cross_bridge_dropped),
      cmocka_unit_test(test_metadata_dropped),
      cmocka_unit_test(test_ruleset),
      /* After the ruleset test re-added qvmib: still isolated. */
      cmocka_unit_test(test_cross_bridge_dropped),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
