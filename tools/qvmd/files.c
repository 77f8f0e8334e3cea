/* SPDX-License-Identifier: MIT */
/* PUT and GET /api/v1/vms/{name}/files?path=/abs/path (and the same under
 * /api/v1/sandboxes/{name}/files for agent tokens): one file into or out of
 * the guest over SFTP. An upload's body (at most QVMD_UPLOAD_MAX bytes,
 * application/octet-stream) is in a 0600 temp file by the time the
 * handler runs (http.c); a download goes to a temp file in a 0700
 * directory of its own, bounded by QVMD_DOWNLOAD_MAX (the guest can serve
 * an endless file), and is answered from it after it is unlinked. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <qvm/ssh.h>
#include <qvm/vm.h>

#include "qvmd.h"

#define GUEST_PATH_MAX 4096
#define QVMD_DOWNLOAD_MAX (64u << 20)
#define CONNECT_TIMEOUT_MS 30000
#define COPY_TIMEOUT_MS (10 * 60 * 1000)

/* ?path=: absolute, at most GUEST_PATH_MAX bytes, no control characters
 * (a "%00" stays undecoded, http.c), not a directory ("/" at its end). */
static const char *guest_path(qvmd_reply *out, const qvmd_request *req) {
  const char *p = qvmd_query(req, "path");
  if (!p || p[0] != '/' || strlen(p) > GUEST_PATH_MAX || p[strlen(p) - 1] == '/') {
    qvmd_problem_field(out, "path",
                       "'path' must be an absolute path of a file in the guest, at most %d bytes",
                       GUEST_PATH_MAX);
    return NULL;
  }
  for (const unsigned char *c = (const unsigned char *)p; *c; c++) {
    if (*c < 0x20 || *c == 0x7f) {
      qvmd_problem_field(out, "path", "'path' may not hold control characters");
      return NULL;
    }
  }
  return p;
}

static qvm_vm *open_vm(qvmd_reply *out, const qvmd_request *req) {
  return qvmd_sandbox_open(out, req, !strncmp(req->path, "/api/v1/sandboxes/", 18));
}

static qvm_ssh *connect_vm(qvmd_reply *out, qvm_vm *vm) {
  qvm_error *err = NULL;
  qvm_ssh *ssh = NULL;
  qvm_vm_ssh_options so = QVM_VM_SSH_OPTIONS_INIT;
  so.timeout_ms = CONNECT_TIMEOUT_MS;
  if (qvm_vm_ssh_connect(&ssh, vm, &so, &err) < 0) {
    qvmd_problem_qvm(out, err, NULL);
    return NULL;
  }
  return ssh;
}

void qvmd_files_put(qvmd_reply *out, const qvmd_request *req) {
  if (!req->upload_path) {
    qvmd_problem(out, 500, "Internal", "the upload's body was not stored");
    return;
  }
  qvm_vm *vm = open_vm(out, req);
  if (!vm) return;
  const char *path = guest_path(out, req), *m = qvmd_query(req, "mode");
  unsigned long mode = 0644;
  if (path && m) {
    char *end = NULL;
    mode = strtoul(m, &end, 8);
    if (!m[0] || strlen(m) > 4 || *end || mode > 0777 || m[0] == '-' || m[0] == '+') {
      qvmd_problem_field(out, "mode", "'mode' must be octal permission bits, 0 to 0777");
      path = NULL;
    }
  }
  if (!path || !qvmd_work_begin(out, req)) {
    qvm_vm_free(vm);
    return;
  }
  /* The local file is named as the guest's (cp semantics: a path naming a
   * directory in the guest gets the file under that name in it). */
  char local[256];
  const char *base = strrchr(path, '/') + 1;
  const char *dir_end = strrchr(req->upload_path, '/');
  bool linked = false;
  if (strlen(base) < 128 && strcmp(base, ".") && strcmp(base, "..") && strcmp(base, "body")) {
    snprintf(local, sizeof local, "%.*s/%s", (int)(dir_end - req->upload_path), req->upload_path,
             base);
    linked = link(req->upload_path, local) == 0;
  }
  if (!linked) snprintf(local, sizeof local, "%s", req->upload_path);
  qvm_ssh *ssh = NULL;
  qvm_error *err = NULL;
  if (chmod(local, (mode_t)mode) < 0) {
    qvmd_problem(out, 500, "ESYS", "cannot set the upload's mode");
  } else if ((ssh = connect_vm(out, vm))) {
    qvm_ssh_copy_options co = QVM_SSH_COPY_OPTIONS_INIT;
    co.recursive = false;
    co.preserve = true; /* the mode just set (and the time of the upload) */
    co.timeout_ms = COPY_TIMEOUT_MS;
    uint64_t bytes = 0;
    co.out_bytes = &bytes;
    if (qvm_vm_upload(vm, ssh, local, path, &co, &err) < 0) {
      qvmd_problem_qvm(out, err, "path");
    } else {
      json_object *r = json_object_new_object();
      json_object_object_add(r, "path", json_object_new_string(path));
      json_object_object_add(r, "bytes", json_object_new_int64((int64_t)bytes));
      char ms[8];
      snprintf(ms, sizeof ms, "%04lo", mode);
      json_object_object_add(r, "mode", json_object_new_string(ms));
      qvmd_reply_json(out, 200, r);
    }
    qvm_ssh_free(ssh);
  }
  if (linked) unlink(local);
  qvmd_work_end(req);
  qvm_vm_free(vm);
}

typedef struct fd_stream {
  int fd;
} fd_stream;

static long fd_read(void *cls, char *buf, size_t max) {
  fd_stream *f = cls;
  ssize_t n = read(f->fd, buf, max);
  if (n == 0) return QVMD_STREAM_END;
  return n < 0 ? QVMD_STREAM_ERROR : (long)n;
}

static void fd_free(void *cls) {
  fd_stream *f = cls;
  close(f->fd);
  free(f);
}

/* The downloaded file, opened and unlinked (with its directory); -1 with
 * the reply set. */
static int download(qvmd_reply *out, qvm_vm *vm, qvm_ssh *ssh, const char *path, uint64_t *size) {
  const char *tmp = getenv("TMPDIR");
  if (!tmp || tmp[0] != '/' || strlen(tmp) > 64) tmp = "/tmp";
  char dir[96], local[128];
  snprintf(dir, sizeof dir, "%s/qvmd-download-XXXXXX", tmp);
  if (!mkdtemp(dir)) {
    qvmd_problem(out, 500, "ESYS", "cannot make a temp directory for the download");
    return -1;
  }
  snprintf(local, sizeof local, "%s/file", dir);
  qvm_ssh_copy_options co = QVM_SSH_COPY_OPTIONS_INIT;
  co.recursive = false;
  co.preserve = false;
  co.timeout_ms = COPY_TIMEOUT_MS;
  co.max_bytes = QVMD_DOWNLOAD_MAX;
  qvm_error *err = NULL;
  int fd = -1;
  struct stat st;
  if (qvm_vm_download(vm, ssh, path, local, &co, &err) < 0) {
    qvmd_problem_qvm(out, err, "path");
  } else if ((fd = open(local, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0 ||
             !S_ISREG(st.st_mode)) {
    qvmd_problem(out, 500, "ESYS", "cannot read the downloaded file");
    if (fd >= 0) close(fd);
    fd = -1;
  } else {
    *size = (uint64_t)st.st_size;
  }
  unlink(local);
  rmdir(dir);
  return fd;
}

void qvmd_files_get(qvmd_reply *out, const qvmd_request *req) {
  qvm_vm *vm = open_vm(out, req);
  if (!vm) return;
  const char *path = guest_path(out, req);
  if (!path || !qvmd_work_begin(out, req)) {
    qvm_vm_free(vm);
    return;
  }
  qvm_ssh *ssh = connect_vm(out, vm);
  uint64_t size = 0;
  int fd = ssh ? download(out, vm, ssh, path, &size) : -1;
  qvm_ssh_free(ssh);
  qvmd_work_end(req);
  qvm_vm_free(vm);
  if (fd < 0) return;
  fd_stream *f = malloc(sizeof *f);
  if (!f) {
    close(fd);
    qvmd_problem(out, 500, "ESYS", "out of memory");
    return;
  }
  f->fd = fd;
  out->status = 200;
  out->content_type = "application/octet-stream";
  if (size == 0) { /* an empty body, not a stream */
    fd_free(f);
    out->body = strdup("");
    return;
  }
  out->stream_read = fd_read;
  out->stream_free = fd_free;
  out->stream_cls = f;
  out->stream_size = size;
}
