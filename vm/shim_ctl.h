/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_SHIM_CTL_H
#define QVM_VM_SHIM_CTL_H

/* The shim's control socket, ctl.sock: JSON lines, served by the shim's
 * poll loop (docs/shim-protocol.md). Every fd is non-blocking; nothing here
 * waits on a client. */
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "util/error.h"

struct shim;
typedef struct shim_ctl shim_ctl;

#define SHIM_CTL_CLIENTS 16
#define SHIM_CTL_LINE_MAX (64 << 10)  /* one request line, without its '\n' */
#define SHIM_CTL_OUT_MAX (1 << 20)    /* queued output per client; past it, dropped */
#define SHIM_CTL_RING 512             /* events kept for replay */
#define SHIM_CTL_RING_BYTES (4 << 20) /* ... and at most this many bytes of them */
/* A passthrough QMP command; the loop waits. Under TCG on a loaded host
 * QEMU's monitor can take seconds to answer (a snapshot-save behind a busy
 * main loop went past 5 s at load 6 on 2 cores). */
#define SHIM_CTL_QMP_TIMEOUT_MS 15000
/* listener + clients */
#define SHIM_CTL_POLLFDS (1 + SHIM_CTL_CLIENTS)

/* Binds path (0600; a stale socket there is replaced) and listens. Clients
 * that connect before the loop runs wait in the backlog. */
int shim_ctl_open(shim_ctl **out, const char *path, qvm_error **err);
void shim_ctl_free(shim_ctl *c);

/* Fills SHIM_CTL_POLLFDS entries (fd -1 where there is nothing to wait for). */
void shim_ctl_pollfds(const shim_ctl *c, struct pollfd *pfd);
/* After poll: accepts, reads and answers, writes what is queued. At most
 * one qmp passthrough per client per call waits on QEMU; the rest stays
 * buffered, and shim_ctl_pending() says so: then poll with timeout 0 and
 * call this again (also when poll returned 0). */
void shim_ctl_handle(shim_ctl *c, struct shim *s, const struct pollfd *pfd);
bool shim_ctl_pending(const shim_ctl *c);

/* An event line as written to events.jsonl (without '\n'): gets the next
 * seq, goes into the ring and to every subscriber. */
void shim_ctl_event(shim_ctl *c, const char *line, size_t len);
/* The newest event's seq (0 when none). */
unsigned long long shim_ctl_seq(const shim_ctl *c);
/* A stop job moved on ("quit", "kill"). */
void shim_ctl_progress(shim_ctl *c, const char *phase);
/* QEMU is gone and its exit recorded: every job gets its "done" message
 * with the exit record (borrowed), the output is flushed for at most
 * flush_ms, and every connection is closed. */
void shim_ctl_finish(shim_ctl *c, struct json_object *exit_record, int flush_ms);

#endif
