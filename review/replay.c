/* SPDX-License-Identifier: MIT */
/* Replay: the playbook applied to a throwaway clone of the base, the
 * clone's diff compared with the VM's; what differs is the residual. */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "review/review.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include <qvm/diff.h>
#include <qvm/up.h>
#include <qvm/vm.h>

#define RESIDUAL_MAX 1000

/* What a clone changes by being a new machine, or by being reached by
 * ansible, that the VM's diff may not hold: not residual unless the VM's
 * diff has the path too. */
static const char *const clone_noise[] = {
    "/etc/hostname",
    "/etc/hosts",
    /* cloud-init writes it again with the time in its header comment */
    "/etc/sudoers.d/90-cloud-init-users",
    "/home/*/.ansible",
    "/home/*/.ansible/*",
    "/root/.ansible",
    "/root/.ansible/*",
    /* the clone's own client key and network config (its MAC) */
    "/home/*/.ssh/authorized_keys",
    "/root/.ssh/authorized_keys",
    "/etc/network/interfaces.d/50-cloud-init",
    "/etc/netplan/50-cloud-init.yaml",
    "/etc/systemd/network/10-cloud-init-*",
    NULL,
};

static bool is_noise(const char *path) {
  for (size_t i = 0; clone_noise[i]; i++)
    if (fnmatch(clone_noise[i], path, 0) == 0) return true;
  return false;
}

/* The state a change leaves, the part a replay must reproduce. */
static bool same_result(const qvm_diff_change *a, const qvm_diff_change *b, const char **why) {
  const qvm_diff_file *x = &a->to, *y = &b->to;
  *why = x->present != y->present                         ? (x->present ? "missing" : "deleted")
         : !x->present                                    ? NULL
         : x->type != y->type                             ? "type"
         : x->mode != y->mode                             ? "mode"
         : x->uid != y->uid || x->gid != y->gid           ? "owner"
         : x->type == 'f' && strcmp(x->sha256, y->sha256) ? "content"
         : x->type == 'l' &&
                 (x->target_len != y->target_len || memcmp(x->target, y->target, x->target_len))
             ? "target"
             : NULL;
  return !*why;
}

static void residual_add(struct json_object *list, const char *path, size_t len, const char *why) {
  if (json_object_array_length(list) >= RESIDUAL_MAX) return;
  struct json_object *o = json_object_new_object();
  struct json_object *p = json_object_new_string_len(path, (int)len);
  json_object_object_add(o, "path", p);
  json_object_object_add(o, "why", json_object_new_string(why));
  json_object_array_add(list, o);
}

int review_residual(struct json_object **out, const qvm_diff *vm_diff, const qvm_diff *clone_diff) {
  struct json_object *list = json_object_new_array();
  size_t n = qvm_diff_count(vm_diff), m = qvm_diff_count(clone_diff), i = 0, j = 0;
  int count = 0;
  while (i < n || j < m) {
    qvm_diff_change a = {0}, b = {0};
    if (i < n) qvm_diff_get(&a, vm_diff, i);
    if (j < m) qvm_diff_get(&b, clone_diff, j);
    int c = i >= n ? 1 : j >= m ? -1 : strcmp(a.path, b.path);
    const char *why = NULL;
    if (c < 0) {
      residual_add(list, a.path, a.path_len, "not reproduced"), count++;
      i++;
    } else if (c > 0) {
      if (!is_noise(b.path)) residual_add(list, b.path, b.path_len, "only in the replay"), count++;
      j++;
    } else {
      if (!same_result(&a, &b, &why)) residual_add(list, a.path, a.path_len, why), count++;
      i++, j++;
    }
  }
  *out = list;
  return count;
}

static int clone_name(char out[32], qvm_error **err) {
  unsigned char b[5];
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
    return qvm_error_set_errno(err, errno, "cannot get random bytes");
  snprintf(out, 32, "review-replay-%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4]);
  return 0;
}

static int replay_in(struct json_object *replay, const char *clone, const qvm_diff *d,
                     const char *playbook_dir, const char *run, int timeout_ms, qvm_error **err) {
  _cleanup_free_ char *inv = NULL, *log = NULL, *pb = NULL, *text = NULL;
  if (asprintf(&log, "%s/ansible.log", run) < 0 ||
      asprintf(&pb, "%s/playbook.yml", playbook_dir) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  int r = review_target_inventory(&inv, clone, run, timeout_ms, err);
  if (r < 0) return r;
  const char *argv[] = {"ansible-playbook", "-i", inv, pb, NULL};
  int status = -1;
  r = review_ansible(&status, argv, run, log, timeout_ms, err);
  review_target_done(run);
  if (r < 0) return r;
  size_t len = 0;
  review_recap rc = {0};
  qvm_read_file(&text, &len, log, 4u << 20, NULL);
  if (text) review_recap_parse(&rc, text, len);
  json_object_object_add(replay, "exit", json_object_new_int(status));
  json_object_object_add(replay, "changed", json_object_new_int64(rc.changed));
  if (status != 0) {
    const char *tail = text ? text + (len > 1500 ? len - 1500 : 0) : "";
    qvm_error_set(err, QVM_EINVAL, "the playbook failed on the replay clone (exit %d):\n%s", status,
                  tail);
    if (err && *err) qvm_error_neutralize(*err);
    return QVM_EINVAL;
  }
  qvm_vm *vm = NULL;
  qvm_vm_stop_options so = QVM_VM_STOP_OPTIONS_INIT;
  if ((r = qvm_vm_open(&vm, clone, err)) < 0) return r;
  r = qvm_vm_stop(vm, &so, err);
  qvm_vm_free(vm);
  if (r < 0) return r;
  qvm_diff *cd = NULL;
  if ((r = qvm_diff_vm(&cd, clone, NULL, err)) < 0)
    return qvm_error_prefix(err, "the replay clone's diff");
  struct json_object *residual = NULL;
  int count = review_residual(&residual, d, cd);
  qvm_diff_free(cd);
  json_object_object_add(replay, "residual", residual);
  json_object_object_add(replay, "residual_count", json_object_new_int(count));
  return 0;
}

int review_replay(struct json_object **out, const char *vm, const char *snapshot, const qvm_diff *d,
                  const char *playbook_dir, const char *scratch, int timeout_ms, qvm_error **err) {
  char clone[32];
  _cleanup_free_ char *run = NULL;
  int r = clone_name(clone, err);
  if (r < 0) return r;
  if (asprintf(&run, "%s/replay", scratch) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  if (mkdir(run, 0700) < 0) return qvm_error_set_errno(err, errno, "cannot make '%s'", run);
  qvm_up_options up = QVM_UP_OPTIONS_INIT;
  up.timeout_ms = timeout_ms > 0 ? timeout_ms : 300000;
  qvm_vm_clone_options co = QVM_VM_CLONE_OPTIONS_INIT;
  co.snapshot = snapshot;
  co.then = QVM_VM_CLONE_UP;
  co.up = &up;
  if ((r = qvm_vm_clone(NULL, vm, clone, &co, err)) < 0) {
    qvm_vm_remove(clone, true, NULL);
    return qvm_error_prefix(err, "replay clone of '%s' at '%s'", vm, snapshot);
  }
  struct json_object *replay = json_object_new_object();
  json_object_object_add(replay, "clone", json_object_new_string(clone));
  r = replay_in(replay, clone, d, playbook_dir, run, up.timeout_ms, err);
  qvm_vm_remove(clone, true, NULL);
  if (r < 0) {
    json_object_put(replay);
    return qvm_error_prefix(err, "replay");
  }
  json_object_object_add(replay, "stale", json_object_new_boolean(false));
  *out = replay;
  return 0;
}
