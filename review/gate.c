/* SPDX-License-Identifier: MIT */
/* The human gate: approve, reject, and an edit that voids an approval. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "review/review.h"
#include "review/store.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/time.h"
#include <qvm/review.h>

#define PLAYBOOK_MAX (16u << 20)

static bool status_is(const review *rv, const char *s) {
  return !strcmp(review_meta_string(rv->meta, "status"), s);
}

static bool pending(const review *rv) {
  return status_is(rv, REVIEW_PENDING) || status_is(rv, REVIEW_PENDING_DIFF);
}

static int state_error(qvm_error **err, const review *rv, const char *what) {
  qvm_error_set(err, QVM_ECONFLICT, "review '%s' is %s: it cannot be %s", rv->id,
                review_meta_string(rv->meta, "status"), what);
  return qvm_error_set_hint(err, QVM_ECONFLICT, "ReviewState", rv->id);
}

int review_hashes_match(const review *rv, struct json_object *bound, qvm_error **err) {
  char dh[65], ph[65];
  int r = review_hashes(dh, ph, rv->dir, err);
  if (r < 0) return qvm_error_prefix(err, "review '%s'", rv->id);
  const char *want_d = review_meta_string(rv->meta, "diff_sha256");
  const char *want_p = review_meta_string(rv->meta, "playbook_sha256");
  const char *what = strcmp(dh, want_d)                                         ? "diff.json"
                     : strcmp(ph, want_p)                                       ? "the playbook"
                     : !bound                                                   ? NULL
                     : strcmp(dh, review_meta_string(bound, "diff_sha256"))     ? "diff.json"
                     : strcmp(ph, review_meta_string(bound, "playbook_sha256")) ? "the playbook"
                                                                                : NULL;
  if (!what) return 0;
  qvm_error_set(err, QVM_EINVAL,
                "review '%s': %s is not what was %s (sha256 %.16s... now); it was changed "
                "outside qvm",
                rv->id, what, bound ? "approved" : "recorded", what[0] == 'd' ? dh : ph);
  return qvm_error_set_hint(err, QVM_EINVAL, "ReviewTampered", rv->id);
}

/* The agent that wrote the change set's content and is `me`: its author,
 * or the actor of any edit since (an agent that edited someone else's
 * playbook wrote what would run); NULL when none is. */
static const char *content_agent(const review *rv, const char *me) {
  struct json_object *author = NULL, *history = NULL;
  json_object_object_get_ex(rv->meta, "author", &author);
  const char *by = review_actor_agent(author);
  if (by && !strcmp(by, me)) return by;
  if (!json_object_object_get_ex(rv->meta, "history", &history) ||
      !json_object_is_type(history, json_type_array))
    return NULL;
  for (size_t i = 0; i < json_object_array_length(history); i++) {
    struct json_object *e = json_object_array_get_idx(history, i), *actor = NULL;
    const char *action = review_meta_string(e, "action");
    if (!action || strcmp(action, "edit") || !json_object_object_get_ex(e, "actor", &actor))
      continue;
    const char *editor = review_actor_agent(actor);
    if (editor && !strcmp(editor, me)) return editor;
  }
  return NULL;
}

static int approve_locked(review *rv, const char *comment, qvm_error **err) {
  if (!pending(rv)) return state_error(err, rv, "approved");
  _cleanup_(review_json_putp) struct json_object *actor = review_actor(NULL);
  const char *me = review_actor_agent(actor);
  const char *by = me ? content_agent(rv, me) : NULL;
  if (by) {
    qvm_error_set(err, QVM_EPERM,
                  "review '%s' was made or edited by agent '%s': the same agent cannot approve "
                  "it",
                  rv->id, by);
    return qvm_error_set_hint(err, QVM_EPERM, "SelfApproval", rv->id);
  }
  int r = review_hashes_match(rv, NULL, err);
  if (r < 0) return r;
  char now[32];
  qvm_format_rfc3339(now, qvm_realtime_us());
  struct json_object *ap = json_object_new_object();
  json_object_object_add(ap, "actor", json_object_get(actor));
  json_object_object_add(ap, "time", json_object_new_string(now));
  json_object_object_add(ap, "comment", comment ? json_object_new_string(comment) : NULL);
  json_object_object_add(ap, "diff_sha256",
                         json_object_new_string(review_meta_string(rv->meta, "diff_sha256")));
  json_object_object_add(ap, "playbook_sha256",
                         json_object_new_string(review_meta_string(rv->meta, "playbook_sha256")));
  json_object_object_add(rv->meta, "approval", ap);
  json_object_object_add(rv->meta, "status", json_object_new_string(REVIEW_APPROVED));
  review_history_add(rv->meta, "approve", comment, NULL);
  return review_save(rv, err);
}

static int reject_locked(review *rv, const char *comment, qvm_error **err) {
  if (!pending(rv) && !status_is(rv, REVIEW_APPROVED)) return state_error(err, rv, "rejected");
  json_object_object_add(rv->meta, "approval", NULL);
  json_object_object_add(rv->meta, "status", json_object_new_string(REVIEW_REJECTED));
  review_history_add(rv->meta, "reject", comment, NULL);
  return review_save(rv, err);
}

static int decide(const char *id, bool approve, const char *comment, qvm_error **err) {
  const char *action = approve ? "review-approve" : "review-reject";
  int r = review_comment_check(comment, err);
  if (r < 0) return r;
  review rv;
  if ((r = review_open(&rv, id, err)) < 0) {
    review_audit(NULL, action, qvm_review_id_valid(id) ? id : NULL, r,
                 (const qvm_error *const *)err, NULL);
    return r;
  }
  r = approve ? approve_locked(&rv, comment, err) : reject_locked(&rv, comment, err);
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "comment", comment ? json_object_new_string(comment) : NULL);
  json_object_object_add(d, "diff_sha256",
                         json_object_new_string(review_meta_string(rv.meta, "diff_sha256")));
  json_object_object_add(d, "playbook_sha256",
                         json_object_new_string(review_meta_string(rv.meta, "playbook_sha256")));
  review_audit(review_meta_string(rv.meta, "vm"), action, id, r, (const qvm_error *const *)err, d);
  review_close(&rv);
  return r;
}

int qvm_review_approve(const char *id, const char *comment, qvm_error **err) {
  return decide(id, true, comment, err);
}

int qvm_review_reject(const char *id, const char *comment, qvm_error **err) {
  return decide(id, false, comment, err);
}

/* --- edit --------------------------------------------------------------------------- */

static int edit_paths(const review *rv, char **dir, char **copy, char **base, qvm_error **err) {
  if (asprintf(dir, "%s/edit", rv->dir) < 0 ||
      asprintf(copy, "%s/edit/" REVIEW_PLAYBOOK, rv->dir) < 0 ||
      asprintf(base, "%s/edit/base", rv->dir) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  return 0;
}

static int read_playbook(char **out, size_t *len, const review *rv, qvm_error **err) {
  _cleanup_free_ char *path = NULL;
  if (asprintf(&path, "%s/" REVIEW_PLAYBOOK_DIR "/" REVIEW_PLAYBOOK, rv->dir) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  return qvm_read_file(out, len, path, PLAYBOOK_MAX, err);
}

static int edit_begin_locked(char **out, review *rv, qvm_error **err) {
  if (status_is(rv, REVIEW_REJECTED)) return state_error(err, rv, "edited");
  _cleanup_free_ char *dir = NULL, *copy = NULL, *base = NULL, *text = NULL;
  size_t len = 0;
  int r = edit_paths(rv, &dir, &copy, &base, err);
  if (r < 0) return r;
  /* A copy kept from a refused edit is taken up again only by the actor
   * (user and agent) who began it: another's edit must not carry in what
   * they wrote unseen (an agent's task, then committed under a person's
   * name). Anyone else starts from the playbook. */
  _cleanup_(review_json_putp) struct json_object *actor = review_actor(NULL);
  const char *me = json_object_to_json_string_ext(actor, JSON_C_TO_STRING_PLAIN);
  _cleanup_free_ char *who_path = NULL, *who = NULL;
  size_t who_len = 0;
  if (asprintf(&who_path, "%s/actor", dir) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  struct stat st;
  if (lstat(copy, &st) == 0 && S_ISREG(st.st_mode) && lstat(base, &st) == 0 &&
      qvm_read_file(&who, &who_len, who_path, 4096, NULL) == 0 && !strcmp(who, me)) {
    *out = TAKE_PTR(copy); /* this actor's copy kept from a refused edit: go on with it */
    return 0;
  }
  if ((r = qvm_rm_rf(dir, err)) < 0) return r;
  if (mkdir(dir, 0700) < 0 && errno != EEXIST)
    return qvm_error_set_errno(err, errno, "cannot make '%s'", dir);
  if ((r = qvm_write_file_atomic(who_path, me, strlen(me), 0600, err)) < 0) return r;
  const char *hash = review_meta_string(rv->meta, "playbook_sha256");
  if ((r = read_playbook(&text, &len, rv, err)) < 0 ||
      (r = qvm_write_file_atomic(copy, text, len, 0600, err)) < 0 ||
      (r = qvm_write_file_atomic(base, hash, strlen(hash), 0600, err)) < 0)
    return r;
  *out = TAKE_PTR(copy);
  return 0;
}

int qvm_review_edit_begin(char **out_path, const char *id, qvm_error **err) {
  *out_path = NULL;
  review rv;
  int r = review_open(&rv, id, err);
  if (r < 0) return r;
  r = edit_begin_locked(out_path, &rv, err);
  /* who opened the playbook for editing is on record, also when the edit
   * is never committed */
  review_audit(review_meta_string(rv.meta, "vm"), "review-edit-begin", id, r,
               (const qvm_error *const *)err, NULL);
  review_close(&rv);
  return r;
}

static int syntax_check(const review *rv, const char *dir, const char *copy, qvm_error **err) {
  _cleanup_free_ char *log = NULL, *text = NULL;
  if (asprintf(&log, "%s/syntax-check.log", dir) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  const char *argv[] = {"ansible-playbook", "--syntax-check", "-i", "localhost,", copy, NULL};
  int status = -1;
  int r = review_ansible(&status, argv, dir, log, 120000, err);
  if (r < 0) return r;
  if (status == 0) return 0;
  size_t len = 0;
  qvm_read_file(&text, &len, log, 1u << 20, NULL);
  const char *tail = text ? text + (len > 1500 ? len - 1500 : 0) : "";
  qvm_error_set(err, QVM_EINVAL,
                "review '%s': the edited playbook fails ansible's syntax check "
                "(exit %d); kept in '%s':\n%s",
                rv->id, status, copy, tail);
  if (err && *err) qvm_error_neutralize(*err);
  return qvm_error_set_hint(err, QVM_EINVAL, "PlaybookSyntax", rv->id);
}

static int edit_commit_locked(bool *changed, review *rv, qvm_error **err) {
  if (status_is(rv, REVIEW_REJECTED)) return state_error(err, rv, "edited");
  _cleanup_free_ char *dir = NULL, *copy = NULL, *base = NULL, *old = NULL, *now = NULL,
                      *was = NULL, *dest = NULL;
  size_t old_len = 0, now_len = 0, was_len = 0;
  int r = edit_paths(rv, &dir, &copy, &base, err);
  if (r < 0) return r;
  if (qvm_read_file(&was, &was_len, base, 64, NULL) < 0 ||
      qvm_read_file(&now, &now_len, copy, PLAYBOOK_MAX, NULL) < 0)
    return qvm_error_set(err, QVM_ENOTFOUND, "review '%s' has no edit under way", rv->id);
  if (strcmp(was, review_meta_string(rv->meta, "playbook_sha256"))) {
    qvm_error_set(err, QVM_ECONFLICT,
                  "review '%s': the playbook changed since this edit began; the copy '%s' is "
                  "kept",
                  rv->id, copy);
    return qvm_error_set_hint(err, QVM_ECONFLICT, "ReviewState", rv->id);
  }
  if ((r = review_hashes_match(rv, NULL, err)) < 0 ||
      (r = read_playbook(&old, &old_len, rv, err)) < 0)
    return r;
  if (old_len == now_len && !memcmp(old, now, now_len)) {
    *changed = false;
    return qvm_rm_rf(dir, err);
  }
  if ((r = syntax_check(rv, dir, copy, err)) < 0) return r;
  if (asprintf(&dest, "%s/" REVIEW_PLAYBOOK_DIR "/" REVIEW_PLAYBOOK, rv->dir) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  if ((r = qvm_write_file_atomic(dest, now, now_len, 0600, err)) < 0) return r;
  char dh[65], ph[65];
  if ((r = review_hashes(dh, ph, rv->dir, err)) < 0) return r;
  bool voided =
      json_object_object_get_ex(rv->meta, "approval", NULL) &&
      json_object_get_type(json_object_object_get(rv->meta, "approval")) == json_type_object;
  struct json_object *extra = json_object_new_object();
  json_object_object_add(extra, "playbook_sha256_was",
                         json_object_new_string(review_meta_string(rv->meta, "playbook_sha256")));
  json_object_object_add(extra, "playbook_sha256", json_object_new_string(ph));
  json_object_object_add(extra, "approval_voided", json_object_new_boolean(voided));
  json_object_object_add(rv->meta, "playbook_sha256", json_object_new_string(ph));
  json_object_object_add(rv->meta, "approval", NULL);
  json_object_object_add(rv->meta, "status", json_object_new_string(REVIEW_PENDING));
  struct json_object *replay = NULL;
  if (json_object_object_get_ex(rv->meta, "replay", &replay) &&
      json_object_is_type(replay, json_type_object))
    json_object_object_add(replay, "stale", json_object_new_boolean(true));
  review_history_add(rv->meta, "edit", NULL, extra);
  if ((r = review_save(rv, err)) < 0) return r;
  *changed = true;
  qvm_rm_rf(dir, NULL);
  return 0;
}

int qvm_review_edit_commit(bool *out_changed, const char *id, qvm_error **err) {
  *out_changed = false;
  review rv;
  int r = review_open(&rv, id, err);
  if (r < 0) return r;
  r = edit_commit_locked(out_changed, &rv, err);
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "changed", json_object_new_boolean(*out_changed));
  json_object_object_add(d, "playbook_sha256",
                         json_object_new_string(review_meta_string(rv.meta, "playbook_sha256")));
  review_audit(review_meta_string(rv.meta, "vm"), "review-edit", id, r,
               (const qvm_error *const *)err, d);
  review_close(&rv);
  return r;
}
