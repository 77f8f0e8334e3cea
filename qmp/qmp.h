/* SPDX-License-Identifier: MIT */
#ifndef QVM_QMP_QMP_H
#define QVM_QMP_QMP_H

/*
 * A QMP client: one connection to one QEMU monitor.
 *
 * All I/O is poll()-based on a non-blocking socket with a timeout on every
 * wait. Replies are matched to commands by "id"; events that arrive before or
 * between replies are queued in order and never lost. Nothing here prints.
 */
#include <stddef.h>

#include <json-c/json.h>

#include <qvm/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qvm_qmp qvm_qmp;

typedef struct qvm_qmp_options {
  int timeout_ms;     /* default for connect/greeting/execute; -1 = forever */
  size_t max_message; /* bytes in one reply or event line; bigger is refused */
  size_t max_depth;   /* JSON nesting limit */
  size_t max_events;  /* queued events kept; the oldest are dropped past it */
} qvm_qmp_options;

#define QVM_QMP_OPTIONS_INIT                                                                       \
  { .timeout_ms = 30000, .max_message = 16u << 20, .max_depth = 64, .max_events = 4096 }

/* Connects to a UNIX socket path (retrying ENOENT/ECONNREFUSED until the
 * timeout, since QEMU may still be starting), reads the greeting and
 * negotiates capabilities. opts may be NULL for the defaults. */
int qvm_qmp_connect(qvm_qmp **out, const char *path, const qvm_qmp_options *opts, qvm_error **err);
/* Same on an already-connected socket; takes ownership of fd (closed on
 * failure too). */
int qvm_qmp_open_fd(qvm_qmp **out, int fd, const qvm_qmp_options *opts, qvm_error **err);
void qvm_qmp_free(qvm_qmp *qmp);

/* From the greeting: "7.2.0", or NULL before it was read. */
const char *qvm_qmp_version(const qvm_qmp *qmp);
/* The greeting's "capabilities" array (borrowed). */
struct json_object *qvm_qmp_capabilities(const qvm_qmp *qmp);

/* Runs one command. args may be NULL and is borrowed. On success *out (if
 * out is not NULL) gets the "return" value, owned by the caller (json_object_put).
 * A QEMU error gives QVM_EQMP with QEMU's class in qvm_error_class() and its
 * description in the message. EOF gives QVM_EPROTO naming the command. */
int qvm_qmp_execute(struct json_object **out, qvm_qmp *qmp, const char *command,
                    struct json_object *args, qvm_error **err);
/* Same with a timeout for this call only. */
int qvm_qmp_execute_timeout(struct json_object **out, qvm_qmp *qmp, const char *command,
                            struct json_object *args, int timeout_ms, qvm_error **err);
/* Sends fd with SCM_RIGHTS alongside the command, as getfd/add-fd need:
 * e.g. command "getfd" with {"fdname": "tap0"}. fd stays owned by the caller. */
int qvm_qmp_execute_with_fd(struct json_object **out, qvm_qmp *qmp, const char *command,
                            struct json_object *args, int fd, qvm_error **err);

/* Waits for an event named `name` (NULL: any event). Events queued earlier are
 * looked at first, oldest first; a matching one is removed from the queue and
 * returned whole ({"event", "data", "timestamp"}), owned by the caller.
 * Non-matching events stay queued. QVM_ETIMEOUT when none came in time. */
int qvm_qmp_wait_event(struct json_object **out, qvm_qmp *qmp, const char *name, int timeout_ms,
                       qvm_error **err);
/* Pops the oldest queued event without waiting; *out = NULL if none. Reads
 * whatever is already readable on the socket first. */
int qvm_qmp_next_event(struct json_object **out, qvm_qmp *qmp, qvm_error **err);
/* The socket, for a caller's own poll loop (POLLIN means call next_event). */
int qvm_qmp_fd(const qvm_qmp *qmp);
/* Replies of timed-out commands that QEMU has not sent yet (bounded by the
 * abandoned-reply table's size): non-zero while QEMU still owes one. */
size_t qvm_qmp_abandoned_pending(const qvm_qmp *qmp);
/* Events dropped because the queue held max_events (oldest go first). */
size_t qvm_qmp_events_dropped(const qvm_qmp *qmp);

#ifdef __cplusplus
}
#endif
#endif
