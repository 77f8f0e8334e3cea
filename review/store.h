/* SPDX-License-Identifier: MIT */
#ifndef QVM_REVIEW_STORE_H
#define QVM_REVIEW_STORE_H

/*
 * Change sets on disk: STATE/reviews/ID/ (0700) with meta.json, diff.json,
 * playbook/ (files 0600) and lock. meta.json is read and written only here,
 * checked on every read (docs/ARCHITECTURE.md, "Review").
 */
#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "util/error.h"

static inline void review_json_putp(struct json_object **o) { json_object_put(*o); }

#define REVIEW_META "meta.json"
#define REVIEW_DIFF "diff.json"
#define REVIEW_PLAYBOOK_DIR "playbook"
#define REVIEW_PLAYBOOK "playbook.yml"
#define REVIEW_COMMENT_MAX 4096
#define REVIEW_DIFF_MAX (256u << 20) /* diff.json with file content kept */

/* Statuses, in meta.json's words. */
#define REVIEW_PENDING "pending"
#define REVIEW_PENDING_DIFF "pending-with-differences"
#define REVIEW_APPROVED "approved"
#define REVIEW_REJECTED "rejected"
#define REVIEW_APPLIED "applied"

/* STATE/reviews (made 0700 with prepare). */
int review_root(char **out, bool prepare, qvm_error **err);
/* STATE/reviews/ID after checking id; QVM_ENOTFOUND when it does not exist. */
int review_dir(char **out, const char *id, qvm_error **err);

/* An open change set: its dir, the lock (held) and meta.json, checked. */
typedef struct review {
  char id[16];
  char *dir;
  int lock_fd;
  struct json_object *meta;
} review;
/* Locks and reads ID (waits up to 10 s for the lock: QVM_EBUSY). */
int review_open(review *out, const char *id, qvm_error **err);
/* Without the lock, to read only (meta.json is replaced atomically): show
 * and ls do not wait for an apply that holds the lock. */
int review_open_as(review *out, const char *id, bool lock, qvm_error **err);
void review_close(review *r);
/* Writes r->meta to meta.json (atomic, 0600). */
int review_save(review *r, qvm_error **err);

/* Checks a parsed meta.json for change set id (QVM_EINVAL naming what). */
int review_meta_check(struct json_object *meta, const char *id, qvm_error **err);
const char *review_meta_string(struct json_object *meta, const char *key);
/* {"uid","user","agent"} of this process ($QVM_AGENT, or agent when given). */
struct json_object *review_actor(const char *agent);
/* The agent of an actor object, or NULL. */
const char *review_actor_agent(struct json_object *actor);

/* sha256 (hex) of a file, and of a playbook dir's content: a sorted
 * manifest of its dirs and regular files (name, sha256); anything else in
 * it (a symlink, a device) is QVM_EINVAL. */
int review_hash_file(char out[65], const char *path, qvm_error **err);
int review_hash_tree(char out[65], const char *dir, qvm_error **err);
/* Both hashes of a change set as now on disk. */
int review_hashes(char diff[65], char playbook[65], const char *dir, qvm_error **err);

/* Records a new change set from a diff.json text and a playbook dir made by
 * the caller (moved in; its files are made 0600, dirs 0700). meta_extra's
 * members (base, changes, incomplete, replay, ...) are added to meta.json;
 * it is taken. status is REVIEW_PENDING or REVIEW_PENDING_DIFF. */
int review_record(char **out_id, const char *vm, const char *agent, const char *status,
                  const char *diff_json, size_t diff_len, const char *playbook_src,
                  struct json_object *meta_extra, qvm_error **err);

/* Appends {"action","actor","time",...extra} to meta's history. */
void review_history_add(struct json_object *meta, const char *action, const char *comment,
                        struct json_object *extra);

/* A comment: at most REVIEW_COMMENT_MAX bytes of valid UTF-8 without control
 * bytes but newline and tab. NULL is fine. */
int review_comment_check(const char *comment, qvm_error **err);

/* The audit record of a step (best effort), with the change set's id. */
void review_audit(const char *vm, const char *action, const char *id, int r,
                  const qvm_error *const *err, struct json_object *details);

#endif
