/* SPDX-License-Identifier: MIT */
/*
 * Real DHCP clients (busybox udhcpc, ISC dhclient, dhcpcd) against qvm's
 * server: obtain, renew, release. The client runs in a "guest" netns on a
 * veth whose peer is enslaved to a bridge made by qvm's library; qvm's
 * server runs in this process in the host netns, on that peer (the bridge
 * port, as the shim serves on the VM's tap) and speaking as the bridge.
 */
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "net_testlib.h"
#include "testlib.h"
#include "util/time.h"

#define WAIT_MS 30000
#define LEASE_SECONDS 20 /* dhcpcd's minimum; T1 = 10 s for dhclient's renewal */

static net_test_topology topo;
static char *dir;
static char db[512];
static uint8_t vm_mac[6];
static qvm_dhcp_server *server;
static int releases;
static char last_ip[QVM_NET_IP_MAX];

static void on_lease(const qvm_dhcp_lease_event *e, void *userdata) {
  (void)userdata;
  if (e->kind == QVM_DHCP_LEASE_RELEASE) releases++;
  snprintf(last_ip, sizeof last_ip, "%s", e->ip);
}

/* The guest's configured IPv4 address on vg, or "" (static buffer). */
static const char *guest_ip(void) {
  static char ip[64];
  char *out = qvm_test_sh_output("ip -n %s -4 -o addr show dev vg | awk '{print $4}' | "
                                 "cut -d/ -f1 | head -n1",
                                 topo.guest);
  snprintf(ip, sizeof ip, "%s", out ? out : "");
  free(out);
  return ip;
}

/* ACKs sent: a renewal that changes nothing is not a lease event any more. */
static int acks_sent(void) {
  qvm_dhcp_stats st;
  qvm_dhcp_server_stats(&st, server);
  return (int)st.acks;
}

typedef bool (*condition)(void *arg);

/* Serves DHCP until cond holds, for at most WAIT_MS. */
static bool serve_until(condition cond, void *arg) {
  int64_t deadline = qvm_now_ms() + WAIT_MS;
  while (!cond(arg)) {
    if (qvm_deadline_left_ms(deadline) == 0) return false;
    struct pollfd p = {.fd = qvm_dhcp_server_fd(server), .events = POLLIN};
    poll(&p, 1, 100);
    qvm_error *err = NULL;
    if (qvm_dhcp_server_handle_readable(server, &err) < 0) fail_msg("%s", qvm_error_message(err));
  }
  return true;
}

static bool bound(void *arg) {
  int *min_acks = arg;
  return acks_sent() >= *min_acks && strcmp(guest_ip(), last_ip) == 0;
}

static bool released(void *arg) {
  int *min = arg;
  return releases >= *min;
}

static void write_script(const char *name, const char *body) {
  char path[600];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  fprintf(f, "#!/bin/sh\n%s\nexit 0\n", body);
  fclose(f);
  chmod(path, 0755);
}

static int group_setup(void **state) {
  (void)state;
  net_test_topology_create(&topo, "cli");
  dir = qvm_test_mkdtemp("dhcp-clients");
  snprintf(db, sizeof db, "%s/" NET_TEST_BRIDGE ".leases", dir);
  qvm_net_mac_parse(vm_mac, NET_TEST_VM_MAC, NULL);
  qvm_dhcp_server_options o = QVM_DHCP_SERVER_OPTIONS_INIT;
  o.ifname = "vh";
  o.bridge = NET_TEST_BRIDGE;
  memcpy(o.client_mac, vm_mac, 6);
  o.lease_db = db;
  o.lease_seconds = LEASE_SECONDS;
  o.on_lease = on_lease;
  qvm_error *err = NULL;
  if (qvm_dhcp_server_new(&server, &o, &err) < 0) {
    fprintf(stderr, "server: %s\n", qvm_error_message(err));
    return -1;
  }
  /* `replace`, not flush+add: a renewal must never leave the guest without
   * its address, even for a moment the test could observe. */
  write_script("udhcpc.sh", "case \"$1\" in\n"
                            "bound|renew) ip addr replace \"$ip/$mask\" dev \"$interface\";;\n"
                            "deconfig) ip addr flush dev \"$interface\";;\nesac");
  write_script("dhclient.sh", "case \"$reason\" in\n"
                              "BOUND|RENEW|REBIND|REBOOT) "
                              "ip addr replace \"$new_ip_address/24\" dev \"$interface\";;\n"
                              "RELEASE|EXPIRE|FAIL|STOP) ip addr flush dev \"$interface\";;\nesac");
  write_script("dhcpcd.sh", ":");
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  qvm_dhcp_server_free(server);
  qvm_test_rmtree(dir);
  free(dir);
  return 0;
}

/* After an ACK: the guest's address is the one in the lease db. */
static void assert_guest_matches_db(void) {
  qvm_net_lease lease;
  qvm_error *err = NULL;
  if (qvm_net_lease_lookup(&lease, db, vm_mac, &err) < 0) fail_msg("%s", qvm_error_message(err));
  assert_string_equal(guest_ip(), lease.ip);
  assert_string_equal(lease.ip, "10.77.0.10");
}

static void assert_no_active_lease(void) {
  qvm_net_lease lease;
  assert_int_equal(qvm_net_lease_lookup(&lease, db, vm_mac, NULL), QVM_ENOTFOUND);
}

static void obtain(int pid, const char *client) {
  int want = acks_sent() + 1;
  if (!serve_until(bound, &want)) {
    net_test_kill(pid);
    fail_msg("%s got no lease within %d ms (guest has '%s')", client, WAIT_MS, guest_ip());
  }
  assert_guest_matches_db();
}

static void renewed(int pid, const char *client, int want) {
  if (!serve_until(bound, &want)) {
    net_test_kill(pid);
    fail_msg("%s did not renew within %d ms", client, WAIT_MS);
  }
  assert_guest_matches_db();
}

static void release_seen(int pid, const char *client) {
  int want = releases + 1;
  bool ok = serve_until(released, &want);
  net_test_kill(pid);
  if (!ok) fail_msg("%s sent no release within %d ms", client, WAIT_MS);
  assert_no_active_lease();
  qvm_test_sh("ip -n %s addr flush dev vg", topo.guest);
}

static void test_udhcpc(void **state) {
  (void)state;
  qvm_test_require_program("udhcpc");
  int pid = net_test_spawn(topo.guest,
                           "exec udhcpc -f -i vg -s %s/udhcpc.sh -t 20 -T 1 -A 1 "
                           "-x hostname:guest-u >%s/udhcpc.log 2>&1",
                           dir, dir);
  obtain(pid, "udhcpc");
  kill(pid, SIGUSR1); /* renew: unicast REQUEST with ciaddr */
  renewed(pid, "udhcpc", acks_sent() + 1);
  kill(pid, SIGUSR2);
  release_seen(pid, "udhcpc");
}

static void test_dhclient(void **state) {
  (void)state;
  qvm_test_require_program("dhclient");
  int pid = net_test_spawn(topo.guest,
                           "exec dhclient -4 -d -v -sf %1$s/dhclient.sh -lf %1$s/dhclient.leases "
                           "-pf %1$s/dhclient.pid vg >%1$s/dhclient.log 2>&1",
                           dir);
  obtain(pid, "dhclient");
  renewed(pid, "dhclient", acks_sent() + 1); /* at T1 */
  /* -r sends a RELEASE and stops the running client through its pid file. */
  int rel = net_test_spawn(topo.guest,
                           "exec dhclient -4 -r -sf %1$s/dhclient.sh -lf %1$s/dhclient.leases "
                           "-pf %1$s/dhclient.pid vg >>%1$s/dhclient.log 2>&1",
                           dir);
  release_seen(pid, "dhclient");
  net_test_kill(rel);
}

static void test_dhcpcd(void **state) {
  (void)state;
  qvm_test_require_program("dhcpcd");
  /* ip netns exec gives a private mount namespace: dhcpcd's state dirs are
   * tmpfs there, so nothing of the host's is touched. */
  int pid = net_test_spawn(topo.guest,
                           "mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/lib/dhcpcd && "
                           "exec dhcpcd -B -4 -A -L -K --noipv4ll -f /dev/null -c %1$s/dhcpcd.sh "
                           "-h guest-d vg >%1$s/dhcpcd.log 2>&1",
                           dir);
  obtain(pid, "dhcpcd");
  kill(pid, SIGUSR1);
  renewed(pid, "dhcpcd", acks_sent() + 1);
  kill(pid, SIGALRM); /* dhcpcd: release and exit */
  release_seen(pid, "dhcpcd");
}

int main(void) {
  qvm_test_require_root();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_udhcpc),
      cmocka_unit_test(test_dhclient),
      cmocka_unit_test(test_dhcpcd),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
