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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "util/cleanup.h"
#include "util/strbuf.h"
#include <qvm/text.h>

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
    const char *line = last ? last + 1 : *msg ? msg : "no message";
    /* qemu-img may quote an image's header, which a guest may have written. */
    _cleanup_free_ char *shown = qvm_text_for_terminal(line, strlen(line), 0);
    return qvm_error_set(err, QVM_EINVAL, "%s failed: %s", argv[0], shown ? shown : "?");
  }
  if (out) *out = TAKE_PTR(o);
  return 0;
}

void vm_image_info_clear(vm_image_info *i) {
  free(i->format);
  free(i->reference);
  *i = (vm_image_info){0};
}

static const char *jstr(struct json_object *o, const char *key) {
  struct json_object *v = NULL;
  return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
             ? json_object_get_string(v)
             : NULL;
}

/* The first other file the image makes QEMU open: a backing file (any
 * format), a qcow2 external data file, or a vmdk extent that is not the image
 * itself. These names come from the image's header, which a guest may have
 * written. */
static const char *image_reference(struct json_object *info, const char **kind) {
  struct json_object *spec = NULL, *data = NULL, *extents = NULL;
  const char *name = jstr(info, "backing-filename"), *self = jstr(info, "filename");
  *kind = "backing file";
  if (name) return name;
  if (!json_object_object_get_ex(info, "format-specific", &spec) ||
      !json_object_object_get_ex(spec, "data", &data))
    return NULL;
  *kind = "data file";
  if ((name = jstr(data, "data-file"))) return name;
  *kind = "extent";
  if (!json_object_object_get_ex(data, "extents", &extents) ||
      !json_object_is_type(extents, json_type_array))
    return NULL;
  for (size_t i = 0; i < json_object_array_length(extents); i++) {
    name = jstr(json_object_array_get_idx(extents, i), "filename");
    if (name && (!self || strcmp(name, self))) return name;
  }
  return NULL;
}

static int info_fill(vm_image_info *out, struct json_object *info, const char *path,
                     qvm_error **err) {
  struct json_object *size = NULL;
  const char *fmt = jstr(info, "format"), *kind = NULL, *ref = image_reference(info, &kind);
  if (!fmt || !json_object_object_get_ex(info, "virtual-size", &size))
    return qvm_error_set(err, QVM_EPROTO, "qemu-img gave no format for image '%s'", path);
  vm_image_info i = {.format = strdup(fmt),
                     .size = (uint64_t)json_object_get_int64(size),
                     .reference = ref ? qvm_text_for_terminal(ref, strlen(ref), 0) : NULL,
                     .reference_kind = kind};
  if (!i.format || (ref && !i.reference)) {
    vm_image_info_clear(&i);
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  }
  *out = i;
  return 0;
}

int vm_image_inspect(vm_image_info *out, const char *path, const char *format, qvm_error **err) {
  char *argv[] = {"qemu-img", "info",       "-U", "--output=json", "-f", (char *)format,
                  "--",       (char *)path, NULL};
  if (!format) { /* detect: drop "-f FORMAT" */
    argv[4] = "--";
    argv[5] = (char *)path;
    argv[6] = NULL;
  }
  _cleanup_free_ char *text = NULL;
  int r = vm_run_program(&text, argv, err);
  if (r < 0) {
    qvm_error_prefix(err, "cannot read image '%s'", path);
    return r;
  }
  struct json_object *info = json_tokener_parse(text);
  r = info && json_object_is_type(info, json_type_object)
          ? info_fill(out, info, path, err)
          : qvm_error_set(err, QVM_EPROTO, "qemu-img gave no format for image '%s'", path);
  json_object_put(info);
  return r;
}

int vm_image_check(vm_image_info *out, const char *what, const char *path, const char *format,
                   bool allow_backing, const char *raw_hint, qvm_error **err) {
  vm_image_info i = {0};
  int r = vm_image_inspect(&i, path, format, err);
  if (r < 0) return r;
  if (i.reference && !allow_backing) {
    r = qvm_error_set(err, QVM_EINVAL,
                      "%s '%s' (%s) names another file, its %s '%s', that qemu would open for "
                      "the guest: give --allow-backing if you trust that file, or %s if the "
                      "image is really raw (a guest can write such a header into a raw disk)",
                      what, path, i.format, i.reference_kind, i.reference, raw_hint);
    vm_image_info_clear(&i);
    return r;
  }
  *out = i;
  return 0;
}

/* What a bootable raw disk starts with: an MBR or GPT (whose protective MBR
 * has the same signature), a FAT boot sector, or a whole-disk file system. */
static const char *raw_disk_kind(const unsigned char *b, size_t n) {
  if (n >= 512 && b[510] == 0x55 && b[511] == 0xaa) return "a partition table or boot sector";
  if (n >= 520 && !memcmp(b + 512, "EFI PART", 8)) return "a gpt partition table";
  if (n >= 1082 && b[1080] == 0x53 && b[1081] == 0xef) return "an ext2/3/4 file system";
  if (n >= 4 && !memcmp(b, "XFSB", 4)) return "an xfs file system";
  if (n >= 32774 && !memcmp(b + 32769, "CD001", 5)) return "an iso9660 file system";
  if (n >= 65544 + 8 && !memcmp(b + 65536 + 64, "_BHRfS_M", 8)) return "a btrfs file system";
  return NULL;
}

int vm_image_raw_looks_like_disk(const char *path, const char *raw_hint, qvm_error **err) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open '%s'", path);
  enum { HEAD = 65536 + 128 };
  _cleanup_free_ unsigned char *b = malloc(HEAD);
  if (!b) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  ssize_t n = pread(fd, b, HEAD, 0);
  if (n < 0) return qvm_error_set_errno(err, errno, "cannot read '%s'", path);
  if (raw_disk_kind(b, (size_t)n)) return 0;
  return qvm_error_set(err, QVM_EINVAL,
                       "'%s' does not look like a disk image: qemu-img reads it as raw data, and "
                       "it has no partition table, boot sector or file system a guest could boot "
                       "from (give %s to boot it anyway)",
                       path, raw_hint);
}

int vm_image_overlay(const char *overlay, const char *base, const char *base_format,
                     uint64_t base_size, uint64_t size, qvm_error **err) {
  /* -F pins the base's format in the overlay's header (backing_fmt): QEMU
   * never probes the base. */
  char *create[] = {
      "qemu-img",   "create",        "-q", "-f", "qcow2", "-F", (char *)base_format, "-b",
      (char *)base, (char *)overlay, NULL};
  int r = vm_run_program(NULL, create, err);
  if (r >= 0 && chmod(overlay, 0600) < 0)
    r = qvm_error_set_errno(err, errno, "cannot make '%s' private (0600)", overlay);
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
  int r = vm_run_program(NULL, argv, err);
  if (r >= 0 && chmod(path, 0600) < 0)
    r = qvm_error_set_errno(err, errno, "cannot make '%s' private (0600)", path);
  return r;
}
