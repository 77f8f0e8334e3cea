/* SPDX-License-Identifier: MIT */
#include "vm/image.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "util/cleanup.h"
#include "util/strbuf.h"

extern char **environ;

static void drain(int fds[2], qvm_strbuf *out, qvm_strbuf *errb) {
  struct pollfd p[2] = {{.fd = fds[0], .events = POLLIN}, {.fd = fds[1], .events = POLLIN}};
  char buf[4096];
  while (p[0].fd >= 0 || p[1].fd >= 0) {
    if (poll(p, 2, -1) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; i++) {
      if (p[i].fd < 0 || !p[i].revents) continue;
      ssize_t n = read(p[i].fd, buf, sizeof buf);
      if (n > 0 && (i ? errb : out)->len < (1u << 20))
        qvm_strbuf_append(i ? errb : out, buf, (size_t)n);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) p[i].fd = -1;
    }
  }
}

int vm_run_program(char **out, char *const argv[], qvm_error **err) {
  int po[2] = {-1, -1}, pe[2] = {-1, -1};
  if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
    int e = errno;
    if (po[0] >= 0) close(po[0]), close(po[1]);
    return qvm_error_set_errno(err, e, "cannot create a pipe");
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, po[1], 1);
  posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
  pid_t pid = 0;
  int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(po[1]);
  close(pe[1]);
  if (r != 0) {
    close(po[0]);
    close(pe[0]);
    return qvm_error_set_errno(err, r, "cannot run '%s'", argv[0]);
  }
  qvm_strbuf sout = QVM_STRBUF_INIT, serr = QVM_STRBUF_INIT;
  int fds[2] = {po[0], pe[0]};
  drain(fds, &sout, &serr);
  close(po[0]);
  close(pe[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  _cleanup_free_ char *o = qvm_strbuf_steal(&sout), *e = qvm_strbuf_steal(&serr);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    char *msg = e ? e : "";
    size_t len = strlen(msg);
    while (len && msg[len - 1] == '\n') msg[--len] = '\0';
    char *last = strrchr(msg, '\n');
    return qvm_error_set(err, QVM_EINVAL, "%s failed: %s", argv[0],
                         last   ? last + 1
                         : *msg ? msg
                                : "no message");
  }
  if (out) *out = TAKE_PTR(o);
  return 0;
}

int vm_image_probe(char **out_format, uint64_t *out_size, const char *path, qvm_error **err) {
  char *argv[] = {"qemu-img", "info", "-U", "--output=json", (char *)path, NULL};
  _cleanup_free_ char *text = NULL;
  int r = vm_run_program(&text, argv, err);
  if (r < 0) {
    qvm_error_prefix(err, "cannot read image '%s'", path);
    return r;
  }
  struct json_object *info = json_tokener_parse(text), *fmt = NULL, *size = NULL;
  if (!info || !json_object_object_get_ex(info, "format", &fmt) ||
      !json_object_object_get_ex(info, "virtual-size", &size) ||
      !json_object_is_type(fmt, json_type_string)) {
    json_object_put(info);
    return qvm_error_set(err, QVM_EPROTO, "qemu-img gave no format for image '%s'", path);
  }
  *out_format = strdup(json_object_get_string(fmt));
  *out_size = (uint64_t)json_object_get_int64(size);
  json_object_put(info);
  return *out_format ? 0 : qvm_error_set_errno(err, ENOMEM, "cannot probe");
}

int vm_image_overlay(const char *overlay, const char *base, const char *base_format,
                     uint64_t base_size, uint64_t size, qvm_error **err) {
  char *create[] = {
      "qemu-img",   "create",        "-q", "-f", "qcow2", "-F", (char *)base_format, "-b",
      (char *)base, (char *)overlay, NULL};
  int r = vm_run_program(NULL, create, err);
  if (r < 0 || size <= base_size) return r;
  char bytes[32];
  snprintf(bytes, sizeof bytes, "%" PRIu64, size);
  char *resize[] = {"qemu-img", "resize", "-q", "-f", "qcow2", (char *)overlay, bytes, NULL};
  return vm_run_program(NULL, resize, err);
}

int vm_image_blank(const char *path, uint64_t size, qvm_error **err) {
  char bytes[32];
  snprintf(bytes, sizeof bytes, "%" PRIu64, size);
  char *argv[] = {"qemu-img", "create", "-q", "-f", "qcow2", (char *)path, bytes, NULL};
  return vm_run_program(NULL, argv, err);
}
