/* SPDX-License-Identifier: MIT */
/* A new change set on disk; qvm_review_list, _show, _diff_json, _playbook_dir. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "review/store.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/time.h"
#include <qvm/audit.h>
#include <qvm/review.h>
#include <qvm/vm.h>

#define LIST_MAX 10000

static int new_id(char out[QVM_REVIEW_ID_LEN + 1], qvm_error **err) {
  unsigned char b[QVM_REVIEW_ID_LEN / 2];
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
    return qvm_error_set_errno(err, errno, "cannot get random bytes for a review id");
  for (size_t i = 0; i < sizeof b; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
  return 0;
}

/* Files 0600, dirs 0700, below dirfd; a symlink or special file is refused. */
static int tree_private(int dirfd, const char *what, int depth, qvm_error **err) {
  if (depth > 32) return qvm_error_set(err, QVM_EINVAL, "'%s' is too deep", what);
  int fd = dup(dirfd);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    if (fd >= 0) close(fd);
    return qvm_error_set_errno(err, errno, "cannot read '%s'", what);
  }
  int r = 0;
  struct dirent *e;
  while (r == 0 && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    struct stat st;
    if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      r = qvm_error_set_errno(err, errno, "cannot stat '%s/%s'", what, e->d_name);
    } else if (S_ISDIR(st.st_mode)) {
      int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      r = sub < 0 || fchmod(sub, 0700) < 0
              ? qvm_error_set_errno(err, errno, "cannot open '%s/%s'", what, e->d_name)
              : tree_private(sub, what, depth + 1, err);
      if (sub >= 0) close(sub);
    } else if (S_ISREG(st.st_mode)) {
      if (fchmodat(dirfd, e->d_name, 0600, 0) < 0)
        r = qvm_error_set_errno(err, errno, "cannot chmod '%s/%s'", what, e->d_name);
    } else {
      r = qvm_error_set(err, QVM_EINVAL, "'%s' holds '%s', neither a file nor a directory", what,
                        e->d_name);
    }
  }
  closedir(d);
  return r;
}

static int write_meta(const char *dir, struct json_object *meta, qvm_error **err) {
  _cleanup_free_ char *path = NULL;
  if (asprintf(&path, "%s/" REVIEW_META, dir) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  const char *text = json_object_to_json_string_ext(meta, JSON_C_TO_STRING_PRETTY |
                                                              JSON_C_TO_STRING_NOSLASHESCAPE);
  return qvm_write_file_atomic(path, text, strlen(text), 0600, err);
}

static int stage(const char *tmp, const char *diff_json, size_t diff_len, const char *playbook_src,
                 struct json_object *meta, qvm_error **err) {
  _cleanup_free_ char *diff = NULL, *pb = NULL;
  if (asprintf(&diff, "%s/" REVIEW_DIFF, tmp) < 0 ||
      asprintf(&pb, "%s/" REVIEW_PLAYBOOK_DIR, tmp) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  int r = qvm_write_file_atomic(diff, diff_json, diff_len, 0600, err);
  if (r < 0) return r;
  if (rename(playbook_src, pb) < 0)
    return qvm_error_set_errno(err, errno, "cannot move the playbook '%s' in", playbook_src);
  _cleanup_close_ int fd = open(pb, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 || fchmod(fd, 0700) < 0)
    return qvm_error_set_errno(err, errno, "cannot open '%s'", pb);
  if ((r = tree_private(fd, "playbook", 0, err)) < 0) return r;
  char dh[65], ph[65];
  if ((r = review_hashes(dh, ph, tmp, err)) < 0) return r;
  json_object_object_add(meta, "diff_sha256", json_object_new_string(dh));
  json_object_object_add(meta, "playbook_sha256", json_object_new_string(ph));
  return write_meta(tmp, meta, err);
}

int review_record(char **out_id, const char *vm, const char *agent, const char *status,
                  const char *diff_json, size_t diff_len, const char *playbook_src,
                  struct json_object *meta_extra, qvm_error **err) {
  _cleanup_(review_json_putp) struct json_object *extra = meta_extra;
  if (agent && !qvm_audit_agent_valid(agent))
    return qvm_error_set(err, QVM_EINVAL, "agent id '%.140s' is invalid", agent);
  if (!qvm_vm_name_valid(vm)) return qvm_error_set(err, QVM_EINVAL, "vm name is invalid");
  char id[QVM_REVIEW_ID_LEN + 1];
  _cleanup_free_ char *root = NULL, *tmp = NULL, *dir = NULL;
  int r = review_root(&root, true, err);
  if (r < 0 || (r = new_id(id, err)) < 0) return r;
  if (asprintf(&tmp, "%s/.new-%s", root, id) < 0 || asprintf(&dir, "%s/%s", root, id) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  if (mkdir(tmp, 0700) < 0) return qvm_error_set_errno(err, errno, "cannot make '%s'", tmp);
  char now[32];
  qvm_format_rfc3339(now, qvm_realtime_us());
  _cleanup_(review_json_putp) struct json_object *meta = json_object_new_object();
  json_object_object_add(meta, "version", json_object_new_int(1));
  json_object_object_add(meta, "id", json_object_new_string(id));
  json_object_object_add(meta, "vm", json_object_new_string(vm));
  json_object_object_add(meta, "author", review_actor(agent));
  json_object_object_add(meta, "created", json_object_new_string(now));
  json_object_object_add(meta, "status", json_object_new_string(status));
  json_object_object_add(meta, "approval", NULL);
  json_object_object_foreach(extra, key, val) {
    json_object_object_add(meta, key, json_object_get(val));
  }
  json_object_object_add(meta, "history", json_object_new_array());
  json_object_object_add(meta, "applies", json_object_new_array());
  struct json_object *created = json_object_new_object();
  json_object_object_add(created, "status", json_object_new_string(status));
  json_object_object_add(created, "actor", review_actor(agent));
  review_history_add(meta, "create", NULL, created);
  r = stage(tmp, diff_json, diff_len, playbook_src, meta, err);
  if (r == 0 && rename(tmp, dir) < 0)
    r = qvm_error_set_errno(err, errno, "cannot record '%s'", dir);
  if (r < 0) {
    qvm_rm_rf(tmp, NULL);
    return r;
  }
  if (!(*out_id = strdup(id))) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  return 0;
}

/* --- reading ------------------------------------------------------------------------ */

static int show_one(struct json_object **out, const char *id, qvm_error **err) {
  review rv;
  int r = review_open_as(&rv, id, false, err);
  if (r < 0) return r;
  *out = json_object_get(rv.meta);
  review_close(&rv);
  return 0;
}

int qvm_review_show(char **out_json, const char *id, qvm_error **err) {
  *out_json = NULL;
  struct json_object *meta = NULL;
  int r = show_one(&meta, id, err);
  if (r < 0) return r;
  *out_json = strdup(json_object_to_json_string_ext(meta, JSON_C_TO_STRING_PLAIN |
                                                              JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put(meta);
  return *out_json ? 0 : qvm_error_set_errno(err, ENOMEM, "out of memory");
}

static int sub_path(char **out, const char *id, const char *name, qvm_error **err) {
  _cleanup_free_ char *dir = NULL;
  int r = review_dir(&dir, id, err);
  if (r < 0) return r;
  if (asprintf(out, "%s/%s", dir, name) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  return 0;
}

int qvm_review_diff_json(char **out_json, const char *id, qvm_error **err) {
  _cleanup_free_ char *path = NULL;
  *out_json = NULL;
  int r = sub_path(&path, id, REVIEW_DIFF, err);
  if (r < 0) return r;
  size_t len = 0;
  return qvm_read_file(out_json, &len, path, REVIEW_DIFF_MAX, err);
}

int qvm_review_playbook_dir(char **out, const char *id, qvm_error **err) {
  *out = NULL;
  return sub_path(out, id, REVIEW_PLAYBOOK_DIR, err);
}

static int created_cmp(const void *a, const void *b) {
  struct json_object *x = *(struct json_object *const *)a, *y = *(struct json_object *const *)b;
  const char *cx = review_meta_string(x, "created"), *cy = review_meta_string(y, "created");
  int c = strcmp(cx ? cx : "", cy ? cy : "");
  return c ? c : strcmp(review_meta_string(x, "id"), review_meta_string(y, "id"));
}

int qvm_review_list(char **out_json, qvm_error **err) {
  *out_json = NULL;
  _cleanup_free_ char *root = NULL;
  int r = review_root(&root, false, err);
  if (r < 0) return r;
  _cleanup_(review_json_putp) struct json_object *list = json_object_new_array();
  DIR *d = opendir(root);
  if (!d && errno != ENOENT) return qvm_error_set_errno(err, errno, "cannot read '%s'", root);
  struct dirent *e;
  while (d && (e = readdir(d)) && json_object_array_length(list) < LIST_MAX) {
    if (!qvm_review_id_valid(e->d_name)) continue; /* ., .., .new-* being made */
    struct json_object *meta = NULL;
    qvm_error *one = NULL;
    if (show_one(&meta, e->d_name, &one) < 0) {
      meta = json_object_new_object();
      json_object_object_add(meta, "id", json_object_new_string(e->d_name));
      json_object_object_add(meta, "error", json_object_new_string(qvm_error_message(one)));
      qvm_error_free(one);
    }
    json_object_array_add(list, meta);
  }
  if (d) closedir(d);
  json_object_array_sort(list, created_cmp);
  *out_json = strdup(json_object_to_json_string_ext(list, JSON_C_TO_STRING_PLAIN |
                                                              JSON_C_TO_STRING_NOSLASHESCAPE));
  return *out_json ? 0 : qvm_error_set_errno(err, ENOMEM, "out of memory");
}
