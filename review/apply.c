/* SPDX-License-Identifier: MIT */
/* qvm_review_apply: an approved playbook, run by ansible-playbook against a
 * VM qvm knows (its pinned host key, its client key) or an inventory. */
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
#include "util/time.h"
#include "vm/access.h"
#include "vm/handle.h"
#include <qvm/review.h>
#include <qvm/ssh.h>
#include <qvm/vm.h>

#define LOG_TAIL_MAX (4u << 20)
#define CLIENT_KEY "client_key"
#define STATIC_KEY "static_key" /* a sandbox's: for a server that takes no certificate */

void review_target_done(const char *run) {
  static const char *const files[] = {CLIENT_KEY, CLIENT_KEY "-cert.pub", STATIC_KEY};
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
    char *key = NULL;
    if (asprintf(&key, "%s/%s", run, files[i]) < 0) return;
    unlink(key);
    free(key);
  }
}

/* ansible splits ansible_ssh_common_args like a shell: keep to bytes that
 * need no quoting. */
static bool path_plain(const char *s) {
  return s && s[0] == '/' &&
         strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                   "0123456789/._+-@:,") == strlen(s);
}

/* inventory.json (the yaml inventory plugin reads JSON) and known_hosts for
 * the running VM target, in run. */
static int target_inventory(char **out, const char *target, const char *run, int timeout_ms,
                            qvm_error **err) {
  qvm_vm *vm = NULL;
  qvm_ssh *ssh = NULL;
  int r = qvm_vm_open(&vm, target, err);
  if (r < 0) return r;
  /* A login first: it checks (or, for a tofu vm, pins) the host key and
   * proves the client key works before ansible is started. */
  if ((r = qvm_vm_reconcile(vm, err)) < 0 || (r = qvm_vm_ssh_connect(&ssh, vm, NULL, err)) < 0) {
    qvm_vm_free(vm);
    return qvm_error_prefix(err, "target vm '%s'", target);
  }
  qvm_ssh_free(ssh);
  qvm_ssh_options so = QVM_SSH_OPTIONS_INIT;
  _cleanup_free_ char *kh = NULL, *text = NULL, *inv = NULL, *args = NULL, *key = NULL;
  _cleanup_(review_json_putp) struct json_object *doc = NULL;
  size_t len = 0;
  /* A sandbox's certificate outlives the run (each of ansible's ssh
   * connections logs in anew), not more: it is on disk for that long. */
  int64_t ttl_s = timeout_ms > 0 ? timeout_ms / 1000 + 60 : 3600;
  if ((r = vm_ssh_login_target(&so, vm, NULL, 30000, ttl_s, err)) < 0) goto out;
  if (!path_plain(so.known_hosts) || (!so.certificate && !path_plain(so.identity)) ||
      !path_plain(run)) {
    r = qvm_error_set(err, QVM_EINVAL,
                      "the state dir's path holds bytes ansible's ssh arguments cannot carry "
                      "unquoted");
    goto out;
  }
  if (asprintf(&kh, "%s/known_hosts", run) < 0 || asprintf(&inv, "%s/inventory.json", run) < 0 ||
      asprintf(&args,
               "-o UserKnownHostsFile=%s -o GlobalKnownHostsFile=/dev/null "
               "-o StrictHostKeyChecking=yes -o HostKeyAlias=%s -o IdentitiesOnly=yes "
               "-o IdentityAgent=none",
               kh, target) < 0) {
    r = qvm_error_set_errno(err, ENOMEM, "out of memory");
    goto out;
  }
  if ((r = qvm_read_file(&text, &len, so.known_hosts, 1u << 20, err)) < 0 ||
      (r = qvm_write_file_atomic(kh, text, len, 0600, err)) < 0)
    goto out;
  /* A private copy of the client key with no .pub beside it: OpenSSH offers
   * the public key of a KEY.pub it finds, and a VM's id_ed25519.pub need not
   * match its id_ed25519 (a fork gets SRC's private key only). Removed after
   * the run (review_target_done). */
  free(text);
  text = NULL;
  if (asprintf(&key, "%s/" CLIENT_KEY, run) < 0) {
    r = qvm_error_set_errno(err, ENOMEM, "out of memory");
    goto out;
  }
  if (so.certificate) { /* a sandbox: its session key and certificate (KEY-cert.pub) */
    _cleanup_free_ char *cert = NULL, *line = NULL;
    if (asprintf(&cert, "%s-cert.pub", key) < 0 || asprintf(&line, "%s\n", so.certificate) < 0) {
      r = qvm_error_set_errno(err, ENOMEM, "out of memory");
      goto out;
    }
    if ((r = qvm_write_file_atomic(key, so.identity_pem, strlen(so.identity_pem), 0600, err)) < 0 ||
        (r = qvm_write_file_atomic(cert, line, strlen(line), 0600, err)) < 0)
      goto out;
    /* and the static key, as qvm itself falls back to it */
    _cleanup_free_ char *skey = NULL, *more = NULL;
    if (so.identity && path_plain(so.identity) &&
        qvm_read_file(&text, &len, so.identity, 64u << 10, NULL) >= 0) {
      if (asprintf(&skey, "%s/" STATIC_KEY, run) < 0 ||
          asprintf(&more, "%s -o IdentityFile=%s", args, skey) < 0) {
        r = qvm_error_set_errno(err, ENOMEM, "out of memory");
        goto out;
      }
      if ((r = qvm_write_file_atomic(skey, text, len, 0600, err)) < 0) goto out;
      free(args);
      args = TAKE_PTR(more);
    }
  } else if ((r = qvm_read_file(&text, &len, so.identity, 64u << 10, err)) < 0 ||
             (r = qvm_write_file_atomic(key, text, len, 0600, err)) < 0) {
    goto out;
  }
  struct json_object *host = json_object_new_object();
  json_object_object_add(host, "ansible_host", json_object_new_string(so.host));
  json_object_object_add(host, "ansible_port", json_object_new_int(so.port));
  json_object_object_add(host, "ansible_user", json_object_new_string(so.user));
  json_object_object_add(host, "ansible_ssh_private_key_file", json_object_new_string(key));
  json_object_object_add(host, "ansible_ssh_common_args", json_object_new_string(args));
  struct json_object *hosts = json_object_new_object(), *all = json_object_new_object();
  json_object_object_add(hosts, target, host);
  json_object_object_add(all, "hosts", hosts);
  doc = json_object_new_object();
  json_object_object_add(doc, "all", all);
  const char *t =
      json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
  if ((r = qvm_write_file_atomic(inv, t, strlen(t), 0600, err)) < 0) goto out;
  *out = TAKE_PTR(inv);
out:
  vm_spec_lent_credentials_clear(vm->spec);
  qvm_vm_free(vm);
  return r;
}

int review_target_inventory(char **out, const char *target, const char *run, int timeout_ms,
                            qvm_error **err) {
  int r = target_inventory(out, target, run, timeout_ms, err);
  if (r < 0) review_target_done(run); /* no key left behind */
  return r;
}

static int user_inventory(char **out, const char *path, qvm_error **err) {
  char *abs = realpath(path, NULL);
  struct stat st;
  if (!abs || stat(abs, &st) < 0 || !S_ISREG(st.st_mode)) {
    free(abs);
    return qvm_error_set(err, QVM_ENOTFOUND, "inventory '%s' is not a file", path);
  }
  *out = abs;
  return 0;
}

static int check_approved(const review *rv, qvm_error **err) {
  const char *s = review_meta_string(rv->meta, "status");
  if (!strcmp(s, "approved") || !strcmp(s, "applied")) {
    struct json_object *ap = NULL;
    json_object_object_get_ex(rv->meta, "approval", &ap);
    return review_hashes_match(rv, ap, err);
  }
  qvm_error_set(err, QVM_ECONFLICT, "review '%s' is %s, not approved: it cannot be applied", rv->id,
                s);
  return qvm_error_set_hint(err, QVM_ECONFLICT, "ReviewNotApproved", rv->id);
}

static struct json_object *result_json(const char *id, int status, const review_recap *rc,
                                       bool recap, const char *log) {
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "id", json_object_new_string(id));
  json_object_object_add(o, "exit", json_object_new_int(status));
  json_object_object_add(o, "recap", json_object_new_boolean(recap));
  json_object_object_add(o, "ok", json_object_new_int64(rc->ok));
  json_object_object_add(o, "changed", json_object_new_int64(rc->changed));
  json_object_object_add(o, "failed", json_object_new_int64(rc->failed));
  json_object_object_add(o, "unreachable", json_object_new_int64(rc->unreachable));
  json_object_object_add(o, "log", json_object_new_string(log));
  return o;
}

static int apply_locked(struct json_object **out, review *rv, const qvm_review_apply_options *o,
                        qvm_error **err) {
  int r = check_approved(rv, err);
  if (r < 0) return r;
  struct json_object *applies = json_object_object_get(rv->meta, "applies");
  _cleanup_free_ char *run = NULL, *log = NULL, *inv = NULL, *pb = NULL, *text = NULL;
  if (asprintf(&run, "%s/apply-%zu", rv->dir, json_object_array_length(applies) + 1) < 0 ||
      asprintf(&log, "%s/ansible.log", run) < 0 ||
      asprintf(&pb, "%s/" REVIEW_PLAYBOOK_DIR "/" REVIEW_PLAYBOOK, rv->dir) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  qvm_rm_rf(run, NULL); /* a run that died before it was recorded */
  if (mkdir(run, 0700) < 0) return qvm_error_set_errno(err, errno, "cannot make '%s'", run);
  r = o->target ? review_target_inventory(&inv, o->target, run, o->timeout_ms, err)
                : user_inventory(&inv, o->inventory, err);
  if (r < 0) return r;
  const char *argv[] = {"ansible-playbook", "-i", inv, pb, NULL};
  int status = -1;
  r = review_ansible(&status, argv, run, log, o->timeout_ms, err);
  review_target_done(run);
  if (r < 0) return r;
  size_t len = 0;
  review_recap rc;
  qvm_read_file(&text, &len, log, LOG_TAIL_MAX, NULL);
  bool recap = text && review_recap_parse(&rc, text, len);
  if (!recap) rc = (review_recap){0};
  *out = result_json(rv->id, status, &rc, recap, log);
  struct json_object *rec = NULL;
  if (json_object_deep_copy(*out, &rec, NULL) < 0) rec = json_object_new_object();
  char now[32];
  qvm_format_rfc3339(now, qvm_realtime_us());
  json_object_object_add(rec, "time", json_object_new_string(now));
  json_object_object_add(rec, "actor", review_actor(NULL));
  json_object_object_add(rec, o->target ? "target" : "inventory",
                         json_object_new_string(o->target ? o->target : inv));
  json_object_array_add(applies, rec);
  if (status == 0)
    json_object_object_add(rv->meta, "status", json_object_new_string(REVIEW_APPLIED));
  review_history_add(rv->meta, "apply", NULL, NULL);
  return review_save(rv, err);
}

int qvm_review_apply(char **out_json, const char *id, const qvm_review_apply_options *opts,
                     qvm_error **err) {
  if (out_json) *out_json = NULL;
  int r = QVM_OPTIONS_CHECK(opts, qvm_review_apply_options, QVM_REVIEW_APPLY_OPTIONS_VERSION, err);
  if (r < 0) return r;
  if (!opts || !opts->target == !opts->inventory)
    return qvm_error_set(err, QVM_EINVAL, "apply needs a target vm or an inventory, one of them");
  if (opts->target && (r = qvm_vm_name_check(opts->target, err)) < 0) return r;
  review rv;
  if ((r = review_open(&rv, id, err)) < 0) {
    review_audit(opts->target, "review-apply", qvm_review_id_valid(id) ? id : NULL, r,
                 (const qvm_error *const *)err, NULL);
    return r;
  }
  _cleanup_(review_json_putp) struct json_object *res = NULL;
  r = apply_locked(&res, &rv, opts, err);
  struct json_object *d = NULL;
  if (!res || json_object_deep_copy(res, &d, NULL) < 0) d = json_object_new_object();
  json_object_object_add(d, "source_vm", json_object_new_string(review_meta_string(rv.meta, "vm")));
  json_object_object_add(d, "playbook_sha256",
                         json_object_new_string(review_meta_string(rv.meta, "playbook_sha256")));
  if (opts->inventory)
    json_object_object_add(d, "inventory", json_object_new_string(opts->inventory));
  /* The vm acted on: the target, or for an inventory the change set's own. */
  review_audit(opts->target ? opts->target : review_meta_string(rv.meta, "vm"), "review-apply", id,
               r, (const qvm_error *const *)err, d);
  review_close(&rv);
  if (r == 0 && out_json &&
      !(*out_json = strdup(json_object_to_json_string_ext(
            res, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE))))
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  return r;
}
