/* SPDX-License-Identifier: MIT */
#include "net_testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

#define MAX_NETNS 8
#define MAX_PIDS 16

static char netns_names[MAX_NETNS][32];
static int netns_count;
static int spawned[MAX_PIDS];
static int spawned_count;
static int original_ns = -1;

uint8_t *net_test_corpus_file(size_t *out_len, const char *dir, const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/net/corpus/%s/%s.bin", qvm_test_source_dir(), dir, name);
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    abort();
  }
  uint8_t *buf = malloc(4096);
  size_t n = fread(buf, 1, 4096, f);
  fclose(f);
  *out_len = n;
  return buf;
}

uint64_t net_test_drops(const qvm_dhcp_stats *st) {
  return st->truncated + st->bad_header + st->bad_cookie + st->option_overrun +
         st->option_overload + st->missing_end + st->bad_option_length + st->duplicate_option +
         st->bad_message_type + st->bad_frame + st->foreign_mac + st->not_for_us;
}

void net_test_kill(int pid) {
  if (pid <= 0) return;
  kill(-pid, SIGKILL); /* its process group: the shell and the client */
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  for (int i = 0; i < spawned_count; i++)
    if (spawned[i] == pid) spawned[i] = 0;
}

static void cleanup(void) {
  for (int i = 0; i < spawned_count; i++) net_test_kill(spawned[i]);
  net_test_netns_leave();
  for (int i = 0; i < netns_count; i++) {
    if (!netns_names[i][0]) continue;
    /* Nothing but this test ever ran in it: kill whatever is left. */
    qvm_test_sh("for p in $(ip netns pids %s 2>/dev/null); do [ $p != %d ] && kill -9 $p; done; "
                "ip netns del %s 2>/dev/null",
                netns_names[i], (int)getpid(), netns_names[i]);
    netns_names[i][0] = '\0';
  }
}

static void on_signal(int sig) {
  cleanup();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void register_cleanup(void) {
  static int done;
  if (done++) return;
  original_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  atexit(cleanup);
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  signal(SIGABRT, on_signal);
}

void net_test_netns_create(char *out, const char *tag) {
  qvm_test_require_root();
  register_cleanup();
  if (netns_count == MAX_NETNS) abort();
  snprintf(out, 32, "qvmt-%s-%d", tag, (int)getpid());
  if (qvm_test_sh("ip netns add %s && ip -n %s link set lo up", out, out) != 0)
    qvm_test_skip("cannot create network namespace '%s'", out);
  snprintf(netns_names[netns_count++], 32, "%s", out);
}

void net_test_netns_enter(const char *name) {
  char path[128];
  snprintf(path, sizeof path, "/run/netns/%s", name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
    perror(path);
    abort();
  }
  close(fd);
}

void net_test_netns_leave(void) {
  if (original_ns >= 0) setns(original_ns, CLONE_NEWNET);
}

void net_test_topology_create(net_test_topology *out, const char *tag) {
  char h[24], g[24];
  snprintf(h, sizeof h, "%sh", tag);
  snprintf(g, sizeof g, "%sg", tag);
  net_test_netns_create(out->host, h);
  net_test_netns_create(out->guest, g);
  if (qvm_test_sh("ip -n %s link add vh type veth peer name vg netns %s && "
                  "ip -n %s link set vg address %s && ip -n %s link set vg up",
                  out->host, out->guest, out->guest, NET_TEST_VM_MAC, out->guest) != 0)
    abort();
  net_test_netns_enter(out->host);
  qvm_net_bridge_options bo = {.name = NET_TEST_BRIDGE, .address = NET_TEST_SERVER_IP "/24"};
  qvm_error *err = NULL;
  if (qvm_net_bridge_ensure(&bo, &err) < 0 ||
      qvm_net_link_enslave("vh", NET_TEST_BRIDGE, &err) < 0) {
    fprintf(stderr, "topology: %s\n", qvm_error_message(err));
    abort();
  }
  /* No STP and no forwarding delay: ports forward at once. */
  qvm_test_sh("ip -n %s link set %s type bridge stp_state 0 forward_delay 0", out->host,
              NET_TEST_BRIDGE);
  /* Frames flow once the port forwards (state 3) and the veth has carrier. */
  if (qvm_test_sh("for i in $(seq 100); do "
                  "[ \"$(ip netns exec %s cat /sys/class/net/vh/brport/state)\" = 3 ] && "
                  "[ \"$(ip netns exec %s cat /sys/class/net/vh/operstate)\" = up ] && exit 0; "
                  "sleep 0.1; done; exit 1",
                  out->host, out->host) != 0)
    fprintf(stderr, "topology: bridge port vh is not forwarding after 10 s\n");
}

int net_test_spawn(const char *ns, const char *fmt, ...) {
  char *cmd = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&cmd, fmt, ap) < 0) abort();
  va_end(ap);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    execlp("ip", "ip", "netns", "exec", ns, "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  free(cmd);
  if (pid < 0 || spawned_count == MAX_PIDS) abort();
  spawned[spawned_count++] = pid;
  return pid;
}
