/* SPDX-License-Identifier: MIT */
/*
 * VM networking end to end with the real qvm binary and the mini guest, each
 * test in a network namespace of its own (deleted at exit), with its own
 * QVM_STATE_DIR and QVM_RUNTIME_DIR:
 * - bridge + qvm's DHCP: `qvm ip --wait` matches what the guest prints on
 *   serial, the lease is in events.jsonl, the address survives a restart;
 * - no tap is left after a stop, kill -9 of QEMU, kill -9 of the shim (then
 *   a qvm command), and `qvm rm` leaves nothing;
 * - dhcp=external: dnsmasq serves the bridge, qvm's watcher learns the IP;
 * - user mode: SSH is forwarded (dropbear's banner), and so is --publish.
 *
 * argv[1], when given, is a cmocka test-name filter.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "net_testlib.h"
#include "testjson.h"
#include "testlib.h"
#include "util/fs.h"
#include "util/time.h"

#define WAIT_S 240

static const char *kernel, *initrd;

typedef struct fixture {
  char ns[32];
  char *root;
  char state[512], run[512];
} fixture;

static int qvm(const fixture *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int qvm(const fixture *f, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *args = NULL;
  if (vasprintf(&args, fmt, ap) < 0) abort();
  va_end(ap);
  int r = qvm_test_sh("ip netns exec %s '%s/qvm' %s", f->ns, qvm_test_binary_dir(), args);
  free(args);
  return r;
}

static char *qvm_out(const fixture *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *qvm_out(const fixture *f, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *args = NULL;
  if (vasprintf(&args, fmt, ap) < 0) abort();
  va_end(ap);
  char *out =
      qvm_test_sh_output("ip netns exec %s '%s/qvm' %s", f->ns, qvm_test_binary_dir(), args);
  free(args);
  return out;
}

static int create_mini(const fixture *f, const char *name, const char *net) {
  return qvm(f,
             "create %s --kernel '%s' --initrd '%s' --append 'console=ttyS0' --memory 256M "
             "--net %s",
             name, kernel, initrd, net);
}

static struct json_object *info(const fixture *f, const char *name) {
  char *out = qvm_out(f, "info --json %s", name);
  struct json_object *j = out ? json_tokener_parse(out) : NULL;
  free(out);
  return j;
}

/* The text after `prefix` up to the end of its line, from the last line of
 * the VM's serial log that has it (NULL if none). */
static char *serial_value(const fixture *f, const char *name, const char *prefix) {
  char path[1024], *log = NULL, *value = NULL;
  snprintf(path, sizeof path, "%s/vms/%s/serial.log", f->state, name);
  if (qvm_read_file(&log, NULL, path, 16 << 20, NULL) < 0) return NULL;
  for (char *p = strstr(log, prefix); p; p = strstr(p + 1, prefix)) {
    free(value);
    value = strndup(p + strlen(prefix), strcspn(p + strlen(prefix), "\r\n"));
  }
  free(log);
  return value;
}

static char *wait_serial(const fixture *f, const char *name, const char *prefix) {
  int64_t deadline = qvm_now_ms() + WAIT_S * 1000;
  char *v = NULL;
  while (!(v = serial_value(f, name, prefix))) {
    if (qvm_now_ms() > deadline) fail_msg("vm '%s' never printed '%s'", name, prefix);
    usleep(100 * 1000);
  }
  return v;
}

static bool link_exists(const fixture *f, const char *ifname) {
  return qvm_test_sh("ip netns exec %s test -e /sys/class/net/%s", f->ns, ifname) == 0;
}

static int count_taps(const fixture *f) {
  char *out =
      qvm_test_sh_output("ip netns exec %s ls /sys/class/net | grep -c '^qvm-' || true", f->ns);
  int n = out ? atoi(out) : -1;
  free(out);
  return n;
}

/* "qvm-" + the first 8 hex digits of the uuid, as net/names.c makes it. */
static void tap_of(const fixture *f, const char *name, char out[16]) {
  struct json_object *j = info(f, name);
  snprintf(out, 16, "qvm-%.8s", qvm_test_jstr(j, "uuid"));
  json_object_put(j);
}

/* `qvm ip --wait` as JSON: ip and source (caller frees both). */
static void vm_ip(const fixture *f, const char *name, char **ip, char **source) {
  char *out = qvm_out(f, "ip %s --wait %d --json", name, WAIT_S);
  assert_non_null(out);
  struct json_object *j = json_tokener_parse(out);
  assert_non_null(j);
  *ip = strdup(qvm_test_jstr(j, "ip"));
  *source = strdup(qvm_test_jstr(j, "source"));
  json_object_put(j);
  free(out);
}

static void wait_state(const fixture *f, const char *name, const char *want) {
  int64_t deadline = qvm_now_ms() + 60000;
  for (;;) {
    struct json_object *j = info(f, name);
    bool ok = !strcmp(qvm_test_jstr(j, "state"), want);
    json_object_put(j);
    if (ok) return;
    if (qvm_now_ms() > deadline) fail_msg("vm '%s' never became %s", name, want);
    usleep(100 * 1000);
  }
}

static void kill_pid_of(const fixture *f, const char *name, const char *key) {
  struct json_object *j = info(f, name);
  int pid = qvm_test_jint(j, key);
  json_object_put(j);
  assert_true(pid > 0);
  /* Wait until it is dead, as "kill -9, then a qvm command" means: a QEMU
   * still dying (under load that takes a while) would rightly be adopted. */
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  assert_true(pidfd >= 0);
  assert_int_equal(kill(pid, SIGKILL), 0);
  struct pollfd p = {.fd = pidfd, .events = POLLIN};
  assert_int_equal(poll(&p, 1, 10000), 1);
  close(pidfd);
}

/* --- fixture ------------------------------------------------------------------ */

static int setup(void **state) {
  static int n;
  fixture *f = calloc(1, sizeof *f);
  char tag[16];
  snprintf(tag, sizeof tag, "vmnet%d", n++);
  net_test_netns_create(f->ns, tag);
  f->root = qvm_test_mkdtemp("vm-net");
  snprintf(f->state, sizeof f->state, "%s/state", f->root);
  snprintf(f->run, sizeof f->run, "%s/run", f->root);
  setenv("QVM_STATE_DIR", f->state, 1);
  setenv("QVM_RUNTIME_DIR", f->run, 1);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  qvm_test_sh("for j in '%s'/vms/*/vm.json; do [ -f \"$j\" ] || continue; "
              "for p in $(sed -n 's/.*\"pid\": *\\([0-9][0-9]*\\).*/\\1/p' \"$j\"); do "
              "kill -9 $p 2>/dev/null; done; done",
              f->state);
  qvm_test_sh("for p in $(ip netns pids %s 2>/dev/null); do kill -9 $p; done; ip netns del %s",
              f->ns, f->ns);
  qvm_test_rmtree(f->root);
  free(f->root);
  free(f);
  return 0;
}

/* --- bridge + qvm's DHCP ---------------------------------------------------------- */

static void test_bridge_lease(void **state) {
  fixture *f = *state;
  assert_int_equal(create_mini(f, "web", "bridge"), 0);
  assert_int_equal(qvm(f, "start web 2>/dev/null"), 0);
  assert_true(link_exists(f, "qvm0"));
  char tap[16];
  tap_of(f, "web", tap);
  assert_true(link_exists(f, tap));

  char *ip = NULL, *source = NULL;
  vm_ip(f, "web", &ip, &source);
  assert_string_equal(source, "qvm-dhcp");
  assert_true(!strncmp(ip, "10.77.0.", 8));
  char *guest = wait_serial(f, "web", "qvm-mini: dhcp ip=");
  assert_string_equal(guest, ip);
  /* events.jsonl has the lease, with its time. */
  assert_int_equal(qvm_test_sh("grep -q '\"event\":\"DHCP_LEASE\",\"ip\":\"%s\".*\"source\":"
                               "\"qvm-dhcp\".*\"time\"' '%s/vms/web/events.jsonl'",
                               ip, f->state),
                   0);
  /* qvm info shows it too, and qvm ip answers at once now. */
  struct json_object *j = info(f, "web"), *net = NULL;
  assert_true(json_object_object_get_ex(j, "network", &net));
  assert_string_equal(qvm_test_jstr(net, "ip"), ip);
  assert_string_equal(qvm_test_jstr(net, "ip_source"), "qvm-dhcp");
  json_object_put(j);
  char *now = qvm_out(f, "ip web");
  assert_non_null(now);
  assert_string_equal(now, ip);
  free(now);

  /* Same address after a restart (the lease DB keeps it for the MAC). */
  assert_int_equal(qvm(f, "restart web --timeout 10 2>/dev/null"), 0);
  char *ip2 = NULL, *source2 = NULL;
  vm_ip(f, "web", &ip2, &source2);
  assert_string_equal(ip2, ip);
  assert_string_equal(source2, "qvm-dhcp");

  /* Stopped: a clear not-found error, and no tap. */
  assert_int_equal(qvm(f, "stop web --timeout 10"), 0);
  assert_false(link_exists(f, tap));
  assert_int_equal(qvm(f, "ip web 2>/dev/null"), 3); /* not found */
  assert_int_equal(qvm(f, "rm web"), 0);
  assert_int_equal(count_taps(f), 0);
  assert_int_equal(
      qvm_test_sh("[ -z \"$(ls -A '%s/vms')\" ] && [ -z \"$(ls -A '%s' 2>/dev/null)\" ]", f->state,
                  f->run),
      0);
  free(ip);
  free(source);
  free(ip2);
  free(source2);
  free(guest);
}

static void test_bridge_options(void **state) {
  fixture *f = *state;
  assert_int_not_equal(create_mini(f, "a", "bridge=bad/name 2>/dev/null"), 0);
  assert_int_not_equal(create_mini(f, "a", "bridge,subnet=10.1.2.0/24 2>/dev/null"), 0);
  assert_int_not_equal(create_mini(f, "a", "bridge,subnet=10.1.2.1/31 2>/dev/null"), 0);
  assert_int_not_equal(create_mini(f, "a", "bridge,dhcp=maybe 2>/dev/null"), 0);
  assert_int_not_equal(create_mini(f, "a", "bridge,dhcp=external,subnet=10.1.2.1/24 2>/dev/null"),
                       0);
  assert_int_not_equal(create_mini(f, "a", "user --nat 2>/dev/null"), 0);
  assert_int_not_equal(create_mini(f, "a", "bridge,dhcp=external --nat 2>/dev/null"), 0);
  /* A second subnet on a bridge of its own, with NAT. */
  assert_int_equal(create_mini(f, "nat", "bridge=qvmnat,subnet=10.78.0.1/24 --nat"), 0);
  assert_int_equal(qvm(f, "start nat 2>/dev/null"), 0);
  char *ip = NULL, *source = NULL;
  vm_ip(f, "nat", &ip, &source);
  assert_true(!strncmp(ip, "10.78.0.", 8));
  char *guest = wait_serial(f, "nat", "qvm-mini: dhcp ip=");
  assert_string_equal(guest, ip);
  assert_int_equal(
      qvm_test_sh("ip netns exec %s cat /proc/sys/net/ipv4/ip_forward | grep -qx 1", f->ns), 0);
  net_test_netns_enter(f->ns);
  char *rules = NULL;
  assert_int_equal(qvm_net_nat_list(&rules, NULL), 0);
  net_test_netns_leave();
  assert_non_null(strstr(rules, "ip saddr 10.78.0.0/24 oifname != \"qvmnat\" masquerade"));
  free(rules);
  assert_int_equal(qvm(f, "rm --force nat"), 0);
  assert_int_equal(count_taps(f), 0);
  free(ip);
  free(source);
  free(guest);
}

/* `qvm ip ARGS --json` fails: stdout holds only a JSON object with the
 * error (containing want) and the exit code, which is the command's own. */
static void json_ip_error(const fixture *f, const char *args, const char *want, int rc) {
  char *out = qvm_test_sh_output("ip netns exec %s '%s/qvm' ip %s --json 2>/dev/null; echo $?",
                                 f->ns, qvm_test_binary_dir(), args);
  assert_non_null(out);
  char *nl = strrchr(out, '\n');
  assert_non_null(nl);
  *nl = '\0';
  assert_int_equal(atoi(nl + 1), rc);
  struct json_object *j = json_tokener_parse(out);
  assert_non_null(j);
  assert_non_null(strstr(qvm_test_jstr(j, "error"), want));
  assert_int_equal(qvm_test_jint(j, "exit_code"), rc);
  json_object_put(j);
  free(out);
}

/* A guest that never asks for an address: the timeout names what qvm waited
 * for; a stopped VM is "not running". */
static void test_ip_errors(void **state) {
  fixture *f = *state;
  assert_int_equal(qvm(f,
                       "create quiet --kernel '%s' --initrd '%s' --append 'console=ttyS0 "
                       "qvm.dhcp=0' --memory 256M --net bridge",
                       kernel, initrd),
                   0);
  assert_int_equal(qvm(f, "start quiet 2>/dev/null"), 0);
  free(wait_serial(f, "quiet", "qvm-mini: dhcp disabled"));
  char *msg = qvm_test_sh_output("ip netns exec %s '%s/qvm' ip quiet --wait 2 2>&1; echo rc=$?",
                                 f->ns, qvm_test_binary_dir());
  assert_non_null(msg);
  assert_non_null(strstr(msg, "a lease from qvm's dhcp server"));
  assert_non_null(strstr(msg, "rc=5"));
  free(msg);
  /* --json: the failure is a JSON object on stdout, same exit code. */
  json_ip_error(f, "quiet --wait 1", "a lease from qvm's dhcp server", 5);
  json_ip_error(f, "nosuch", "nosuch", 3);
  /* With no lease, the guest agent is asked (a stand-in agent on qga.sock). */
  char ready[600];
  char *vm_mac = qvm_test_sh_output("sed -n 's/.*\"mac\": *\"\\([0-9a-f:]*\\)\".*/\\1/p' "
                                    "'%s/vms/quiet/vm.json' | head -n 1",
                                    f->state);
  assert_non_null(vm_mac);
  snprintf(ready, sizeof ready, "%s/qga.ready", f->root);
  int agent = net_test_spawn(f->ns,
                             "exec python3 '%s/tests/net/fake_qga.py' '%s/quiet/qga.sock' "
                             "'%s' '%s'",
                             qvm_test_source_dir(), f->run, vm_mac, ready);
  int64_t deadline = qvm_now_ms() + 30000;
  while (access(ready, F_OK) != 0 && qvm_now_ms() < deadline) usleep(50 * 1000);
  char *ip = NULL, *source = NULL;
  vm_ip(f, "quiet", &ip, &source);
  assert_string_equal(source, "guest-agent");
  assert_string_equal(ip, "10.77.0.99");
  net_test_kill(agent);
  free(ip);
  free(source);
  free(vm_mac);
  assert_int_equal(qvm(f, "kill quiet"), 0);
  msg = qvm_test_sh_output("ip netns exec %s '%s/qvm' ip quiet 2>&1; echo rc=$?", f->ns,
                           qvm_test_binary_dir());
  assert_non_null(msg);
  assert_non_null(strstr(msg, "is not running"));
  assert_non_null(strstr(msg, "rc=3"));
  free(msg);
  assert_int_equal(count_taps(f), 0);
}

/* --- taps never outlive QEMU -------------------------------------------------------- */

static void test_tap_cleanup(void **state) {
  fixture *f = *state;
  char tap[16];
  assert_int_equal(create_mini(f, "t", "bridge"), 0);
  tap_of(f, "t", tap);

  /* kill -9 of QEMU: the shim records the crash and the tap is gone. */
  assert_int_equal(qvm(f, "start t 2>/dev/null"), 0);
  assert_true(link_exists(f, tap));
  kill_pid_of(f, "t", "pid");
  wait_state(f, "t", "crashed");
  assert_false(link_exists(f, tap));

  /* kill -9 of the shim, then a qvm command: a new shim adopts QEMU; when
   * QEMU goes, so does the tap. */
  assert_int_equal(qvm(f, "start t 2>/dev/null"), 0);
  kill_pid_of(f, "t", "shim_pid");
  assert_int_equal(qvm(f, "ls >/dev/null"), 0);
  assert_true(link_exists(f, tap));
  char *ip = NULL, *source = NULL;
  vm_ip(f, "t", &ip, &source); /* the adopting shim serves DHCP again */
  assert_string_equal(source, "qvm-dhcp");
  assert_int_equal(qvm(f, "stop t --timeout 10"), 0);
  assert_false(link_exists(f, tap));

  /* kill -9 of both, then a qvm command. */
  assert_int_equal(qvm(f, "start t 2>/dev/null"), 0);
  kill_pid_of(f, "t", "shim_pid");
  kill_pid_of(f, "t", "pid");
  assert_int_equal(qvm(f, "ls >/dev/null"), 0);
  assert_false(link_exists(f, tap));

  /* rm --force of a running VM. (stderr kept: this start once failed, rarely,
   * right after the kill -9 of both, and its message names QEMU's reason.) */
  assert_int_equal(qvm(f, "start t"), 0);
  assert_int_equal(qvm(f, "rm --force t"), 0);
  assert_int_equal(count_taps(f), 0);
  free(ip);
  free(source);
}

/* --- dhcp=external: dnsmasq serves, qvm watches ---------------------------------------- */

static void test_dhcp_external(void **state) {
  fixture *f = *state;
  qvm_test_require_program("dnsmasq");
  assert_int_equal(qvm_test_sh("ip -n %s link add brext type bridge && "
                               "ip -n %s addr add 10.88.0.1/24 dev brext && "
                               "ip -n %s link set brext up",
                               f->ns, f->ns, f->ns),
                   0);
  char leases[600];
  snprintf(leases, sizeof leases, "%s/dnsmasq.leases", f->root);
  int pid = net_test_spawn(f->ns,
                           "exec dnsmasq --no-daemon --conf-file=/dev/null --port=0 "
                           "--interface=brext --bind-interfaces --except-interface=lo "
                           "--dhcp-range=10.88.0.50,10.88.0.99,255.255.255.0,1h "
                           "--dhcp-leasefile='%s' --pid-file= >/dev/null 2>&1",
                           leases);
  assert_int_equal(create_mini(f, "ext", "bridge=brext,dhcp=external"), 0);
  assert_int_equal(qvm(f, "start ext 2>/dev/null"), 0);
  char *ip = NULL, *source = NULL;
  vm_ip(f, "ext", &ip, &source);
  assert_string_equal(source, "dhcp-watch");
  assert_true(!strncmp(ip, "10.88.0.", 8));
  char *guest = wait_serial(f, "ext", "qvm-mini: dhcp ip=");
  assert_string_equal(guest, ip);
  assert_int_equal(qvm(f, "rm --force ext"), 0);
  assert_int_equal(count_taps(f), 0);
  assert_true(link_exists(f, "brext")); /* the user's bridge is left alone */
  net_test_kill(pid);
  free(ip);
  free(source);
  free(guest);
}

/* --- user mode: forwards ---------------------------------------------------------------- */

/* The first line the server sends on 127.0.0.1:port, from inside the netns. */
static char *banner(const fixture *f, int port) {
  return qvm_test_sh_output("ip netns exec %s timeout 20 bash -c "
                            "'exec 3<>/dev/tcp/127.0.0.1/%d && head -c 64 <&3 | head -n 1'",
                            f->ns, port);
}

static char *wait_banner(const fixture *f, int port) {
  int64_t deadline = qvm_now_ms() + WAIT_S * 1000;
  for (;;) {
    char *b = banner(f, port);
    if (b && !strncmp(b, "SSH-2.0-", 8)) return b;
    free(b);
    if (qvm_now_ms() > deadline) fail_msg("no ssh banner on 127.0.0.1:%d", port);
    usleep(500 * 1000);
  }
}

static int free_port_in_netns(const fixture *f) {
  char *out = qvm_test_sh_output(
      "ip netns exec %s python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); "
      "print(s.getsockname()[1])'",
      f->ns);
  int port = out ? atoi(out) : 0;
  free(out);
  assert_true(port > 0);
  return port;
}

static void test_user_forwards(void **state) {
  fixture *f = *state;
  int publish = free_port_in_netns(f);
  char net[64];
  snprintf(net, sizeof net, "user --publish %d:22", publish);
  assert_int_equal(create_mini(f, "u", net), 0);
  assert_int_equal(qvm(f, "start u 2>/dev/null"), 0);
  struct json_object *j = info(f, "u"), *n = NULL;
  assert_true(json_object_object_get_ex(j, "network", &n));
  int ssh_port = qvm_test_jint(n, "ssh_port");
  json_object_put(j);
  assert_true(ssh_port > 0);
  free(wait_serial(f, "u", "qvm-mini: sshd port="));
  char *b = wait_banner(f, ssh_port);
  assert_true(strstr(b, "dropbear") != NULL);
  free(b);
  b = wait_banner(f, publish);
  assert_true(strstr(b, "dropbear") != NULL);
  free(b);
  /* qvm ip says where the guest is reached instead. */
  char *msg =
      qvm_test_sh_output("ip netns exec %s '%s/qvm' ip u 2>&1; true", f->ns, qvm_test_binary_dir());
  char want[64];
  snprintf(want, sizeof want, "127.0.0.1:%d", ssh_port);
  assert_non_null(msg);
  assert_non_null(strstr(msg, want));
  free(msg);
  assert_int_equal(qvm(f, "rm --force u"), 0);
}

int main(int argc, char **argv) {
  qvm_test_require_root();
  qvm_test_require_program("qemu-system-x86_64");
  qvm_test_mini_guest(&kernel, &initrd);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_bridge_lease, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bridge_options, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ip_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tap_cleanup, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dhcp_external, setup, teardown),
      cmocka_unit_test_setup_teardown(test_user_forwards, setup, teardown),
  };
  if (argc > 1) cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
