/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_AUDIT_H
#define QVM_VM_AUDIT_H

/* The audit log's writer for libqvm's own hooks (include/qvm/audit.h has the
 * format and the public side). */
#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "util/error.h"

/* Bounds of one logged string: an argv word, and a path or message. */
#define VM_AUDIT_ARG_MAX 1024
#define VM_AUDIT_ARGS_MAX 64
#define VM_AUDIT_PATH_MAX 4096

/* The agent id actions are recorded for (qvm --agent, qvmd's agent token,
 * $QVM_AGENT), if a valid one is set; else NULL. */
const char *vm_audit_current_agent(void);

/* Appends one record; takes details (NULL: {}). */
int vm_audit_append(const char *vm, const char *action, struct json_object *details,
                    qvm_error **err);
/* A hook's record, best effort: when r < 0, details gets "error" (the code's
 * name) and "message" (err's, if any). Takes details. */
void vm_audit_note(const char *vm, const char *action, int r, const qvm_error *const *err,
                   struct json_object *details);
/* A JSON string of s as valid UTF-8 (a bad byte becomes U+FFFD) of at most
 * max bytes; *cut (may be NULL) is set when s was shortened. NULL s: NULL
 * (JSON null). */
struct json_object *vm_audit_string(const char *s, size_t max, bool *cut);
/* {"argv":[...],"argc":N} (words bounded as above; "argv_truncated":true
 * when any was cut or left out) added to details. */
void vm_audit_add_argv(struct json_object *details, const char *const *argv);
/* "snapshot create" etc. (vm/snapshot.c's op names) as a record. */
void vm_audit_snapshot(const char *vm, const char *what, const char *snapshot, int r,
                       const qvm_error *const *err);
/* The hooks' records (vm/audit_hooks.c), each one line where the action
 * happens; opts, out and err may be NULL. */
struct qvm_vm_create_options;
void vm_audit_create(const char *vm, const struct qvm_vm_create_options *opts);
void vm_audit_remove(const char *vm, bool force, int r, const qvm_error *const *err);
void vm_audit_run(const char *vm, int r, const int *status, const qvm_error *const *err);
void vm_audit_clone(const char *src, const char *dst, const char *snapshot, int r,
                    const qvm_error *const *err);
void vm_audit_provision(const char *vm, size_t steps, const size_t *failed, int r,
                        const qvm_error *const *err);
/* A user's command (vm/access_audit.c, for qvm_vm_exec_command): as
 * qvm_vm_exec, with "checkpoint" (checkpoint's name; NULL or "": null) in
 * both records. */
struct qvm_ssh_exec_options;
struct qvm_ssh_exec_result;
struct qvm_vm;
struct qvm_ssh;
int vm_exec_options_check(const struct qvm_ssh_exec_options *opts, qvm_error **err);
int vm_exec_user(struct qvm_ssh_exec_result *out, struct qvm_vm *vm, struct qvm_ssh *ssh,
                 const struct qvm_ssh_exec_options *opts, const char *checkpoint, qvm_error **err);
/* The one "exec" record of a user's command that did not run (r, err: why;
 * "checkpoint": null). */
void vm_exec_refused(struct qvm_vm *vm, const struct qvm_ssh_exec_options *opts, int r,
                     const qvm_error *const *err);
/* Lowercase hex of sha256 over bytes. */
void vm_audit_sha256_hex(char out[65], const void *bytes, size_t len);

#endif
