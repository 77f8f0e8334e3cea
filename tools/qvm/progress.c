/* SPDX-License-Identifier: MIT */
/* The progress renderer of qvm image (see progress.h). */
#include "progress.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <qvm/text.h>

#include "cli.h"

#define NOTE_MAX 160
#define BAR_WIDTH 24

void qvm_cli_progress_init(qvm_cli_progress *p, qvm_cli_progress_mode mode) {
  memset(p, 0, sizeof *p);
  p->out = stderr;
  p->json = mode == QVM_CLI_PROGRESS_JSON;
  p->quiet = mode == QVM_CLI_PROGRESS_QUIET;
  p->tty = mode == QVM_CLI_PROGRESS_AUTO && isatty(fileno(stderr));
}

static void bytes(char *out, size_t size, uint64_t b) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)b;
  size_t u = 0;
  while (v >= 1024 && u + 1 < sizeof units / sizeof *units) v /= 1024, u++;
  snprintf(out, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

/* The note neutralized and cut to NOTE_MAX bytes (at a character). */
static void safe_note(char out[NOTE_MAX + 1], const char *note) {
  out[0] = '\0';
  if (note) qvm_text_for_terminal_into(out, NOTE_MAX + 1, note, strlen(note), 0);
}

static void print_json(qvm_cli_progress *p, const qvm_image_progress *ev, const char *note) {
  fprintf(p->out,
          "{\"phase\":\"%s\",\"done\":%" PRIu64 ",\"total\":%" PRIu64 ",\"rate\":%" PRIu64
          ",\"eta_ms\":%" PRId64 ",\"attempt\":%u,\"note\":",
          ev->phase, ev->done, ev->total, ev->rate, ev->eta_ms, ev->attempt);
  if (ev->note)
    qvm_cli_json_string(p->out, note);
  else
    fputs("null", p->out);
  fputs("}\n", p->out);
  fflush(p->out);
}

static void print_bar(qvm_cli_progress *p, const qvm_image_progress *ev) {
  char done[32], total[32], rate[32], eta[32] = "";
  bytes(done, sizeof done, ev->done);
  bytes(rate, sizeof rate, ev->rate);
  if (ev->eta_ms >= 0)
    snprintf(eta, sizeof eta, " ETA %" PRId64 ":%02" PRId64, ev->eta_ms / 60000,
             (ev->eta_ms / 1000) % 60);
  if (ev->total) {
    bytes(total, sizeof total, ev->total);
    unsigned pct = (unsigned)(ev->done >= ev->total ? 100 : ev->done * 100 / ev->total);
    char bar[BAR_WIDTH + 1];
    size_t fill = pct * BAR_WIDTH / 100;
    memset(bar, '#', fill);
    memset(bar + fill, '-', BAR_WIDTH - fill);
    bar[BAR_WIDTH] = '\0';
    fprintf(p->out, "\r\033[K%s [%s] %3u%% %s / %s  %s/s%s", ev->phase, bar, pct, done, total, rate,
            eta);
  } else {
    fprintf(p->out, "\r\033[K%s %s  %s/s", ev->phase, done, rate);
  }
  fflush(p->out);
  p->drawn = true;
}

void qvm_cli_image_progress(const qvm_image_progress *ev, void *userdata) {
  qvm_cli_progress *p = userdata;
  if (p->quiet || !ev || !ev->phase) return;
  char note[NOTE_MAX + 1];
  safe_note(note, ev->note);
  if (p->json) {
    print_json(p, ev, note);
    return;
  }
  bool is_new = strcmp(p->last_phase, ev->phase) || ev->attempt != p->last_attempt;
  snprintf(p->last_phase, sizeof p->last_phase, "%s", ev->phase);
  p->last_attempt = ev->attempt;
  if (p->tty && !strcmp(ev->phase, "download")) {
    print_bar(p, ev);
    return;
  }
  if (!is_new) return;
  qvm_cli_progress_end(p);
  if (!strcmp(ev->phase, "done")) return;
  fprintf(p->out, "%s%s%s\n", ev->phase, note[0] ? ": " : "", note);
  fflush(p->out);
}

void qvm_cli_progress_end(qvm_cli_progress *p) {
  if (!p->drawn) return;
  fputs("\r\033[K", p->out);
  fflush(p->out);
  p->drawn = false;
}
