/* SPDX-License-Identifier: MIT */
/* qvm up on a terminal: a live line under the finished phases, redrawn twice
 * a second, naming the phase up waits for, the time since up began, and the
 * guest's latest serial line (neutralized: it is the guest's text). */
#include "up_live.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <qvm/text.h>
#include <qvm/vm.h>

#include "cli.h"

#define LIVE_TICK_MS 500
#define LIVE_TAIL_BYTES 4096

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int columns(void) {
  struct winsize ws;
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40) return ws.ws_col;
  return 80;
}

/* The last non-empty line of the VM's serial log, made safe for a terminal. */
static char *serial_last_line(up_live *l) {
  if (!l->vm && qvm_cli_open(&l->vm, l->name, NULL) < 0) return NULL;
  const char *path = qvm_vm_serial_log_path(l->vm);
  int fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK) : -1;
  if (fd < 0) return NULL;
  char buf[LIVE_TAIL_BYTES + 1];
  off_t end = lseek(fd, 0, SEEK_END);
  off_t from = end > LIVE_TAIL_BYTES ? end - LIVE_TAIL_BYTES : 0;
  ssize_t n = end > 0 ? pread(fd, buf, (size_t)(end - from), from) : 0;
  close(fd);
  if (n <= 0) return NULL;
  buf[n] = '\0';
  size_t len = (size_t)n;
  while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ')) len--;
  size_t start = len;
  while (start && buf[start - 1] != '\n' && buf[start - 1] != '\r') start--;
  return len > start ? qvm_text_for_terminal(buf + start, len - start, 0) : NULL;
}

static void draw(up_live *l) {
  double s = (double)(now_ms() - l->t0_ms) / 1000.0;
  const char *phase =
      l->next < QVM_UP_N_PHASES ? qvm_up_phase_name((qvm_up_phase)l->next) : "the end";
  char head[96];
  int hn = snprintf(head, sizeof head, "  %-11s %7.1f s  waiting", phase, s);
  char *line = serial_last_line(l);
  int room = columns() - 1 - hn - 3;
  /* \r and erase: the line is redrawn in place; a phase line clears it */
  if (line && room > 8) {
    /* cut on a character boundary: no UTF-8 sequence is split */
    int cut = (int)strlen(line);
    if (cut > room) {
      cut = room;
      while (cut > 0 && ((unsigned char)line[cut] & 0xc0) == 0x80) cut--;
    }
    printf("\r\033[K%s | %.*s", head, cut, line);
  } else {
    printf("\r\033[K%s", head);
  }
  fflush(stdout);
  l->drawn = true;
  free(line);
}

static void *live_main(void *arg) {
  up_live *l = arg;
  pthread_mutex_lock(&l->mu);
  while (!l->stop) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += LIVE_TICK_MS * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&l->cv, &l->mu, &until);
    /* from 'started' on: before it an image pull may draw its own bar */
    if (!l->stop && l->next > QVM_UP_STARTED) draw(l);
  }
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

void up_live_start(up_live *l, const char *name, bool enabled) {
  memset(l, 0, sizeof *l);
  l->name = name;
  l->t0_ms = now_ms();
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
  l->running = enabled && pthread_create(&l->thread, NULL, live_main, l) == 0;
}

void up_live_lock(up_live *l) {
  pthread_mutex_lock(&l->mu);
  if (l->drawn) {
    printf("\r\033[K");
    l->drawn = false;
  }
}

void up_live_unlock(up_live *l) { pthread_mutex_unlock(&l->mu); }

void up_live_phase_done(up_live *l, int phase) {
  if (phase + 1 > l->next) l->next = phase + 1;
  pthread_mutex_unlock(&l->mu);
}

void up_live_stop(up_live *l) {
  pthread_mutex_lock(&l->mu);
  l->stop = true;
  pthread_cond_signal(&l->cv);
  pthread_mutex_unlock(&l->mu);
  if (l->running) pthread_join(l->thread, NULL);
  if (l->drawn) {
    printf("\r\033[K");
    fflush(stdout);
  }
  qvm_vm_free(l->vm);
  pthread_cond_destroy(&l->cv);
  pthread_mutex_destroy(&l->mu);
}
