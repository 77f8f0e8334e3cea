/* SPDX-License-Identifier: MIT */
/* POST /api/v1/vms/{name}/exec and /api/v1/sandboxes/{name}/exec: one
 * command over the VM's SSH, its result as JSON. The guest's output is
 * hostile and unbounded: each stream keeps at most QVMD_OUTPUT_MAX bytes
 * (then "stdoutTruncated"), and bytes that are not UTF-8 come as
 * neutralized text plus the exact bytes in base64 ("stdoutBase64"). */
#include <stdlib.h>
#include <string.h>

#include <qvm/sandbox.h>
#include <qvm/ssh.h>
#include <qvm/text.h>
#include <qvm/vm.h>

#include "qvmd.h"

#define ARGV_MAX 256
#define ARG_MAX_BYTES (64u << 10)
#define CONNECT_TIMEOUT_MS 30000
#define EXEC_TIMEOUT_MS_DEFAULT 60000
#define EXEC_TIMEOUT_MS_MAX (3600 * 1000)

typedef struct capture {
  char *data;
  size_t len;
  bool truncated;
} capture;

typedef struct exec_output {
  capture out, err;
} exec_output;

static int on_output(void *ctx, int stream, const void *data, size_t len) {
  exec_output *o = ctx;
  capture *c = stream == QVM_SSH_STDERR ? &o->err : &o->out;
  size_t room = QVMD_OUTPUT_MAX - c->len;
  size_t take = len < room ? len : room;
  if (take < len) c->truncated = true;
  if (take == 0) return 0;
  if (!c->data) {
    c->data = malloc(QVMD_OUTPUT_MAX);
    if (!c->data) return QVM_ESYS;
  }
  memcpy(c->data + c->len, data, take);
  c->len += take;
  return 0;
}

/* argv from the body: 1..ARGV_MAX strings; NULL-terminated, borrowed. */
static const char **read_argv(qvmd_reply *out, json_object *body) {
  json_object *v = NULL;
  size_t n;
  if (!json_object_object_get_ex(body, "argv", &v) || !json_object_is_type(v, json_type_array) ||
      (n = json_object_array_length(v)) == 0 || n > ARGV_MAX) {
    qvmd_problem_field(out, "argv", "'argv' must be an array of 1 to %d strings", ARGV_MAX);
    return NULL;
  }
  const char **argv = calloc(n + 1, sizeof *argv);
  if (!argv) {
    qvmd_problem(out, 500, "ESYS", "out of memory");
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    json_object *a = json_object_array_get_idx(v, i);
    if (!json_object_is_type(a, json_type_string) ||
        strlen(json_object_get_string(a)) != (size_t)json_object_get_string_len(a) ||
        (size_t)json_object_get_string_len(a) > ARG_MAX_BYTES) {
      qvmd_problem_field(out, "argv", "argv[%zu] must be a string without NUL, at most %u bytes", i,
                         ARG_MAX_BYTES);
      free(argv);
      return NULL;
    }
    argv[i] = json_object_get_string(a);
  }
  return argv;
}

static void reply_result(qvmd_reply *out, const qvm_ssh_exec_result *res, const exec_output *o,
                         const char *checkpoint) {
  json_object *r = json_object_new_object();
  json_object_object_add(r, "exitCode", res->signaled ? NULL : json_object_new_int(res->exit_code));
  if (res->signaled) {
    char sig[sizeof res->signal];
    qvm_text_for_terminal_into(sig, sizeof sig, res->signal,
                               strnlen(res->signal, sizeof res->signal), 0);
    json_object_object_add(r, "signal", json_object_new_string(sig));
  } else {
    json_object_object_add(r, "signal", NULL);
  }
  qvmd_json_add_guest_bytes(r, "stdout", o->out.data ? o->out.data : "", o->out.len);
  qvmd_json_add_guest_bytes(r, "stderr", o->err.data ? o->err.data : "", o->err.len);
  json_object_object_add(r, "stdoutTruncated", json_object_new_boolean(o->out.truncated));
  json_object_object_add(r, "stderrTruncated", json_object_new_boolean(o->err.truncated));
  json_object_object_add(r, "durationMs", json_object_new_int64(res->duration_ms));
  json_object_object_add(r, "checkpoint",
                         checkpoint[0] ? json_object_new_string(checkpoint) : NULL);
  qvmd_reply_json(out, 200, r);
}

static void run(qvmd_reply *out, qvm_vm *vm, const char *const *argv, int timeout_ms) {
  qvm_error *err = NULL;
  qvm_ssh *ssh = NULL;
  qvm_vm_ssh_options so = QVM_VM_SSH_OPTIONS_INIT;
  so.timeout_ms = timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms : CONNECT_TIMEOUT_MS;
  if (qvm_vm_ssh_connect(&ssh, vm, &so, &err) < 0) {
    qvmd_problem_qvm(out, err, NULL);
    return;
  }
  exec_output o = {0};
  qvm_ssh_exec_options eo = QVM_SSH_EXEC_OPTIONS_INIT;
  eo.argv = argv;
  eo.on_output = on_output;
  eo.ctx = &o;
  eo.timeout_ms = timeout_ms;
  qvm_ssh_exec_result res = {0};
  /* a sandbox created with checkpointEach takes a checkpoint first; one
   * that fails fails the exec before the command runs */
  char ckpt[QVM_VM_CHECKPOINT_NAME_MAX] = "";
  if (qvm_vm_exec_command(&res, ckpt, vm, ssh, &eo, 0, &err) < 0)
    qvmd_problem_qvm(out, err, NULL);
  else
    reply_result(out, &res, &o, ckpt);
  qvm_ssh_free(ssh);
  free(o.out.data);
  free(o.err.data);
}

void qvmd_vms_exec(qvmd_reply *out, const qvmd_request *req) {
  bool sandbox_route = !strncmp(req->path, "/api/v1/sandboxes/", 18);
  qvm_vm *vm = qvmd_sandbox_open(out, req, sandbox_route);
  if (!vm) return;
  json_object *body = qvmd_body_object(out, req);
  const char **argv = NULL;
  static const char *const known[] = {"argv", "timeoutMs", NULL};
  bool set = false;
  int64_t timeout_ms = EXEC_TIMEOUT_MS_DEFAULT;
  if (body && qvmd_body_known(out, body, known) && (argv = read_argv(out, body)) &&
      qvmd_body_int(out, body, "timeoutMs", 1, EXEC_TIMEOUT_MS_MAX, &set, &timeout_ms) &&
      qvmd_work_begin(out, req)) {
    run(out, vm, argv, (int)timeout_ms);
    qvmd_work_end(req);
  }
  free(argv);
  json_object_put(body);
  qvm_vm_free(vm);
}
