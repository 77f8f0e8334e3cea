/* SPDX-License-Identifier: MIT */
/* qvm's SSH key store through the API (include/qvm/keystore.h):
 *   GET  /api/v1/ssh-keys                       the keys (public parts)
 *   POST /api/v1/ssh-keys                       {"name", "type", "comment"}
 *   GET  /api/v1/ssh-keys/{name}
 *   POST /api/v1/vms/{name}/ssh-keys/{key}      add it to a running VM
 * and Datamancy vm-provisioner's routes for the same (/api/ssh-keys,
 * /api/ssh-keys/{name}/public, /api/vms/{vmName}/ssh-keys/{keyName}).
 * The store is $SSH_KEY_DIR when set (vm-provisioner's variable), else the
 * state dir's ssh-keys/. A private key is never sent. Operator routes only:
 * agent tokens get 404 (the router). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qvm/keystore.h>
#include <qvm/vm.h>

#include "qvmd.h"

static const char *store(void) {
  const char *d = getenv("SSH_KEY_DIR");
  return d && *d ? d : NULL;
}

static json_object *parse_lib(qvmd_reply *out, char *text, const char *what) {
  json_object *o = text ? qvmd_json_from_lib(text) : NULL;
  free(text);
  if (!o) qvmd_problem(out, 500, "EPROTO", "libqvm's %s did not parse", what);
  return o;
}

void qvmd_keys_list(qvmd_reply *out, const qvmd_request *req) {
  qvm_error *err = NULL;
  char *text = NULL;
  if (qvm_keystore_list(&text, store(), &err) < 0) {
    qvmd_problem_qvm(out, err, NULL);
    return;
  }
  json_object *a = parse_lib(out, text, "key list");
  if (!a) return;
  if (req->alias) { /* vm-provisioner's list: {"keys": [...]} */
    json_object *o = json_object_new_object();
    json_object_object_add(o, "keys", a);
    a = o;
  }
  qvmd_reply_json(out, 200, a);
}

void qvmd_keys_create(qvmd_reply *out, const qvmd_request *req) {
  json_object *body = qvmd_body_object(out, req);
  if (!body) return;
  static const char *const known[] = {"name", "type", "comment", NULL};
  const char *name = NULL, *type_text = NULL, *comment = NULL;
  qvm_key_type type = QVM_KEY_ED25519;
  qvm_error *err = NULL;
  if (!(req->alias || qvmd_body_known(out, body, known)) ||
      !qvmd_body_string(out, body, "name", 63, &name) ||
      !qvmd_body_string(out, body, "type", 16, &type_text) ||
      !qvmd_body_string(out, body, "comment", 128, &comment))
    goto done;
  if (!name) {
    qvmd_problem_field(out, "name", "'name' is required");
    goto done;
  }
  for (const char *c = comment; c && *c; c++)
    if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f) {
      qvmd_problem_field(out, "comment", "'comment' holds printable ASCII only");
      goto done;
    }
  /* vm-provisioner's keys are RSA-4096: its requests name no type */
  if (!type_text && req->alias) type = QVM_KEY_RSA4096;
  if (type_text && qvm_key_type_parse(&type, type_text, &err) < 0) {
    qvmd_problem_qvm(out, err, "type");
    goto done;
  }
  if (!qvmd_work_begin(out, req)) goto done;
  char *text = NULL;
  int r = qvm_keystore_generate(&text, store(), name, type, comment, &err);
  qvmd_work_end(req);
  if (r < 0) {
    qvmd_problem_qvm(out, err, qvm_error_code(err) == QVM_EINVAL ? "name" : NULL);
    goto done;
  }
  json_object *o = parse_lib(out, text, "new key");
  if (!o) goto done;
  if (!req->alias) { /* the host's paths are vm-provisioner's answer only */
    json_object_object_del(o, "privateKeyPath");
    json_object_object_del(o, "publicKeyPath");
    snprintf(out->location, sizeof out->location, "/api/v1/ssh-keys/%s", name);
  }
  qvmd_reply_json(out, 201, o);
done:
  json_object_put(body);
}

void qvmd_keys_get(qvmd_reply *out, const qvmd_request *req) {
  qvm_error *err = NULL;
  char *text = NULL;
  const char *name = req->params[0];
  if (qvm_keystore_list(&text, store(), &err) < 0) {
    qvmd_problem_qvm(out, err, NULL);
    return;
  }
  json_object *a = parse_lib(out, text, "key list"), *found = NULL;
  if (!a) return;
  for (size_t i = 0; i < json_object_array_length(a) && !found; i++) {
    json_object *k = json_object_array_get_idx(a, i), *n = NULL;
    if (json_object_object_get_ex(k, "name", &n) && !strcmp(json_object_get_string(n), name))
      found = json_object_get(k);
  }
  json_object_put(a);
  if (!found) {
    qvmd_problem_not_found(out, "ssh key", name);
    return;
  }
  qvmd_reply_json(out, 200, found);
}

void qvmd_keys_inject(qvmd_reply *out, const qvmd_request *req) {
  const char *vm_name = req->params[0], *key = req->params[1];
  qvm_error *err = NULL;
  char *line = NULL;
  qvm_vm *vm = NULL;
  if (req->body_len) {
    qvmd_problem(out, 400, "EINVAL", "this route takes no body");
    return;
  }
  if (qvm_vm_name_check(vm_name, &err) < 0) {
    qvmd_problem_qvm(out, err, "name");
    return;
  }
  if (qvm_keystore_public(&line, store(), key, &err) < 0 || qvm_vm_open(&vm, vm_name, &err) < 0) {
    free(line);
    qvmd_problem_qvm(out, err, NULL);
    return;
  }
  if (!qvmd_work_begin(out, req)) {
    free(line);
    qvm_vm_free(vm);
    return;
  }
  int r = qvm_vm_authorize_key(vm, line, &err);
  qvmd_work_end(req);
  if (r < 0) {
    qvmd_problem_qvm(out, err, NULL);
  } else {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "vmName", json_object_new_string(vm_name));
    json_object_object_add(o, "keyName", json_object_new_string(key));
    json_object_object_add(o, "added", json_object_new_boolean(true));
    qvmd_reply_json(out, 200, o);
  }
  free(line);
  qvm_vm_free(vm);
}
