/* SPDX-License-Identifier: MIT */
#ifndef QVM_UTIL_TIME_H
#define QVM_UTIL_TIME_H

#include <stdint.h>

/* CLOCK_MONOTONIC in milliseconds / microseconds: for deadlines and phases. */
int64_t qvm_now_ms(void);
int64_t qvm_now_us(void);
/* CLOCK_REALTIME in microseconds since the epoch: for logs and events. */
int64_t qvm_realtime_us(void);
/* Milliseconds left until deadline_ms (monotonic), clamped at 0; -1 stays -1. */
int qvm_deadline_left_ms(int64_t deadline_ms);
/* Formats realtime microseconds as RFC 3339 UTC with microseconds. */
void qvm_format_rfc3339(char buf[32], int64_t realtime_us);

#endif
