/* SPDX-License-Identifier: MIT */
/* Bridge and tap over netlink, inside a private network namespace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cmocka.h>

#include "net_testlib.h"
#include "testlib.h"

static char ns[32];

/* Reads /sys/class/net/<path> as seen from inside ns; NULL if missing. */
static char *sysfs(const char *path) {
  return qvm_test_sh_output("ip netns exec %s cat /sys/class/net/%s 2>/dev/null", ns, path);
}

static bool link_present(const char *ifname) {
  return qvm_test_sh("ip netns exec %s test -e /sys/class/net/%s", ns, ifname) == 0;
}

static bool link_up(const char *ifname) {
  char path[64];
  snprintf(path, sizeof path, "%s/flags", ifname);
  char *flags = sysfs(path);
  bool up = flags && (strtoul(flags, NULL, 16) & 1);
  free(flags);
  return up;
}

static void test_names_from_uuid(void **state) {
  (void)state;
  uint8_t mac[6], mac2[6];
  char tap[QVM_NET_IFNAME_MAX], text[QVM_NET_MAC_STR_MAX];
  assert_int_equal(qvm_net_mac_from_uuid(mac, "0123ABCD-ef01-2345-6789-abcdef012345", NULL), 0);
  assert_int_equal(qvm_net_mac_from_uuid(mac2, "0123abcdef0123456789abcdef012345", NULL), 0);
  assert_memory_equal(mac, mac2, 6); /* deterministic, case and dashes do not matter */
  qvm_net_mac_format(text, mac);
  assert_string_equal(text, "0a:01:23:ab:cd:ef");
  assert_true(mac[0] & 0x02);  /* locally administered */
  assert_false(mac[0] & 0x01); /* unicast */
  assert_int_equal(qvm_net_tap_name_from_uuid(tap, "0123abcd-ef01-2345-6789-abcdef012345", NULL),
                   0);
  assert_string_equal(tap, "qvm-0123abcd");
  assert_int_equal(qvm_net_mac_parse(mac2, text, NULL), 0);
  assert_memory_equal(mac, mac2, 6);
  qvm_error *err = NULL;
  assert_int_equal(qvm_net_mac_from_uuid(mac, "../etc/passwd", &err), QVM_EINVAL);
  assert_string_equal(qvm_error_message(err), "uuid '../etc/passwd' is invalid");
  qvm_error_free(err);
  assert_int_equal(qvm_net_tap_name_from_uuid(tap, "0123abcd-ef01-2345-6789-abcdef01234g", NULL),
                   QVM_EINVAL);
  assert_int_equal(qvm_net_mac_parse(mac, "0a:11:22:33:44", NULL), QVM_EINVAL);
  assert_int_equal(qvm_net_mac_parse(mac, "0a-11-22-33-44-55", NULL), QVM_EINVAL);
}

static void test_bridge_ensure_idempotent(void **state) {
  (void)state;
  qvm_net_bridge_options o = {.name = "qvmbr1", .address = "10.77.1.1/24"};
  qvm_error *err = NULL;
  if (qvm_net_bridge_ensure(&o, &err) < 0) fail_msg("%s", qvm_error_message(err));
  assert_int_equal(qvm_net_bridge_ensure(&o, NULL), 0);
  assert_true(link_present("qvmbr1/bridge"));
  assert_true(link_up("qvmbr1"));
  char *addr = qvm_test_sh_output("ip -n %s -4 -o addr show dev qvmbr1 | awk '{print $4}'", ns);
  assert_non_null(addr);
  assert_string_equal(addr, "10.77.1.1/24"); /* added once */
  free(addr);
  unsigned idx = 0;
  assert_int_equal(qvm_net_link_index(&idx, "qvmbr1", NULL), 0);
  assert_true(idx > 0);
}

static void test_bridge_name_taken_by_other_kind(void **state) {
  (void)state;
  assert_int_equal(qvm_test_sh("ip -n %s link add qvmd0 type veth peer name qvmd1", ns), 0);
  qvm_net_bridge_options o = {.name = "qvmd0", .address = NULL};
  qvm_error *err = NULL;
  assert_int_equal(qvm_net_bridge_ensure(&o, &err), QVM_EEXISTS);
  assert_string_equal(qvm_error_message(err), "interface 'qvmd0' exists and is not a bridge");
  qvm_error_free(err);
  assert_int_equal(qvm_net_link_delete("qvmd0", NULL), 0);
  assert_false(link_present("qvmd0"));
}

static void test_tap_create_enslave_delete(void **state) {
  (void)state;
  qvm_net_bridge_options o = {.name = "qvmbr2", .address = "10.77.2.1/24"};
  assert_int_equal(qvm_net_bridge_ensure(&o, NULL), 0);
  char tap[QVM_NET_IFNAME_MAX];
  assert_int_equal(qvm_net_tap_name_from_uuid(tap, "feedfacecafebeef0123456789abcdef", NULL), 0);
  int fd = -1;
  qvm_error *err = NULL;
  if (qvm_net_tap_create(&fd, tap, "qvmbr2", QVM_NET_TAP_VNET_HDR, &err) < 0)
    fail_msg("%s", qvm_error_message(err));
  assert_true(fd >= 0);
  char path[64];
  snprintf(path, sizeof path, "%s/master", tap);
  char *master =
      qvm_test_sh_output("ip netns exec %s readlink /sys/class/net/%s | xargs basename", ns, path);
  assert_non_null(master);
  assert_string_equal(master, "qvmbr2");
  free(master);
  assert_true(link_up(tap));
  snprintf(path, sizeof path, "%s/tun_flags", tap);
  char *flags = sysfs(path);
  assert_non_null(flags);
  assert_true(strtoul(flags, NULL, 16) & 0x4000); /* IFF_VNET_HDR */
  free(flags);
  assert_int_equal(qvm_net_link_delete(tap, NULL), 0);
  assert_false(link_present(tap));
  close(fd);
  assert_false(link_present(tap));
  assert_int_equal(qvm_net_link_delete(tap, NULL), QVM_ENOTFOUND);
}

static void test_tap_goes_with_its_fd(void **state) {
  (void)state;
  int fd = -1;
  assert_int_equal(qvm_net_tap_create(&fd, "qvm-tmp0", NULL, 0, NULL), 0);
  assert_true(link_present("qvm-tmp0"));
  assert_true(link_up("qvm-tmp0"));
  close(fd);
  assert_false(link_present("qvm-tmp0")); /* not persistent */
  char *taps = qvm_test_sh_output("ip netns exec %s ls /sys/class/net | grep '^qvm-' || true", ns);
  assert_string_equal(taps, ""); /* nothing left */
  free(taps);
}

/* A tap whose name is still taken (a killed QEMU's, not gone yet) is never
 * shared: the leftover is removed and a new tap made, so the new fd is the
 * only one attached (QEMU's TUNGETIFF on it works). */
static void test_tap_create_replaces_leftover(void **state) {
  (void)state;
  int old = -1, fd = -1;
  assert_int_equal(qvm_net_tap_create(&old, "qvm-tmp1", NULL, 0, NULL), 0);
  assert_int_equal(qvm_net_tap_create(&fd, "qvm-tmp1", NULL, 0, NULL), 0);
  struct ifreq ifr = {0};
  assert_int_equal(ioctl(fd, TUNGETIFF, &ifr), 0);
  assert_string_equal(ifr.ifr_name, "qvm-tmp1");
  assert_int_equal(ioctl(old, TUNGETIFF, &ifr), -1); /* detached from the new tap */
  assert_int_equal(errno, EBADFD);
  close(old);
  assert_true(link_present("qvm-tmp1")); /* the old fd's close leaves the new tap */
  close(fd);
  assert_false(link_present("qvm-tmp1"));
}

/* A shim that outlived its QEMU deletes its own tap by ifindex: the next
 * start's tap of the same name survives (deleting by name made that start's
 * QEMU fail with "TUNGETIFF: File descriptor in bad state"). */
static void test_delete_index_spares_a_newer_namesake(void **state) {
  (void)state;
  int old = -1, fd = -1;
  unsigned old_idx = 0, idx = 0;
  assert_int_equal(qvm_net_tap_create(&old, "qvm-tmp2", NULL, 0, NULL), 0);
  assert_int_equal(qvm_net_link_index(&old_idx, "qvm-tmp2", NULL), 0);
  close(old); /* QEMU died: its tap went with it */
  assert_int_equal(qvm_net_tap_create(&fd, "qvm-tmp2", NULL, 0, NULL), 0);
  assert_int_equal(qvm_net_link_index(&idx, "qvm-tmp2", NULL), 0);
  assert_int_not_equal(idx, old_idx);
  assert_int_equal(qvm_net_link_delete_index(old_idx, NULL), QVM_ENOTFOUND);
  struct ifreq ifr = {0};
  assert_int_equal(ioctl(fd, TUNGETIFF, &ifr), 0); /* still attached */
  assert_int_equal(qvm_net_link_delete_index(idx, NULL), 0);
  assert_false(link_present("qvm-tmp2"));
  close(fd);
}

static void test_bad_names_refused(void **state) {
  (void)state;
  int fd = -1;
  assert_int_equal(qvm_net_tap_create(&fd, "a-name-longer-than-15", NULL, 0, NULL), QVM_EINVAL);
  assert_int_equal(qvm_net_tap_create(&fd, "../x", NULL, 0, NULL), QVM_EINVAL);
  assert_int_equal(qvm_net_link_delete("", NULL), QVM_EINVAL);
  assert_int_equal(qvm_net_link_enslave("nosuch0", "qvmbr1", NULL), QVM_ENOTFOUND);
  qvm_net_bridge_options o = {.name = "qvmbr3", .address = "10.77.3.1"};
  assert_int_equal(qvm_net_bridge_ensure(&o, NULL), QVM_EINVAL);
}

int main(void) {
  net_test_netns_create(ns, "link");
  net_test_netns_enter(ns);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names_from_uuid),
      cmocka_unit_test(test_bridge_ensure_idempotent),
      cmocka_unit_test(test_bridge_name_taken_by_other_kind),
      cmocka_unit_test(test_tap_create_enslave_delete),
      cmocka_unit_test(test_tap_goes_with_its_fd),
      cmocka_unit_test(test_tap_create_replaces_leftover),
      cmocka_unit_test(test_delete_index_spares_a_newer_namesake),
      cmocka_unit_test(test_bad_names_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
