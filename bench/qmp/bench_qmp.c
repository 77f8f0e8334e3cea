/* SPDX-License-Identifier: MIT */
/*
 * QMP round-trip benchmark: N `query-status` calls against a real QEMU
 * (TCG, paused with -S, no guest), timing each call. The peer, measured in
 * the same run against the same QEMU, is the simplest client that could
 * work: blocking write(), a byte-wise read() of one line, json_tokener_parse.
 * It has no id matching, no event queue, no limits and no timeouts, so the
 * gap between the two is what qvm's safety costs per call.
 *
 * Usage: bench_qmp [CALLS]   (default 10000)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qmp/qmp.h"

#include "qemu_proc.h"
#include "util/time.h"

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static void report(const char *who, int64_t *lat_us, int n, int64_t total_us) {
  qsort(lat_us, (size_t)n, sizeof(*lat_us), cmp_i64);
  printf("%-28s calls=%d  p50=%" PRId64 " us  p99=%" PRId64 " us  max=%" PRId64
         " us  %.0f calls/s\n",
         who, n, lat_us[n / 2], lat_us[(n * 99) / 100], lat_us[n - 1], n / (total_us / 1e6));
}

static int bench_qvm(const char *sock, int n, int64_t *lat) {
  qvm_qmp *qmp = NULL;
  qvm_error *err = NULL;
  if (qvm_qmp_connect(&qmp, sock, NULL, &err) < 0) {
    fprintf(stderr, "qvm connect: %s\n", qvm_error_message(err));
    return -1;
  }
  int64_t start = qvm_now_us();
  for (int i = 0; i < n; i++) {
    int64_t t = qvm_now_us();
    json_object *ret = NULL;
    if (qvm_qmp_execute(&ret, qmp, "query-status", NULL, &err) < 0) {
      fprintf(stderr, "query-status: %s\n", qvm_error_message(err));
      return -1;
    }
    json_object_put(ret);
    lat[i] = qvm_now_us() - t;
  }
  report("qvm_qmp_execute", lat, n, qvm_now_us() - start);
  qvm_qmp_free(qmp);
  return 0;
}

/* The peer: blocking, line at a time, no checks. */
static json_object *naive_read(int fd) {
  char line[65536];
  size_t len = 0;
  for (;;) {
    ssize_t r = read(fd, line + len, 1);
    if (r <= 0 || len + 1 >= sizeof(line)) return NULL;
    if (line[len] == '\n') break;
    len++;
  }
  line[len] = '\0';
  return json_tokener_parse(line);
}

static json_object *naive_command(int fd, const char *cmd) {
  if (write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd)) return NULL;
  for (;;) {
    json_object *msg = naive_read(fd);
    if (!msg || !json_object_object_get_ex(msg, "event", NULL)) return msg;
    json_object_put(msg);
  }
}

static int bench_naive(const char *sock, int n, int64_t *lat) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(sock) >= sizeof(sa.sun_path)) return -1;
  memcpy(sa.sun_path, sock, strlen(sock) + 1);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    perror("naive connect");
    return -1;
  }
  json_object_put(naive_read(fd));
  json_object_put(naive_command(fd, "{\"execute\": \"qmp_capabilities\"}\n"));
  int64_t start = qvm_now_us();
  for (int i = 0; i < n; i++) {
    int64_t t = qvm_now_us();
    json_object *reply = naive_command(fd, "{\"execute\": \"query-status\", \"id\": 1}\n");
    if (!reply) {
      fprintf(stderr, "naive: no reply\n");
      return -1;
    }
    json_object_put(reply);
    lat[i] = qvm_now_us() - t;
  }
  report("peer: blocking read(1)+parse", lat, n, qvm_now_us() - start);
  close(fd);
  return 0;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 10000;
  if (n < 1) n = 10000;
  qemu_proc q;
  char why[256];
  if (qemu_proc_start(&q, NULL, NULL, why, sizeof(why)) < 0) {
    fprintf(stderr, "cannot start qemu: %s\n", why);
    return 1;
  }
  int64_t *lat = calloc((size_t)n, sizeof(*lat));
  printf("qmp round trip: %d x query-status, QEMU paused under TCG (-S)\n", n);
  /* Alternate the order so neither client always gets a warm QEMU. */
  int rc = bench_qvm(q.sock, n, lat) < 0 || bench_naive(q.sock, n, lat) < 0 ||
           bench_qvm(q.sock, n, lat) < 0;
  free(lat);
  qemu_proc_stop(&q);
  return rc;
}
