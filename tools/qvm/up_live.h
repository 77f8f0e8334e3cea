/* SPDX-License-Identifier: MIT */
#ifndef QVM_TOOLS_UP_LIVE_H
#define QVM_TOOLS_UP_LIVE_H

/* qvm up's live line on a terminal (up_live.c). */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <qvm/up.h>

typedef struct up_live {
  const char *name;
  qvm_vm *vm; /* opened once the VM exists, for its serial log */
  int64_t t0_ms;
  int next; /* the phase waited for */
  bool drawn, stop, running;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
} up_live;

/* enabled: stdout is a terminal and not --json; else nothing is drawn. */
void up_live_start(up_live *l, const char *name, bool enabled);
/* Around a phase line: lock clears a drawn line; phase_done unlocks, and
 * the next phase is the one waited for. */
void up_live_lock(up_live *l);
void up_live_phase_done(up_live *l, int phase);
void up_live_unlock(up_live *l); /* after other output, e.g. provision's */
/* Stops the thread and clears the line. */
void up_live_stop(up_live *l);

#endif
