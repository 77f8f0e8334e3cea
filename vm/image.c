/* SPDX-License-Identifier: MIT */
#include "vm/image.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "util/cleanup.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "vm/qcow2.h"
#include "vm/qemu_user.h"
#include <qvm/text.h>

/* How a program runs: with an fd of the caller's as its fd 3, as another
 * user, within a time limit. */
typedef struct run_opts {
  int fd3;   /* -1: none */
  bool drop; /* switch to uid:gid (no supplementary groups) before exec */
  uid_t uid;
  gid_t gid;
  int timeout_ms; /* 0: none */
} run_opts;

/* false if the deadline passed first. */
static bool drain(int fds[2], qvm_strbuf *out, qvm_strbuf *errb, int64_t deadline) {
  struct pollfd p[2] = {{.fd = fds[0], .events = POLLIN}, {.fd = fds[1], .events = POLLIN}};
  char buf[4096];
  while (p[0].fd >= 0 || p[1].fd >= 0) {
    int left = deadline ? (int)qvm_deadline_left_ms(deadline) : -1;
    if (deadline && left <= 0) return false;
    int n = poll(p, 2, left);
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    for (int i = 0; i < 2; i++) {
      if (p[i].fd < 0 || !p[i].revents) continue;
      ssize_t got = read(p[i].fd, buf, sizeof buf);
      if (got > 0 && (i ? errb : out)->len < (1u << 20))
        qvm_strbuf_append(i ? errb : out, buf, (size_t)got);
      if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) p[i].fd = -1;
    }
  }
  return true;
}

/* In the child between fork and exec: only async-signal-safe calls. */
__attribute__((noreturn)) static void exec_child(char *const argv[], const run_opts *o, int out,
                                                 int errfd) {
  int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int fd3 = o->fd3 >= 0 ? fcntl(o->fd3, F_DUPFD_CLOEXEC, 10) : -1;
  if (nul < 0 || dup2(nul, 0) < 0 || dup2(out, 1) < 0 || dup2(errfd, 2) < 0 ||
      (o->fd3 >= 0 && (fd3 < 0 || dup2(fd3, 3) < 0)))
    _exit(126);
  if (o->drop && (setgroups(0, NULL) < 0 || setgid(o->gid) < 0 || setuid(o->uid) < 0)) {
    static const char msg[] = "cannot drop privileges\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(126);
  }
  execvp(argv[0], argv);
  _exit(127);
}

static int run_failed(const char *prog, int st, char *e, qvm_error **err) {
  if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL && !e[0])
    return qvm_error_set(err, QVM_ESYS, "%s was killed", prog);
  size_t len = strlen(e);
  while (len && e[len - 1] == '\n') e[--len] = '\0';
  char *last = strrchr(e, '\n');
  const char *line = last ? last + 1 : *e ? e : "no message";
  /* qemu-img may quote an image's header, which a guest may have written. */
  _cleanup_free_ char *shown = qvm_text_for_terminal(line, strlen(line), 0);
  return qvm_error_set(err, QVM_EINVAL, "%s failed: %s", prog, shown ? shown : "?");
}

static int run_program(char **out, char *const argv[], const run_opts *o, qvm_error **err) {
  int po[2] = {-1, -1}, pe[2] = {-1, -1};
  if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
    int e = errno;
    if (po[0] >= 0) close(po[0]), close(po[1]);
    return qvm_error_set_errno(err, e, "cannot create a pipe");
  }
  pid_t pid = fork();
  if (pid == 0) exec_child(argv, o, po[1], pe[1]);
  int fork_errno = errno;
  close(po[1]);
  close(pe[1]);
  if (pid < 0) {
    close(po[0]);
    close(pe[0]);
    return qvm_error_set_errno(err, fork_errno, "cannot run '%s'", argv[0]);
  }
  qvm_strbuf sout = QVM_STRBUF_INIT, serr = QVM_STRBUF_INIT;
  int fds[2] = {po[0], pe[0]};
  int64_t deadline = o->timeout_ms ? qvm_now_ms() + o->timeout_ms : 0;
  bool done = drain(fds, &sout, &serr, deadline);
  if (!done) kill(pid, SIGKILL);
  close(po[0]);
  close(pe[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  _cleanup_free_ char *so = qvm_strbuf_steal(&sout), *se = qvm_strbuf_steal(&serr);
  if (!done)
    return qvm_error_set(err, QVM_ETIMEOUT,
                         "%s did not finish within %d s and was killed (does the image name a "
                         "fifo or a device?)",
                         argv[0], o->timeout_ms / 1000);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
    return qvm_error_set(err, QVM_EUNAVAIL, "cannot run '%s': not installed", argv[0]);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return run_failed(argv[0], st, se ? se : "", err);
  if (out) {
    if (!so && !(so = strdup(""))) return qvm_error_set_errno(err, ENOMEM, "out of memory");
    *out = TAKE_PTR(so);
  }
  return 0;
}

int vm_run_program(char **out, char *const argv[], qvm_error **err) {
  run_opts o = {.fd3 = -1};
  return run_program(out, argv, &o, err);
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

#define VM_IMAGE_INFO_TIMEOUT_MS 30000

/* Whether the qemu user can read the file behind st: qemu-img reopens
 * /dev/fd/3 by its inode, with that user's rights. */
static bool user_can_read(const struct stat *st, uid_t uid, gid_t gid) {
  if (st->st_uid == uid) return st->st_mode & S_IRUSR;
  if (st->st_gid == gid) return st->st_mode & S_IRGRP;
  return st->st_mode & S_IROTH;
}

/* As root, qemu-img runs as the qemu user (vm/qemu_user.c): the files a
 * hostile header names (a vmdk extent, a qcow2 data file) are opened with
 * that user's rights, not root's, and a fifo stops it only until the
 * timeout. An image that user cannot read is inspected as root only in a
 * format that names no other file (root_fallback_format). */
static int info_opts(run_opts *o, int fd, qvm_error **err) {
  *o = (run_opts){.fd3 = fd, .timeout_ms = VM_IMAGE_INFO_TIMEOUT_MS};
  _cleanup_free_ char *runas = NULL;
  int r = vm_qemu_user_runas(&runas, err);
  if (r < 0 || !runas) return r;
  unsigned uid = 0, gid = 0;
  struct stat st;
  if (sscanf(runas, "%u:%u", &uid, &gid) != 2 || fstat(fd, &st) < 0) return 0;
  o->drop = user_can_read(&st, uid, gid);
  o->uid = uid;
  o->gid = gid;
  return 0;
}

static bool fd_has_qcow2_magic(int fd) {
  uint8_t head[4];
  return pread(fd, head, sizeof head, 0) == (ssize_t)sizeof head && vm_qcow2_magic(head, 4);
}

/* When the qemu user cannot read the image, qemu-img would run as root: only
 * where nothing it opens can come from the image's content. A qcow2 (qvm's
 * own header check has passed) is read as qcow2; raw, vdi, vhdx and vpc name
 * no other file. Detection could find a vmdk descriptor, whose extents root
 * would open, so it is refused, and so is an explicit vmdk. */
static int root_fallback_format(const char **format, int fd, const char *path, qvm_error **err) {
  if (!*format && fd_has_qcow2_magic(fd)) *format = "qcow2";
  if (*format && strcmp(*format, "vmdk") != 0) return 0;
  return qvm_error_set(err, QVM_EINVAL,
                       "the qemu user cannot read image '%s', and qvm will not let qemu-img "
                       "probe it as root (a header could make root open another file): give "
                       "its format (raw, qcow2, vdi, vhdx or vpc), or make it readable to the "
                       "qemu user",
                       path);
}

/* by_path: the user vouched for the files the image names (--allow-backing),
 * so qemu-img reads it by its own path with qvm's rights, and a vmdk finds
 * its extents relative to its own directory, not to /dev/fd. */
static int inspect_fd(vm_image_info *out, int fd, const char *path, const char *format,
                      bool by_path, qvm_error **err) {
  run_opts o = {.fd3 = -1};
  int r = by_path ? 0 : info_opts(&o, fd, err);
  if (r >= 0 && !by_path && !o.drop && o.uid) r = root_fallback_format(&format, fd, path, err);
  if (r < 0) return r;
  const char *file = by_path ? path : "/dev/fd/3";
  if (by_path) o = (run_opts){.fd3 = -1, .timeout_ms = VM_IMAGE_INFO_TIMEOUT_MS};
  char *argv[] = {"qemu-img", "info",       "-U", "--output=json", "-f", (char *)format,
                  "--",       (char *)file, NULL};
  if (!format) { /* detect: drop "-f FORMAT" */
    argv[4] = "--";
    argv[5] = (char *)file;
    argv[6] = NULL;
  }
  _cleanup_free_ char *text = NULL;
  r = run_program(&text, argv, &o, err);
  if (r < 0) {
    qvm_error_prefix(err, "cannot read image '%s'%s", path,
                     o.drop ? " (qemu-img ran as the qemu user, on /dev/fd/3)" : "");
    return r;
  }
  struct json_object *info = text ? json_tokener_parse(text) : NULL;
  r = info && json_object_is_type(info, json_type_object)
          ? info_fill(out, info, path, err)
          : qvm_error_set(err, QVM_EPROTO, "qemu-img gave no format for image '%s'", path);
  json_object_put(info);
  return r;
}

static int open_image(int *out, const char *path, qvm_error **err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open image '%s'", path);
  struct stat st;
  if (fstat(fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
    close(fd);
    return qvm_error_set(err, QVM_EINVAL, "image '%s' is not a file or a block device", path);
  }
  *out = fd;
  return 0;
}

int vm_image_inspect(vm_image_info *out, const char *path, const char *format, qvm_error **err) {
  _cleanup_close_ int fd = -1;
  int r = open_image(&fd, path, err);
  return r < 0 ? r : inspect_fd(out, fd, path, format, false, err);
}

/* qvm's own parser reads a qcow2 header before qemu-img does: an external
 * data file is refused, and a backing file unless allowed. */
static int precheck_qcow2(int fd, const char *what, const char *path, bool allow_backing,
                          const char *drive, qvm_error **err) {
  uint8_t magic[4];
  if (pread(fd, magic, sizeof magic, 0) != (ssize_t)sizeof magic ||
      !vm_qcow2_magic(magic, sizeof magic))
    return 0;
  _cleanup_free_ vm_qcow2_header *h = calloc(1, sizeof *h);
  if (!h) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  int r = vm_qcow2_read_fd(h, fd, path, err);
  if (r < 0) {
    qvm_error_prefix(err, "%s", what);
    return r;
  }
  vm_qcow2_policy policy = {.what = what,
                            .allow_backing = allow_backing,
                            .why = " (a guest can write such a header into a raw disk)"};
  r = vm_qcow2_check(h, path, &policy, err);
  if (r < 0)
    qvm_error_set_hint(err, r, h->has_data_file ? "ImageDataFile" : "ImageNamesFile", drive);
  return r;
}

/* The first extent a vmdk text descriptor names ("RW 16384 FLAT "file" 0"),
 * into name (cap bytes); false if none. */
static bool vmdk_descriptor_extent(char *name, size_t cap, const char *text) {
  for (const char *line = text; line && *line;
       line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
    line += strspn(line, " \t");
    if (strncmp(line, "RW ", 3) && strncmp(line, "RDONLY ", 7) && strncmp(line, "NOACCESS ", 9))
      continue;
    const char *end = strchr(line, '\n'), *q = strchr(line, '"');
    const char *q2 = q ? strchr(q + 1, '"') : NULL;
    if (!q || !q2 || (end && q2 > end)) continue;
    size_t n = (size_t)(q2 - q - 1) < cap - 1 ? (size_t)(q2 - q - 1) : cap - 1;
    memcpy(name, q + 1, n);
    name[n] = '\0';
    return true;
  }
  return false;
}

/* A vmdk text descriptor always names other files (its extents): refused
 * before qemu-img opens them, unless allowed. */
static int precheck_vmdk(int fd, const char *what, const char *path, bool allow_backing,
                         const char *drive, qvm_error **err) {
  enum { HEAD = 65536 };
  static const char magic[] = "# Disk DescriptorFile";
  _cleanup_free_ char *text = malloc(HEAD + 1);
  if (!text) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  ssize_t n = pread(fd, text, HEAD, 0);
  if (allow_backing || n < (ssize_t)strlen(magic) || memcmp(text, magic, strlen(magic))) return 0;
  text[n] = '\0';
  char name[1024];
  if (!vmdk_descriptor_extent(name, sizeof name, text)) return 0;
  _cleanup_free_ char *shown = qvm_text_for_terminal(name, strlen(name), 0);
  qvm_error_set(err, QVM_EINVAL,
                "%s '%s' (vmdk) names another file, its extent '%s', that qemu would open for "
                "the guest (a guest can write such a header into a raw disk)",
                what, path, shown ? shown : "?");
  return qvm_error_set_hint(err, QVM_EINVAL, "ImageNamesFile", drive);
}

int vm_image_check(vm_image_info *out, const char *what, const char *path, const char *format,
                   bool allow_backing, const char *drive, qvm_error **err) {
  vm_image_info i = {0};
  _cleanup_close_ int fd = -1;
  int r = open_image(&fd, path, err);
  if (r >= 0 && (!format || !strcmp(format, "qcow2")))
    r = precheck_qcow2(fd, what, path, allow_backing, drive, err);
  if (r >= 0 && (!format || !strcmp(format, "vmdk")))
    r = precheck_vmdk(fd, what, path, allow_backing, drive, err);
  if (r >= 0) r = inspect_fd(&i, fd, path, format, allow_backing, err);
  if (r < 0) return r;
  if (i.reference && !allow_backing) {
    qvm_error_set(err, QVM_EINVAL,
                  "%s '%s' (%s) names another file, its %s '%s', that qemu would open for the "
                  "guest (a guest can write such a header into a raw disk)",
                  what, path, i.format, i.reference_kind, i.reference);
    r = qvm_error_set_hint(err, QVM_EINVAL, "ImageNamesFile", drive);
    vm_image_info_clear(&i);
    return r;
  }
  *out = i;
  return 0;
}

/* What a bootable raw disk starts with: an MBR or GPT (whose protective MBR
 * has the same signature; 4Kn disks put the GPT header at 4096), a FAT boot
 * sector, a whole-disk file system, or a container a guest opens itself
 * (LVM, LUKS, swap). */
const char *vm_image_raw_kind(const unsigned char *b, size_t n) {
  if (n >= 512 && b[510] == 0x55 && b[511] == 0xaa) return "a partition table or boot sector";
  if (n >= 520 && !memcmp(b + 512, "EFI PART", 8)) return "a gpt partition table";
  if (n >= 4104 && !memcmp(b + 4096, "EFI PART", 8)) return "a gpt partition table (4k sectors)";
  if (n >= 1082 && b[1080] == 0x53 && b[1081] == 0xef) return "an ext2/3/4 file system";
  if (n >= 4 && !memcmp(b, "XFSB", 4)) return "an xfs file system";
  if (n >= 4 && !memcmp(b, "hsqs", 4)) return "a squashfs file system";
  if (n >= 6 && !memcmp(b, "LUKS\xba\xbe", 6)) return "a luks volume";
  if (n >= 520 && !memcmp(b + 512, "LABELONE", 8)) return "an lvm2 physical volume";
  if (n >= 4096 && !memcmp(b + 4086, "SWAPSPACE2", 10)) return "a swap area";
  if (n >= 32774 && !memcmp(b + 32769, "CD001", 5)) return "an iso9660 file system";
  if (n >= 65536 + 64 + 8 && !memcmp(b + 65536 + 64, "_BHRfS_M", 8)) return "a btrfs file system";
  /* A blank disk (all zero so far): something will be installed on it. */
  size_t zero = 0;
  while (zero < n && !b[zero]) zero++;
  if (n && zero == n) return "a blank disk";
  return NULL;
}

int vm_image_raw_looks_like_disk(const char *path, qvm_error **err) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open '%s'", path);
  enum { HEAD = 65536 + 128 };
  _cleanup_free_ unsigned char *b = malloc(HEAD);
  if (!b) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  ssize_t n = pread(fd, b, HEAD, 0);
  if (n < 0) return qvm_error_set_errno(err, errno, "cannot read '%s'", path);
  if (vm_image_raw_kind(b, (size_t)n)) return 0;
  qvm_error_set(err, QVM_EINVAL,
                "'%s' does not look like a disk image: qemu-img reads it as raw data, and it "
                "has no partition table, boot sector or file system a guest could boot from",
                path);
  return qvm_error_set_hint(err, QVM_EINVAL, "ImageNotADisk", NULL);
}

/* Image formats only: never a protocol (nbd, http, ssh, vvfat) or a filter
 * (blkdebug, throttle, copy-on-read), which take a file name and open
 * something else. */
static const char *const image_formats[] = {"raw", "qcow2", "vmdk", "vdi", "vhdx", "vpc"};

bool vm_image_format_allowed(const char *format) {
  for (size_t i = 0; format && i < sizeof image_formats / sizeof *image_formats; i++)
    if (!strcmp(format, image_formats[i])) return true;
  return false;
}

int vm_image_format_check(const char *what, const char *path, const char *format, qvm_error **err) {
  if (vm_image_format_allowed(format)) return 0;
  _cleanup_free_ char *shown = format ? qvm_text_for_terminal(format, strlen(format), 0) : NULL;
  return qvm_error_set(err, QVM_EINVAL,
                       "%s '%s' has format '%s', which qvm does not use: give one of raw, qcow2, "
                       "vmdk, vdi, vhdx, vpc",
                       what, path, shown ? shown : "(none)");
}

static char *drive_abs(const char *vm_dir, const char *path) {
  char *abs = NULL;
  if (path[0] == '/') return strdup(path);
  return asprintf(&abs, "%s/%s", vm_dir, path) < 0 ? NULL : abs;
}

#define VM_IMAGE_REWRITTEN                                                                         \
  ": qemu opens what the header names as root, before it drops its privileges; a guest "           \
  "that escaped into qemu may have rewritten it (qemu holds the image read-write), so qvm "        \
  "did not start qemu: check the file, or recreate the vm"

/* A writable vmdk names its extents in a descriptor qemu can rewrite, and
 * qvm does not parse vmdk: only qcow2 and formats that name no other file
 * may be written by the guest. */
int vm_image_drive_check(const char *path, const char *format, bool readonly, qvm_error **err) {
  int r = vm_image_format_check("drive", path, format, err);
  if (r >= 0 && !strcmp(format, "vmdk") && !readonly)
    r = qvm_error_set(err, QVM_EINVAL,
                      "drive '%s' is a writable vmdk, whose descriptor a guest that escaped "
                      "into qemu could rewrite to name host files: give it ',readonly' or "
                      "convert it to qcow2 (qemu-img convert -O qcow2)",
                      path);
  return r;
}

static int verify_drive(const vm_spec *spec, const vm_drive *d, const char *abs, qvm_error **err) {
  int r = vm_image_drive_check(abs, d->format, d->readonly, err);
  if (r < 0 || strcmp(d->format, "qcow2")) return r;
  bool overlay = !strcmp(d->path, "disk.qcow2");
  vm_qcow2_policy policy = {.what = overlay ? "vm disk" : "drive",
                            .backing = overlay ? spec->image : NULL,
                            .backing_format = overlay ? spec->image_format : NULL,
                            .allow_backing = !overlay && spec->allow_backing,
                            .why = VM_IMAGE_REWRITTEN};
  return vm_qcow2_check_file(abs, &policy, err);
}

int vm_image_verify_drives(const vm_spec *spec, const char *vm_dir, qvm_error **err) {
  for (size_t i = 0; i < spec->n_drives; i++) {
    const vm_drive *d = &spec->drives[i];
    _cleanup_free_ char *abs = drive_abs(vm_dir, d->path);
    if (!abs) return qvm_error_set_errno(err, ENOMEM, "out of memory");
    int r = d->media == VM_MEDIA_CDROM ? vm_image_format_check("cdrom", abs, d->format, err)
                                       : verify_drive(spec, d, abs, err);
    if (r < 0) return r;
  }
  return 0;
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
