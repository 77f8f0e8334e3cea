/* SPDX-License-Identifier: MIT */
/* GET /api/v1/vms/{name}/ip and /api/v1/vms/{name}/console?tail=N. The
 * serial log is written by the guest: it is read bounded (its last bytes
 * only) and answered as guest bytes (qvmd_json_add_guest_bytes). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <qvm/ssh.h>
#include <qvm/vm.h>

#include "qvmd.h"

#define TAIL_DEFAULT (64u << 10)
#define TAIL_MAX (1u << 20)

static qvm_vm *open_vm(qvmd_reply *out, const qvmd_request *req) {
  return qvmd_sandbox_open(out, req, !strncmp(req->path, "/api/v1/sandboxes/", 18));
}

void qvmd_vms_ip(qvmd_reply *out, const qvmd_request *req) {
  qvm_vm *vm = open_vm(out, req);
  if (!vm) return;
  qvm_error *err = NULL;
  char *ip = NULL, *source = NULL;
  if (qvm_vm_get_state(vm) != QVM_VM_RUNNING) {
    qvmd_problem(out, 409, "VmNotRunning", "vm '%s' is not running", qvm_vm_name(vm));
  } else if (qvm_vm_ip(&ip, &source, vm, 0, &err) == 0) {
    json_object *r = json_object_new_object();
    json_object_object_add(r, "ip", json_object_new_string(ip));
    json_object_object_add(r, "source", json_object_new_string(source ? source : "unknown"));
    qvmd_reply_json(out, 200, r);
  } else if (err && !strcmp(qvm_error_class(err) ? qvm_error_class(err) : "", "UserNetwork")) {
    /* no address of its own: the guest is reached through the host's
     * forward to its SSH port */
    qvm_error_free(err);
    err = NULL;
    qvm_ssh_options so;
    if (qvm_vm_ssh_target(&so, vm, 0, &err) < 0) {
      qvmd_problem_qvm(out, err, NULL);
    } else {
      json_object *r = json_object_new_object();
      json_object_object_add(r, "ip", NULL);
      json_object_object_add(r, "source", json_object_new_string("user-network"));
      json_object_object_add(r, "sshHost", json_object_new_string(so.host ? so.host : ""));
      json_object_object_add(r, "sshPort", json_object_new_int(so.port));
      qvmd_reply_json(out, 200, r);
    }
  } else if (err && qvm_error_code(err) == QVM_ENOTFOUND) {
    qvmd_problem(out, 409, "VmNotRunning", "%s", qvm_error_message(err));
    qvm_error_free(err);
  } else if (err && qvm_error_code(err) == QVM_ETIMEOUT) {
    /* running, but no address known yet: the caller asks again */
    qvmd_problem(out, 409, "NoAddressYet", "vm '%s' has no known address yet", qvm_vm_name(vm));
    out->retry_after_s = 1;
    qvm_error_free(err);
  } else {
    qvmd_problem_qvm(out, err, NULL);
  }
  free(ip);
  free(source);
  qvm_vm_free(vm);
}

/* The last `tail` bytes of path into *buf; *truncated when there was more. */
static int read_tail(const char *path, size_t tail, char **buf, size_t *len, bool *truncated) {
  *buf = NULL, *len = 0, *truncated = false;
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return errno == ENOENT ? 0 : -1;
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return -1;
  }
  off_t off = st.st_size > (off_t)tail ? st.st_size - (off_t)tail : 0;
  *truncated = off > 0;
  size_t want = (size_t)(st.st_size - off);
  *buf = malloc(want + 1);
  if (!*buf) {
    close(fd);
    return -1;
  }
  while (*len < want) {
    ssize_t n = pread(fd, *buf + *len, want - *len, off + (off_t)*len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    *len += (size_t)n;
  }
  close(fd);
  return 0;
}

void qvmd_vms_console(qvmd_reply *out, const qvmd_request *req) {
  size_t tail = TAIL_DEFAULT;
  const char *t = qvmd_query(req, "tail");
  if (t) {
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(t, &end, 10);
    if (!t[0] || t[0] == '-' || t[0] == '+' || *end || errno || n < 1 || n > TAIL_MAX) {
      qvmd_problem_field(out, "tail", "'tail' must be a byte count from 1 to %u", TAIL_MAX);
      return;
    }
    tail = (size_t)n;
  }
  qvm_vm *vm = open_vm(out, req);
  if (!vm) return;
  char *buf = NULL;
  size_t len = 0;
  bool truncated = false;
  const char *path = qvm_vm_serial_log_path(vm);
  if (!path || read_tail(path, tail, &buf, &len, &truncated) < 0) {
    qvmd_problem(out, 500, "ESYS", "cannot read the serial log of vm '%s'", qvm_vm_name(vm));
  } else {
    json_object *r = json_object_new_object();
    qvmd_json_add_guest_bytes(r, "text", buf ? buf : "", len);
    json_object_object_add(r, "truncated", json_object_new_boolean(truncated));
    qvmd_reply_json(out, 200, r);
  }
  free(buf);
  qvm_vm_free(vm);
}
