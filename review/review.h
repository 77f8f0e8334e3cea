/* SPDX-License-Identifier: MIT */
#ifndef QVM_REVIEW_REVIEW_H
#define QVM_REVIEW_REVIEW_H

/* What review/'s files share besides the store: running ansible-playbook,
 * reading its recap, and the hash check of a change set. */
#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "review/store.h"
#include "util/error.h"

/* Runs ansible-playbook (found on $PATH: QVM_EUNAVAIL when it is not) with
 * argv (argv[0] is "ansible-playbook"), in cwd, stdout and stderr to log
 * (0600), ANSIBLE_CONFIG set to a private cwd/ansible.cfg (so no
 * ansible.cfg of the current directory or the user is read), colours off,
 * one SSH connection master per host (sockets in a mkdtemp directory of
 * /tmp), ended and removed when the run is;
 * killed after timeout_ms (QVM_ETIMEOUT). *out_status: its exit status
 * (128 + N for a signal). */
int review_ansible(int *out_status, const char *const *argv, const char *cwd, const char *log,
                   int timeout_ms, qvm_error **err);

/* The PLAY RECAP's counts, summed over hosts; false when there is none. */
typedef struct review_recap {
  long ok, changed, unreachable, failed;
} review_recap;
bool review_recap_parse(review_recap *out, const char *text, size_t len);

/* diff.json and the playbook dir hash as meta.json says, and as bound
 * (an approval object's sha256s) when bound is not NULL: else QVM_EINVAL,
 * class "ReviewTampered". */
int review_hashes_match(const review *rv, struct json_object *bound, qvm_error **err);

/* inventory.json and known_hosts in run for the running VM target (a login
 * first checks, or for a tofu VM pins, its host key); *out: the inventory. */
/* timeout_ms: the run's (a sandbox's certificate is made to outlive it);
 * on failure nothing of it is left in run. */
int review_target_inventory(char **out, const char *target, const char *run, int timeout_ms,
                            qvm_error **err);
/* Removes the client key copy review_target_inventory put in run. */
void review_target_done(const char *run);

struct qvm_diff;
/* The residual of a replay: an array of {"path","why"} (at most 1000) where
 * clone_diff's resulting state differs from vm_diff's; returns the count. */
int review_residual(struct json_object **out, const struct qvm_diff *vm_diff,
                    const struct qvm_diff *clone_diff);
/* Clones VM at snapshot into a throwaway VM (up), applies playbook_dir's
 * playbook to it, stops it, diffs it and compares (review_residual);
 * removes the clone. *out: {"clone","exit","changed","residual",
 * "residual_count","stale"}. */
int review_replay(struct json_object **out, const char *vm, const char *snapshot,
                  const struct qvm_diff *d, const char *playbook_dir, const char *scratch,
                  int timeout_ms, qvm_error **err);

#endif
