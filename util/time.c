/* SPDX-License-Identifier: MIT */
#include "util/time.h"

#include <stdio.h>
#include <time.h>

static int64_t clock_us(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t qvm_now_us(void) { return clock_us(CLOCK_MONOTONIC); }
int64_t qvm_now_ms(void) { return clock_us(CLOCK_MONOTONIC) / 1000; }
int64_t qvm_realtime_us(void) { return clock_us(CLOCK_REALTIME); }

int qvm_deadline_left_ms(int64_t deadline_ms) {
  if (deadline_ms < 0) return -1;
  int64_t left = deadline_ms - qvm_now_ms();
  if (left < 0) return 0;
  return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

void qvm_format_rfc3339(char buf[32], int64_t realtime_us) {
  time_t secs = (time_t)(realtime_us / 1000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  size_t n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, 32 - n, ".%06dZ", (int)(realtime_us % 1000000));
}
