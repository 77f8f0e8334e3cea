/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the connection logic above the framing (greeting, id matching,
 * event queue, EOF handling): the input is everything a QMP server says,
 * pre-written into a socketpair followed by EOF, so every run is
 * deterministic and ends without waiting. The client negotiates (id qvm-1),
 * runs query-status (qvm-2) and stop (qvm-3), then drains events.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qmp/qmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A socketpair buffers a few hundred KiB; stay well under it. */
#define MAX_INPUT 65536

static void drain_events(qvm_qmp *qmp) {
  for (int i = 0; i < 1000; i++) {
    struct json_object *ev = NULL;
    qvm_error *err = NULL;
    int r = qvm_qmp_next_event(&ev, qmp, &err);
    qvm_error_free(err);
    if (r < 0 || !ev) return;
    if (!json_object_is_type(ev, json_type_object)) abort();
    json_object_put(ev);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > MAX_INPUT) return 0;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) abort();
  if (size && write(sv[1], data, size) != (ssize_t)size) abort();
  shutdown(sv[1], SHUT_WR);
  qvm_qmp_options opts = QVM_QMP_OPTIONS_INIT;
  opts.timeout_ms = 5000; /* never reached: EOF always follows the input */
  opts.max_message = 4096;
  opts.max_depth = 16;
  opts.max_events = 8;
  qvm_qmp *qmp = NULL;
  qvm_error *err = NULL;
  if (qvm_qmp_open_fd(&qmp, sv[0], &opts, &err) == 0) {
    const char *cmds[] = {"query-status", "stop"};
    for (size_t i = 0; i < 2; i++) {
      struct json_object *ret = NULL;
      qvm_error *cerr = NULL;
      int r = qvm_qmp_execute(&ret, qmp, cmds[i], NULL, &cerr);
      if ((r == 0) != (cerr == NULL)) abort();
      if (r == QVM_EQMP && !qvm_error_class(cerr)) abort();
      qvm_error_free(cerr);
      json_object_put(ret);
    }
    struct json_object *ev = NULL;
    qvm_error *werr = NULL;
    if (qvm_qmp_wait_event(&ev, qmp, "SHUTDOWN", 5000, &werr) == 0) json_object_put(ev);
    qvm_error_free(werr);
    drain_events(qmp);
    qvm_qmp_free(qmp);
  } else if (!err || qmp) {
    abort();
  }
  qvm_error_free(err);
  close(sv[1]);
  return 0;
}
