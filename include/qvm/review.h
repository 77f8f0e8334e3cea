/* SPDX-License-Identifier: MIT */
#ifndef QVM_REVIEW_H
#define QVM_REVIEW_H

/*
 * qvm review: change sets with a human gate (docs/ARCHITECTURE.md,
 * "Review"). A change set is what qvm diff found in a VM plus the Ansible
 * playbook that reproduces it, kept in the state dir's reviews/ID/ (0700;
 * files 0600): meta.json, diff.json, playbook/ (playbook.yml, files/).
 *
 * Its status moves:
 *   pending | pending-with-differences --approve--> approved --apply--> applied
 *   pending | pending-with-differences | approved --reject--> rejected (final)
 *   any but rejected --accepted edit--> pending (an approval is void)
 * An approval is bound to the sha256 of diff.json and of the playbook dir's
 * content; apply recomputes both and refuses when either differs. It is
 * refused when the approver's agent id ($QVM_AGENT) equals the author's.
 * Every step, refusals too, goes into the audit log (include/qvm/audit.h)
 * with the actor.
 *
 * An id is 12 lowercase hex digits; every function checks it before it
 * names a path (QVM_EINVAL for anything else). A meta.json that does not
 * parse or holds what no state can (a bad status, a hash that is not 64 hex
 * digits) is QVM_EINVAL naming the review, never a crash.
 */
#include <stdbool.h>
#include <stddef.h>

#include <qvm/error.h>
#include <qvm/export.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QVM_REVIEW_ID_LEN 12

/* 12 lowercase hex digits. */
QVM_API bool qvm_review_id_valid(const char *id);

#define QVM_REVIEW_CREATE_OPTIONS_VERSION 1
typedef struct qvm_review_create_options {
  unsigned version;          /* QVM_REVIEW_CREATE_OPTIONS_VERSION */
  const char *from_snapshot; /* the base: an internal snapshot; NULL: the VM's image */
  const char *agent;         /* the author's agent id; NULL: $QVM_AGENT (may be unset) */
  /* Replay: clone the base into a throwaway VM, apply the playbook to it,
   * diff it against the VM and record what is left ("residual"); the status
   * is then pending only when nothing is left. Needs the base to be a
   * snapshot (a clone of a snapshot), a guest with Python and SSH. */
  bool verify;
  int timeout_ms; /* verify: the clone's boot and SSH; 0: 300000 */
} qvm_review_create_options;
#define QVM_REVIEW_CREATE_OPTIONS_INIT                                                             \
  { .version = QVM_REVIEW_CREATE_OPTIONS_VERSION }

/* Diffs VM vm (keeping file content), writes the playbook and records a
 * change set; *out_id (free()) names it. Errors are qvm_diff_vm's and
 * qvm_diff_ansible's; nothing is left after a failure. */
QVM_API int qvm_review_create(char **out_id, const char *vm, const qvm_review_create_options *opts,
                              qvm_error **err);

/* All change sets, oldest first: a JSON array of their meta objects (free()).
 * A change set whose meta.json is damaged is listed as {"id", "error"}. */
QVM_API int qvm_review_list(char **out_json, qvm_error **err);
/* One change set's meta.json (checked), as JSON text (free()). */
QVM_API int qvm_review_show(char **out_json, const char *id, qvm_error **err);
/* Its diff.json's text (free()). */
QVM_API int qvm_review_diff_json(char **out_json, const char *id, qvm_error **err);
/* The path of its playbook dir (free()); playbook.yml is in it. */
QVM_API int qvm_review_playbook_dir(char **out, const char *id, qvm_error **err);

/* Approves (bound to the current hashes) or rejects, with an optional
 * comment (at most 4096 bytes of UTF-8, no control bytes but newline).
 * QVM_ECONFLICT (class "ReviewState"): the status does not allow it;
 * QVM_EPERM (class "SelfApproval"): the approver's agent id is the
 * author's; QVM_EINVAL (class "ReviewTampered"): diff.json or the playbook
 * no longer has the hash meta.json recorded. */
QVM_API int qvm_review_approve(const char *id, const char *comment, qvm_error **err);
QVM_API int qvm_review_reject(const char *id, const char *comment, qvm_error **err);

/* Edit in two steps, for a caller that runs an editor in between:
 * begin copies playbook.yml to a private file (0600) and returns its path
 * (free()); commit checks that copy with `ansible-playbook --syntax-check`
 * and, when it passes, makes it the playbook: the playbook hash changes
 * and an approval is void (status pending). A failed check is QVM_EINVAL
 * (class "PlaybookSyntax") with ansible's message; the copy is kept for
 * another try. An unchanged copy is no edit (*out_changed false). A
 * playbook changed by someone else since begin is QVM_ECONFLICT. */
QVM_API int qvm_review_edit_begin(char **out_path, const char *id, qvm_error **err);
QVM_API int qvm_review_edit_commit(bool *out_changed, const char *id, qvm_error **err);

#define QVM_REVIEW_APPLY_OPTIONS_VERSION 1
typedef struct qvm_review_apply_options {
  unsigned version;      /* QVM_REVIEW_APPLY_OPTIONS_VERSION */
  const char *target;    /* a running VM: qvm writes the inventory and known_hosts */
  const char *inventory; /* or an inventory file of the caller's */
  int timeout_ms;        /* ansible-playbook's run; 0: 1800000 (30 min) */
} qvm_review_apply_options;
#define QVM_REVIEW_APPLY_OPTIONS_INIT                                                              \
  { .version = QVM_REVIEW_APPLY_OPTIONS_VERSION }

/* Runs ansible-playbook for an approved change set whose hashes still match
 * the approval, and records the result. *out_json (free(); may be NULL):
 * {"id","exit","ok","changed","failed","unreachable","log"} (log: the path
 * of ansible's output). Returns 0 also when ansible failed (see "exit");
 * QVM_ECONFLICT (class "ReviewNotApproved") when not approved,
 * QVM_EINVAL (class "ReviewTampered") on a hash mismatch, QVM_EUNAVAIL
 * without ansible-playbook. */
QVM_API int qvm_review_apply(char **out_json, const char *id, const qvm_review_apply_options *opts,
                             qvm_error **err);

#ifdef __cplusplus
}
#endif
#endif
