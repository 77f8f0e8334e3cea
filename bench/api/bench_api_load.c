/* SPDX-License-Identifier: MIT */
/*
 * A small HTTP/1.1 load generator for bench/api: C clients (threads), each on
 * one keep-alive connection to a UNIX socket, send GET PATH back to back and
 * time each answer (status line to the last body byte, by Content-Length).
 * Prints "p50_ms p99_ms requests_per_s bytes_per_answer"; exits 1 on any
 * answer that is not 200 or a connection that fails.
 *
 *   bench_api_load SOCKET PATH CLIENTS REQUESTS
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define BUF_MAX (8u << 20)

typedef struct client {
  const char *sock, *path;
  int n;
  int64_t *us;
  size_t body;
  int failed;
  pthread_t t;
} client;

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int dial(const char *path) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a.sun_path) return -1;
  strcpy(a.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    fd = -1;
  }
  return fd;
}

/* One answer into buf: headers, then Content-Length bytes. *body_len its
 * body's length; -1 on a short read, a bad status or a missing length. */
static int answer(int fd, char *buf, size_t *have, size_t *body_len) {
  for (;;) {
    char *end = memmem(buf, *have, "\r\n\r\n", 4);
    if (end) {
      size_t head = (size_t)(end - buf) + 4;
      if (*have < 12 || memcmp(buf + 9, "200", 3) != 0) return -1;
      const char *cl = memmem(buf, head, "Content-Length:", 15);
      if (!cl) cl = memmem(buf, head, "content-length:", 15);
      if (!cl) return -1;
      size_t len = strtoul(cl + 15, NULL, 10), total = head + len;
      if (total > BUF_MAX) return -1;
      while (*have < total) {
        ssize_t r = read(fd, buf + *have, BUF_MAX - *have);
        if (r <= 0) return -1;
        *have += (size_t)r;
      }
      memmove(buf, buf + total, *have - total);
      *have -= total;
      *body_len = len;
      return 0;
    }
    if (*have == BUF_MAX) return -1;
    ssize_t r = read(fd, buf + *have, BUF_MAX - *have);
    if (r <= 0) return -1;
    *have += (size_t)r;
  }
}

static void *run(void *arg) {
  client *c = arg;
  char *buf = malloc(BUF_MAX), req[512];
  int fd = dial(c->sock);
  int rl = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: qvmd\r\n\r\n", c->path);
  size_t have = 0;
  if (!buf || fd < 0 || rl <= 0 || (size_t)rl >= sizeof req) c->failed = 1;
  for (int i = 0; !c->failed && i < c->n; i++) {
    int64_t t0 = now_us();
    if (write(fd, req, (size_t)rl) != rl || answer(fd, buf, &have, &c->body) < 0) {
      c->failed = 1;
      break;
    }
    c->us[i] = now_us() - t0;
  }
  if (fd >= 0) close(fd);
  free(buf);
  return NULL;
}

static int cmp(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: bench_api_load SOCKET PATH CLIENTS REQUESTS\n");
    return 2;
  }
  int nc = atoi(argv[3]), total = atoi(argv[4]);
  if (nc < 1 || nc > 256 || total < nc || total > 10000000) {
    fprintf(stderr, "bench_api_load: 1..256 clients, at least one request each\n");
    return 2;
  }
  client *cs = calloc((size_t)nc, sizeof *cs);
  int64_t *all = calloc((size_t)total, sizeof *all);
  if (!cs || !all) return 1;
  int per = total / nc, off = 0;
  int64_t t0 = now_us();
  for (int i = 0; i < nc; i++) {
    cs[i] = (client){.sock = argv[1], .path = argv[2], .n = per, .us = all + off};
    off += per;
    if (pthread_create(&cs[i].t, NULL, run, &cs[i]) != 0) return 1;
  }
  int failed = 0;
  for (int i = 0; i < nc; i++) {
    pthread_join(cs[i].t, NULL);
    failed |= cs[i].failed;
  }
  int64_t wall = now_us() - t0;
  if (failed) {
    fprintf(stderr, "bench_api_load: a request failed (not 200, or the connection)\n");
    return 1;
  }
  qsort(all, (size_t)off, sizeof *all, cmp);
  printf("%.3f %.3f %.0f %zu\n", all[off / 2] / 1000.0, all[(size_t)off * 99 / 100] / 1000.0,
         off / (wall / 1e6), cs[0].body);
  free(all);
  free(cs);
  return 0;
}
