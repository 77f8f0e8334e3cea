/* SPDX-License-Identifier: MIT */
/* qvm_review_create: diff (content kept), playbook, change set. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "review/review.h"
#include "review/store.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include <qvm/audit.h>
#include <qvm/diff.h>
#include <qvm/review.h>
#include <qvm/vm.h>

QVM_DEFINE_CLEANUP(qvm_diff, qvm_diff_free)

static struct json_object *base_json(const char *snapshot) {
  struct json_object *b = json_object_new_object();
  json_object_object_add(b, "snapshot", snapshot ? json_object_new_string(snapshot) : NULL);
  json_object_object_add(b, "image", json_object_new_boolean(!snapshot));
  return b;
}

/* A private scratch dir in the reviews root for the playbook being made. */
static int scratch_dir(char **out, qvm_error **err) {
  _cleanup_free_ char *root = NULL;
  int r = review_root(&root, true, err);
  if (r < 0) return r;
  if (asprintf(out, "%s/.tmp-XXXXXX", root) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  if (!mkdtemp(*out)) {
    r = qvm_error_set_errno(err, errno, "cannot make a scratch dir in '%s'", root);
    free(*out);
    *out = NULL;
  }
  return r;
}

static int create(char **out_id, const char *vm, const qvm_review_create_options *o,
                  qvm_error **err) {
  qvm_diff_options dopts = QVM_DIFF_OPTIONS_INIT;
  dopts.from_snapshot = o->from_snapshot;
  dopts.keep_content = true;
  _cleanup_(qvm_diff_freep) qvm_diff *d = NULL;
  _cleanup_free_ char *scratch = NULL, *pb = NULL, *json = NULL;
  int r = qvm_diff_vm(&d, vm, &dopts, err);
  if (r < 0) return r;
  if ((r = scratch_dir(&scratch, err)) < 0) return r;
  if (asprintf(&pb, "%s/playbook", scratch) < 0) {
    r = qvm_error_set_errno(err, ENOMEM, "out of memory");
    goto out;
  }
  if ((r = qvm_diff_ansible(d, pb, NULL, err)) < 0 || (r = qvm_diff_json(&json, d, err)) < 0)
    goto out;
  struct json_object *extra = json_object_new_object();
  json_object_object_add(extra, "base", base_json(o->from_snapshot));
  json_object_object_add(extra, "changes", json_object_new_int64((int64_t)qvm_diff_count(d)));
  const char *inc = qvm_diff_incomplete(d);
  json_object_object_add(extra, "incomplete", inc ? json_object_new_string(inc) : NULL);
  const char *status = REVIEW_PENDING;
  struct json_object *replay = NULL;
  if (o->verify &&
      (r = review_replay(&replay, vm, o->from_snapshot, d, pb, scratch, o->timeout_ms, err)) < 0) {
    json_object_put(extra);
    goto out;
  }
  struct json_object *count = NULL;
  if (replay && json_object_object_get_ex(replay, "residual_count", &count) &&
      json_object_get_int(count) > 0)
    status = REVIEW_PENDING_DIFF;
  json_object_object_add(extra, "replay", replay);
  r = review_record(out_id, vm, o->agent, status, json, strlen(json), pb, extra, err);
out:
  qvm_rm_rf(scratch, NULL);
  return r;
}

int qvm_review_create(char **out_id, const char *vm, const qvm_review_create_options *opts,
                      qvm_error **err) {
  *out_id = NULL;
  qvm_review_create_options defaults = QVM_REVIEW_CREATE_OPTIONS_INIT;
  int r =
      QVM_OPTIONS_CHECK(opts, qvm_review_create_options, QVM_REVIEW_CREATE_OPTIONS_VERSION, err);
  if (r < 0) return r;
  const qvm_review_create_options *o = opts ? opts : &defaults;
  if ((r = qvm_vm_name_check(vm, err)) < 0) return r;
  if (o->agent && !qvm_audit_agent_valid(o->agent))
    return qvm_error_set(err, QVM_EINVAL, "agent id '%.140s' is invalid", o->agent);
  if (o->verify && !o->from_snapshot)
    r = qvm_error_set(err, QVM_EINVAL,
                      "a replay needs a snapshot as the base (a clone of the image's state is "
                      "not built yet)");
  else
    r = create(out_id, vm, o, err);
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "base", base_json(o->from_snapshot));
  json_object_object_add(d, "author_agent", o->agent ? json_object_new_string(o->agent) : NULL);
  review_audit(vm, "review-create", *out_id, r, (const qvm_error *const *)err, d);
  return r;
}
