/* SPDX-License-Identifier: MIT */
/*
 * The time from qvm's DHCPACK (the DHCP_LEASE line's at_us in events.jsonl,
 * taken right after the shim sent the ACK) to `qvm ip --wait` printing the
 * address: `qvm ip` is started before the guest asks for a lease and blocks
 * on inotify. Each run restarts the mini guest on a bridge in a netns of its
 * own. Prints p50/p99 (and min/max) over the runs; asserts nothing.
 *
 *   bench_ip [runs]    (default 10; needs root, QEMU and the mini guest)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "net_testlib.h"
#include "testlib.h"
#include "util/fs.h"
#include "util/time.h"

static char ns[32], *root, qvm[1024];

/* at_us of the last DHCP_LEASE in events.jsonl, 0 if none. */
static int64_t last_ack_us(void) {
  char path[1024], *text = NULL;
  snprintf(path, sizeof path, "%s/state/vms/bench/events.jsonl", root);
  if (qvm_read_file(&text, NULL, path, 64 << 20, NULL) < 0) return 0;
  int64_t at = 0;
  for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    if (!strstr(line, "\"DHCP_LEASE\"")) continue;
    struct json_object *ev = json_tokener_parse(line), *v = NULL;
    if (ev && json_object_object_get_ex(ev, "at_us", &v)) at = json_object_get_int64(v);
    json_object_put(ev);
  }
  free(text);
  return at;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* One run: start, `qvm ip --wait` from before the lease, stop. -1 on failure. */
static int64_t one_run(void) {
  if (qvm_test_sh("ip netns exec %s %s start bench >/dev/null 2>&1", ns, qvm) != 0) return -1;
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "ip netns exec %s %s ip bench --wait 120", ns, qvm);
  FILE *p = popen(cmd, "r");
  char line[64] = "";
  bool got = p && fgets(line, sizeof line, p);
  int64_t answered = qvm_realtime_us();
  if (p) pclose(p);
  int64_t ack = last_ack_us();
  qvm_test_sh("ip netns exec %s %s stop bench --timeout 5 >/dev/null 2>&1", ns, qvm);
  if (!got || !ack || answered < ack) return -1;
  return answered - ack;
}

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 10;
  if (runs < 1) runs = 1;
  const char *kernel, *initrd;
  qvm_test_require_root();
  qvm_test_mini_guest(&kernel, &initrd);
  net_test_netns_create(ns, "benchip");
  root = qvm_test_mkdtemp("bench-ip");
  snprintf(qvm, sizeof qvm, "'%s/qvm'", qvm_test_binary_dir());
  char env[1100];
  snprintf(env, sizeof env, "%s/state", root);
  setenv("QVM_STATE_DIR", env, 1);
  snprintf(env, sizeof env, "%s/run", root);
  setenv("QVM_RUNTIME_DIR", env, 1);
  if (qvm_test_sh("ip netns exec %s %s create bench --kernel '%s' --initrd '%s' --append "
                  "'console=ttyS0' --memory 256M --net bridge >/dev/null",
                  ns, qvm, kernel, initrd) != 0) {
    fprintf(stderr, "bench_ip: cannot create the vm\n");
    return 1;
  }
  int64_t *us = calloc((size_t)runs, sizeof *us);
  int n = 0;
  for (int i = 0; i < runs; i++) {
    int64_t d = one_run();
    if (d >= 0) us[n++] = d;
  }
  qvm_test_sh("ip netns exec %s %s rm --force bench >/dev/null 2>&1", ns, qvm);
  qvm_test_rmtree(root);
  if (n == 0) {
    fprintf(stderr, "bench_ip: no run produced a lease\n");
    return 1;
  }
  qsort(us, (size_t)n, sizeof *us, cmp_i64);
  printf("ack -> qvm ip answer (%d of %d runs): p50 %.2f ms  p99 %.2f ms  min %.2f ms  max "
         "%.2f ms\n",
         n, runs, us[n / 2] / 1000.0, us[(n * 99) / 100] / 1000.0, us[0] / 1000.0,
         us[n - 1] / 1000.0);
  free(us);
  free(root);
  return 0;
}
