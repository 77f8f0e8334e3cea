/* SPDX-License-Identifier: MIT */
/*
 * exec, shells and copies in a VM with their audit records
 * (include/qvm/audit.h). Guest output is never logged: exec hashes stdout
 * and stderr as they stream past and logs only their sizes and sha256.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "util/cleanup.h"
#include "util/time.h"
#include "vm/audit.h"
#include "vm/handle.h"

/* ---- exec and shells -------------------------------------------------------- */

typedef struct output_tap {
  crypto_hash_sha256_state h[2];
  uint64_t bytes[2];
  qvm_ssh_output_fn next;
  void *ctx;
} output_tap;

static int tap_output(void *ctx, int stream, const void *data, size_t len) {
  output_tap *t = ctx;
  int i = stream == QVM_SSH_STDERR;
  crypto_hash_sha256_update(&t->h[i], data, len);
  t->bytes[i] += len;
  return t->next ? t->next(t->ctx, stream, data, len) : 0;
}

static struct json_object *stream_json(output_tap *t, int i) {
  unsigned char h[crypto_hash_sha256_BYTES];
  char hex[65];
  crypto_hash_sha256_final(&t->h[i], h);
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "bytes", json_object_new_int64((int64_t)t->bytes[i]));
  json_object_object_add(o, "sha256", json_object_new_string(hex));
  return o;
}

/* checkpoint: NULL for a shell or qvm's own commands (no member), "" for a
 * user's command without one (null), else its name. */
static struct json_object *command_json(const qvm_ssh_exec_options *o, const char *checkpoint) {
  struct json_object *d = json_object_new_object();
  if (o->argv)
    vm_audit_add_argv(d, o->argv);
  else if (o->command)
    json_object_object_add(d, "command", vm_audit_string(o->command, VM_AUDIT_PATH_MAX, NULL));
  if (o->pty) json_object_object_add(d, "pty", json_object_new_boolean(true));
  if (checkpoint)
    json_object_object_add(d, "checkpoint",
                           checkpoint[0] ? vm_audit_string(checkpoint, 64, NULL) : NULL);
  return d;
}

static void outcome_json(struct json_object *d, int r, const qvm_ssh_exec_result *res,
                         output_tap *t, int64_t ms) {
  json_object_object_add(d, "exit",
                         r < 0 || res->signaled ? NULL : json_object_new_int(res->exit_code));
  json_object_object_add(d, "signal",
                         res->signaled ? vm_audit_string(res->signal, 32, NULL) : NULL);
  json_object_object_add(d, "duration_ms", json_object_new_int64(ms));
  json_object_object_add(d, "stdout", stream_json(t, 0));
  json_object_object_add(d, "stderr", stream_json(t, 1));
}

/* A record before the command (start: argv and what else start_extra adds)
 * and one after with its outcome: a client killed while the command runs
 * still leaves the first. */
static int exec_logged(qvm_ssh_exec_result *out, qvm_vm *vm, qvm_ssh *ssh,
                       const qvm_ssh_exec_options *opts, const char *start, const char *action,
                       const char *checkpoint, qvm_error **err) {
  int r = vm_exec_options_check(opts, err);
  if (r < 0) return r;
  output_tap t = {.next = opts->on_output, .ctx = opts->ctx};
  crypto_hash_sha256_init(&t.h[0]);
  crypto_hash_sha256_init(&t.h[1]);
  struct json_object *first = command_json(opts, checkpoint);
  if (!strcmp(start, "ssh-open"))
    json_object_object_add(first, "host_key",
                           json_object_new_string(qvm_ssh_host_fingerprint(ssh)));
  vm_audit_note(vm->name, start, 0, NULL, first);
  qvm_ssh_exec_options o = *opts;
  o.on_output = tap_output;
  o.ctx = &t;
  qvm_ssh_exec_result res = {0};
  qvm_error *e = NULL;
  int64_t started = qvm_now_ms();
  r = qvm_ssh_exec(&res, ssh, &o, &e);
  struct json_object *d = command_json(opts, checkpoint);
  outcome_json(d, r, &res, &t, qvm_now_ms() - started);
  vm_audit_note(vm->name, action, r, (const qvm_error *const *)&e, d);
  if (r < 0) return qvm_error_propagate(err, e);
  if (out) *out = res;
  return 0;
}

int vm_exec_options_check(const qvm_ssh_exec_options *opts, qvm_error **err) {
  if (!opts) return qvm_error_set(err, QVM_EINVAL, "exec needs options");
  return QVM_OPTIONS_CHECK(opts, qvm_ssh_exec_options, QVM_SSH_EXEC_OPTIONS_VERSION, err);
}

int qvm_vm_exec(qvm_ssh_exec_result *out, qvm_vm *vm, qvm_ssh *ssh,
                const qvm_ssh_exec_options *opts, qvm_error **err) {
  return exec_logged(out, vm, ssh, opts, "exec-start", "exec", NULL, err);
}

int vm_exec_user(qvm_ssh_exec_result *out, qvm_vm *vm, qvm_ssh *ssh,
                 const qvm_ssh_exec_options *opts, const char *checkpoint, qvm_error **err) {
  return exec_logged(out, vm, ssh, opts, "exec-start", "exec", checkpoint ? checkpoint : "", err);
}

void vm_exec_refused(qvm_vm *vm, const qvm_ssh_exec_options *opts, int r,
                     const qvm_error *const *err) {
  vm_audit_note(vm->name, "exec", r, err, command_json(opts, ""));
}

int qvm_vm_shell(qvm_ssh_exec_result *out, qvm_vm *vm, qvm_ssh *ssh,
                 const qvm_ssh_exec_options *opts, qvm_error **err) {
  return exec_logged(out, vm, ssh, opts, "ssh-open", "ssh-close", NULL, err);
}

/* ---- copies ------------------------------------------------------------------ */

/* sha256 of a local regular file; false if it is not one or cannot be read. */
static bool file_sha256(char out[65], const char *path) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) return false;
  crypto_hash_sha256_state h;
  crypto_hash_sha256_init(&h);
  _cleanup_free_ unsigned char *buf = malloc(1 << 16);
  ssize_t n;
  while (buf && ((n = read(fd, buf, 1 << 16)) > 0 || (n < 0 && errno == EINTR)))
    if (n > 0) crypto_hash_sha256_update(&h, buf, (size_t)n);
  if (!buf || n < 0) return false;
  unsigned char d[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&h, d);
  sodium_bin2hex(out, 65, d, sizeof d);
  return true;
}

/* Where a download of remote to local lands: local, or local/BASE when
 * local was a directory before (cp semantics). The caller frees. */
static char *download_target(const char *local, const char *remote, bool local_was_dir) {
  char *p = NULL;
  if (!local_was_dir) return strdup(local);
  size_t end = strlen(remote);
  while (end > 1 && remote[end - 1] == '/') end--;
  size_t start = end;
  while (start > 0 && remote[start - 1] != '/') start--;
  return asprintf(&p, "%s/%.*s", local, (int)(end - start), remote + start) < 0 ? NULL : p;
}

static int copy_logged(qvm_vm *vm, qvm_ssh *ssh, bool upload, const char *local, const char *remote,
                       const qvm_ssh_copy_options *opts, qvm_error **err) {
  int r = QVM_OPTIONS_CHECK(opts, qvm_ssh_copy_options, QVM_SSH_COPY_OPTIONS_VERSION, err);
  if (r < 0) return r;
  qvm_ssh_copy_options o = QVM_SSH_COPY_OPTIONS_INIT;
  if (opts) o = *opts;
  uint64_t bytes = 0;
  o.out_bytes = &bytes;
  struct stat st;
  bool local_dir = !upload && stat(local, &st) == 0 && S_ISDIR(st.st_mode);
  char sum[65] = "";
  bool hashed = upload && file_sha256(sum, local); /* what is sent: hashed before */
  qvm_error *e = NULL;
  r = upload ? qvm_ssh_upload(ssh, local, remote, &o, &e)
             : qvm_ssh_download(ssh, remote, local, &o, &e);
  _cleanup_free_ char *target = upload ? strdup(local) : download_target(local, remote, local_dir);
  if (!upload && r >= 0 && target) hashed = file_sha256(sum, target);
  _cleanup_free_ char *abs = target ? realpath(target, NULL) : NULL;
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "direction", json_object_new_string(upload ? "upload" : "download"));
  json_object_object_add(d, "local", vm_audit_string(abs ? abs : local, VM_AUDIT_PATH_MAX, NULL));
  json_object_object_add(d, "remote", vm_audit_string(remote, VM_AUDIT_PATH_MAX, NULL));
  json_object_object_add(d, "recursive", json_object_new_boolean(o.recursive));
  json_object_object_add(d, "bytes", json_object_new_int64((int64_t)bytes));
  json_object_object_add(d, "sha256", hashed ? json_object_new_string(sum) : NULL);
  vm_audit_note(vm->name, "cp", r, (const qvm_error *const *)&e, d);
  if (r < 0) return qvm_error_propagate(err, e);
  if (opts && opts->out_bytes) *opts->out_bytes = bytes;
  return 0;
}

int qvm_vm_upload(qvm_vm *vm, qvm_ssh *ssh, const char *local, const char *remote,
                  const qvm_ssh_copy_options *opts, qvm_error **err) {
  return copy_logged(vm, ssh, true, local, remote, opts, err);
}

int qvm_vm_download(qvm_vm *vm, qvm_ssh *ssh, const char *remote, const char *local,
                    const qvm_ssh_copy_options *opts, qvm_error **err) {
  return copy_logged(vm, ssh, false, local, remote, opts, err);
}
