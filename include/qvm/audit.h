/* SPDX-License-Identifier: MIT */
#ifndef QVM_AUDIT_H
#define QVM_AUDIT_H

/*
 * The audit log: one append-only file per state directory (as root,
 * /var/lib/qvm/audit/audit.jsonl; a user's in $XDG_DATA_HOME/qvm/audit/),
 * dir 0700, file 0600, that outlives every VM. libqvm appends a record for
 * each state change and remote action wherever it happens (create, start,
 * stop, kill, restart, rm, snapshot create/restore/rm, clone, exec (start
 * and end), ssh session open/close, cp, provision), so the CLI and any other caller log
 * alike. docs/cli.md ("qvm audit") has the format; in short, one JSON object a line:
 *
 *   {"seq":N,"time":"2026-11-29T18:02:14.123Z",
 *    "actor":{"uid":U,"user":"NAME","agent":"ID"},"vm":"NAME"|null,
 *    "action":"exec","details":{...},"prev":"HEX","hash":"HEX"}
 *
 * seq counts from 1 without gaps; prev is the sha256 of the previous line's
 * bytes (without its newline; 64 zeros for the first); hash is the sha256 of
 * this line's bytes before `,"hash":"`. So an edited line fails its own hash,
 * and a removed one leaves a seq gap and a prev that does not match: `qvm
 * audit verify` names the first bad line. The chain carries no secret: whoever
 * can write the file (its owner, root) can rewrite the whole chain, or cut
 * its tail; keep a copy of the last hash (qvm_audit_verify's head) elsewhere
 * and pass it back as known_head to catch that. Guest output is never logged, only its size and
 * sha256; strings are valid UTF-8 (a bad byte becomes U+FFFD), JSON-escaped and bounded, so no
 * value can break a line.
 *
 * Appends are atomic among processes and threads: flock on the log, then one
 * write(2) with O_APPEND, then fdatasync. The actor is the real uid, its user
 * name, and the agent id from $QVM_AGENT when set (qvm --agent ID sets it).
 * A record that cannot be written never fails or undoes the action it
 * describes (that already happened); verify shows the damage.
 */
#include <stdbool.h>
#include <stdint.h>

#include <qvm/error.h>
#include <qvm/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bounds of what the log takes. */
#define QVM_AUDIT_AGENT_MAX 128           /* bytes of an agent id */
#define QVM_AUDIT_LINE_MAX (256u << 10)   /* bytes of one record */
#define QVM_AUDIT_DETAILS_MAX (64u << 10) /* bytes of qvm_audit_append's details */

/* An agent id for --agent: 1 to QVM_AUDIT_AGENT_MAX bytes of
 * [A-Za-z0-9._@:+=-], starting with a letter or digit. */
QVM_API bool qvm_audit_agent_valid(const char *agent);

/* The agent id this thread's records name as actor.agent, instead of
 * $QVM_AGENT: for a server that acts for several agents from its threads
 * (qvmd, for an agent token's requests). NULL clears it. QVM_EINVAL for an
 * id qvm_audit_agent_valid refuses. It stays set until cleared or the
 * thread exits. */
QVM_API int qvm_audit_set_thread_agent(const char *agent, qvm_error **err);

/* The local user this thread acts for, when it is not the process's own: a
 * server that serves other Unix users on its socket (qvmd with
 * --socket-group) names the caller as actor.peer {"uid","user"} beside the
 * process's own uid. A negative uid clears it. Like the agent, it stays set
 * until cleared or the thread exits. */
QVM_API void qvm_audit_set_thread_peer(int64_t uid);

/* The log's path (the caller's; free()), whether or not it exists yet. */
QVM_API int qvm_audit_path(char **out, qvm_error **err);

/* Appends a record of the caller's own. vm: a valid VM name or NULL; action:
 * [a-z][a-z0-9-]{0,31}; details_json: a JSON object (strict, UTF-8, at most
 * QVM_AUDIT_DETAILS_MAX bytes) or NULL for {}. QVM_EINVAL for bad input;
 * QVM_EPROTO when the log's last record is damaged (verify names it). */
QVM_API int qvm_audit_append(const char *vm, const char *action, const char *details_json,
                             qvm_error **err);

typedef struct qvm_audit_verify_result {
  uint64_t records;  /* good records before the first bad one (all of them if none) */
  uint64_t bad_line; /* 1-based number of the first bad line; 0: the chain is intact */
  char reason[192];  /* why bad_line is bad: "hash mismatch ...", "seq gap ...", "unparsable ..." */
  char head[65];     /* sha256 (hex) of the last good line; "" when there is none */
  uint64_t known_head_line; /* the good line whose hash is known_head; 0: none is */
} qvm_audit_verify_result;

/* Checks every line of the log in order. Returns 0 whether or not the chain
 * is intact (see out->bad_line); an error only when the log cannot be read
 * (or QVM_EINVAL for a known_head that is not 64 lowercase hex digits). No
 * log yet is an intact chain of 0 records. known_head (may be NULL): a head
 * saved earlier; out->known_head_line says where it is in the good chain, so
 * 0 means records were cut off the end or the chain was rewritten. */
QVM_API int qvm_audit_verify(qvm_audit_verify_result *out, const char *known_head, qvm_error **err);

#define QVM_AUDIT_FILTER_VERSION 1
typedef struct qvm_audit_filter {
  unsigned version;  /* QVM_AUDIT_FILTER_VERSION */
  const char *vm;    /* only this VM's records; NULL: all */
  const char *agent; /* only records with this actor.agent; NULL: all */
  int64_t since_us;  /* only records at or after this realtime (µs since the epoch); 0: all */
} qvm_audit_filter;
#define QVM_AUDIT_FILTER_INIT                                                                      \
  { .version = QVM_AUDIT_FILTER_VERSION }

/* The matching records, oldest first, as one JSON array of the record
 * objects (*out_json is the caller's; free()). Lines that do not parse are
 * left out (qvm_audit_verify reports them). filter may be NULL. */
QVM_API int qvm_audit_list(char **out_json, const qvm_audit_filter *filter, qvm_error **err);

#ifdef __cplusplus
}
#endif
#endif
