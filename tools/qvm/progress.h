/* SPDX-License-Identifier: MIT */
#ifndef QVM_TOOLS_PROGRESS_H
#define QVM_TOOLS_PROGRESS_H

/*
 * Progress of a pull (or a build) on stderr; the result goes to stdout.
 *   - a terminal: one line redrawn in place ("\r"): the phase, a bar with
 *     percent, bytes, rate and ETA; cleared when the operation ends;
 *   - not a terminal: one line per phase (and per retry);
 *   - json: one JSON object per event, one a line (JSON Lines):
 *     {"phase":..,"done":..,"total":..,"rate":..,"eta_ms":..,"attempt":..,"note":..}
 *   - quiet: nothing.
 * Notes (URLs, retry reasons) come from servers: neutralized and cut.
 */
#include <stdbool.h>
#include <stdio.h>

#include <qvm/image.h>

typedef enum qvm_cli_progress_mode {
  QVM_CLI_PROGRESS_AUTO, /* a bar on a terminal, lines otherwise */
  QVM_CLI_PROGRESS_JSON,
  QVM_CLI_PROGRESS_QUIET,
} qvm_cli_progress_mode;

typedef struct qvm_cli_progress {
  FILE *out;
  bool tty, json, quiet;
  bool drawn;          /* a bar is on the line now */
  char last_phase[32]; /* for one line per phase */
  unsigned last_attempt;
} qvm_cli_progress;

void qvm_cli_progress_init(qvm_cli_progress *p, qvm_cli_progress_mode mode);
/* The mode a verb's --quiet and --json ask for (--quiet wins). */
static inline qvm_cli_progress_mode qvm_cli_progress_mode_for(bool quiet, bool json) {
  return quiet ? QVM_CLI_PROGRESS_QUIET : json ? QVM_CLI_PROGRESS_JSON : QVM_CLI_PROGRESS_AUTO;
}
/* A qvm_image_progress_fn; userdata is a qvm_cli_progress. */
void qvm_cli_image_progress(const qvm_image_progress *ev, void *userdata);
/* Clears a bar left on the line (before the result or an error). */
void qvm_cli_progress_end(qvm_cli_progress *p);

#endif
