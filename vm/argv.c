/* SPDX-License-Identifier: MIT */
#include "vm/argv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/strbuf.h"
#include "vm/cpu.h"
#include "vm/mount.h"
#include <qvm/text.h>

typedef struct argv_builder {
  vm_argv *a;
  size_t cap;
  bool oom;
} argv_builder;

void vm_argv_free(vm_argv *a) {
  if (!a) return;
  for (size_t i = 0; i < a->argc; i++) free(a->argv[i]);
  free(a->argv);
  free(a);
}

char *vm_qemu_escape(const char *s) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  for (; *s; s++) {
    if (*s == ',') qvm_strbuf_putc(&sb, ',');
    qvm_strbuf_putc(&sb, *s);
  }
  return qvm_strbuf_steal(&sb);
}

static void push_owned(argv_builder *b, char *s) {
  if (!s || b->oom) {
    free(s);
    b->oom = true;
    return;
  }
  if (b->a->argc + 2 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    char **v = reallocarray(b->a->argv, cap, sizeof *v);
    if (!v) {
      free(s);
      b->oom = true;
      return;
    }
    b->a->argv = v;
    b->cap = cap;
  }
  b->a->argv[b->a->argc++] = s;
  b->a->argv[b->a->argc] = NULL;
}

static void push(argv_builder *b, const char *s) { push_owned(b, strdup(s)); }

/* printf where every %s argument has already been escaped by the caller, or
 * is a constant of ours. */
QVM_PRINTF(2, 3) static void pushf(argv_builder *b, const char *fmt, ...) {
  char *s = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&s, fmt, ap) < 0) s = NULL;
  va_end(ap);
  push_owned(b, s);
}

/* An escaped absolute path: relative ones are resolved against the VM dir. */
static char *path_escaped(const vm_argv_input *in, const char *path) {
  if (path[0] == '/') return vm_qemu_escape(path);
  char *abs = NULL;
  if (asprintf(&abs, "%s/%s", in->vm_dir, path) < 0) return NULL;
  char *e = vm_qemu_escape(abs);
  free(abs);
  return e;
}

static void add_machine(argv_builder *b, const vm_argv_input *in) {
  const vm_spec *s = in->spec;
  push(b, "-name");
  pushf(b, "guest=%s,debug-threads=on", s->name);
  push(b, "-uuid");
  push(b, s->uuid);
  push(b, "-machine");
  push(b, s->machine);
  push(b, "-accel");
  push(b, in->accel == VM_ACCEL_KVM ? "kvm" : "tcg");
  push(b, "-cpu");
  push(b, vm_cpu_model(s->cpu, in->accel, NULL));
  push(b, "-m");
  pushf(b, "%llu", (unsigned long long)s->memory_mib);
  if (vm_mounts_virtiofs(s)) {
    /* vhost-user-fs (virtiofsd) maps the guest's RAM: shared memory */
    push(b, "-object");
    pushf(b, "memory-backend-memfd,id=qvm-ram,size=%lluM,share=on",
          (unsigned long long)s->memory_mib);
    push(b, "-machine");
    push(b, "memory-backend=qvm-ram");
  }
  push(b, "-smp");
  pushf(b, "%u", s->cpus);
  push(b, "-nodefaults");
  push(b, "-no-user-config");
  push(b, "-display");
  push(b, "none");
  push(b, "-msg");
  push(b, "timestamp=on");
  if (in->sandbox) {
    /* QEMU 7.2 installs the seccomp filter before -runas calls setgid and
     * setuid, and elevateprivileges=deny kills it there (SIGSYS). After the
     * drop, real, effective and saved ids are all unprivileged and QEMU
     * checks that setuid(0) fails, so set*id can only re-assert them; spawn=deny
     * still forbids exec of a setuid binary. */
    push(b, "-sandbox");
    pushf(b, "on,obsolete=deny,elevateprivileges=%s,spawn=deny,resourcecontrol=deny",
          in->runas ? "allow" : "deny");
  }
  if (in->runas) {
    push(b, "-runas");
    push(b, in->runas);
  }
  /* The vCPUs wait for the shim's cont: QEMU 7.2 starts them just before
   * -runas drops its privileges, and the shim checks the drop first. */
  push(b, "-S");
  /* A guest reboot resets the machine; a guest poweroff ends QEMU. */
  push(b, "-action");
  push(b, "reboot=reset,shutdown=poweroff");
}

static void add_socket_chardev(argv_builder *b, const vm_argv_input *in, const char *id, int fd,
                               const char *path, const char *extra) {
  push(b, "-chardev");
  if (fd >= 0) {
    pushf(b, "socket,id=%s,fd=%d,server=on,wait=off%s", id, fd, extra);
  } else {
    char *p = path_escaped(in, path ? path : "missing.sock");
    pushf(b, "socket,id=%s,path=%s,server=on,wait=off%s", id, p ? p : "", extra);
    if (!p) b->oom = true;
    free(p);
  }
}

static void add_monitor_and_serial(argv_builder *b, const vm_argv_input *in) {
  add_socket_chardev(b, in, "qmp", in->qmp_fd, in->qmp_path, "");
  push(b, "-mon");
  push(b, "chardev=qmp,mode=control");
  char *extra = NULL;
  if (in->serial_log) {
    char *log = path_escaped(in, in->serial_log);
    if (!log || asprintf(&extra, ",logfile=%s,logappend=on", log) < 0) extra = NULL;
    free(log);
    if (!extra) b->oom = true;
  }
  add_socket_chardev(b, in, "serial0", in->console_fd, in->console_path, extra ? extra : "");
  free(extra);
  push(b, "-serial");
  push(b, "chardev:serial0");
}

static void add_firmware(argv_builder *b, const vm_argv_input *in) {
  const vm_spec *s = in->spec;
  if (s->firmware != VM_FIRMWARE_UEFI) return;
  char *code = path_escaped(in, s->firmware_code);
  char *vars = path_escaped(in, s->firmware_vars);
  push(b, "-drive");
  pushf(b, "if=pflash,format=raw,unit=0,readonly=on,file=%s", code ? code : "");
  push(b, "-drive");
  pushf(b, "if=pflash,format=raw,unit=1,file=%s", vars ? vars : "");
  if (!code || !vars) b->oom = true;
  free(code);
  free(vars);
}

static void add_kernel(argv_builder *b, const vm_spec *s) {
  /* -kernel, -initrd and -append take a plain value, not an option list. */
  if (!s->kernel) return;
  push(b, "-kernel");
  push(b, s->kernel);
  if (s->initrd) {
    push(b, "-initrd");
    push(b, s->initrd);
  }
  if (s->append) {
    push(b, "-append");
    push(b, s->append);
  }
}

/* --- block devices ---------------------------------------------------------
 * Each disk is an explicit -blockdev graph with node names (docs/vm-json.md,
 * "Block nodes"): a file node, a format node on it and, for the VM's disk
 * over an image, the image's own two read-only nodes as its backing. The
 * format is always given, never probed, and a format node that can have a
 * backing file is given one (a node) or null, so QEMU never opens the
 * backing file a header names, except where the user allowed it
 * (allow_backing). (An external data file has no "none" to give: the header
 * check before each start, vm_image_verify_drives, refuses those.) The
 * options are JSON: that is the only -blockdev syntax in which QEMU 7.2 takes
 * "backing": null (the dotted syntax reads null as a node's name). */

/* Formats whose -blockdev options have "backing" (QEMU's GenericCOWFormat). */
static bool format_has_backing(const char *format) {
  return !strcmp(format, "qcow2") || !strcmp(format, "vmdk");
}

typedef struct blockdev {
  const char *node;    /* the format node; the file node is NODE-file */
  const char *path;    /* relative paths are under vm_dir */
  const char *format;  /* "qcow2", "raw", ... */
  bool readonly;       /* both nodes */
  const char *backing; /* a node name; NULL: null, or the header's if follow */
  bool follow;         /* backing NULL: let QEMU open what the header names */
} blockdev;

static void json_string(qvm_strbuf *sb, const char *s) {
  qvm_strbuf_putc(sb, '"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      qvm_strbuf_printf(sb, "\\%c", c);
    else if (c < 0x20)
      qvm_strbuf_printf(sb, "\\u%04x", c);
    else
      qvm_strbuf_putc(sb, (char)c);
  }
  qvm_strbuf_putc(sb, '"');
}

static char *path_abs(const vm_argv_input *in, const char *path) {
  char *abs = NULL;
  if (path[0] == '/') return strdup(path);
  return asprintf(&abs, "%s/%s", in->vm_dir, path) < 0 ? NULL : abs;
}

static void add_blockdev(argv_builder *b, const vm_argv_input *in, const blockdev *d) {
  char *abs = path_abs(in, d->path);
  qvm_strbuf sb = QVM_STRBUF_INIT;
  qvm_strbuf_puts(&sb, "{\"driver\":\"file\",\"filename\":");
  json_string(&sb, abs ? abs : "");
  qvm_strbuf_printf(&sb, ",\"node-name\":\"%s-file\"%s}", d->node,
                    d->readonly ? ",\"read-only\":true" : "");
  push(b, "-blockdev");
  push_owned(b, qvm_strbuf_steal(&sb));
  qvm_strbuf_puts(&sb, "{\"driver\":");
  json_string(&sb, d->format);
  qvm_strbuf_printf(&sb, ",\"file\":\"%s-file\",\"node-name\":\"%s\"%s", d->node, d->node,
                    d->readonly ? ",\"read-only\":true" : "");
  if (d->backing)
    qvm_strbuf_printf(&sb, ",\"backing\":\"%s\"", d->backing);
  else if (!d->follow && format_has_backing(d->format))
    qvm_strbuf_puts(&sb, ",\"backing\":null");
  qvm_strbuf_putc(&sb, '}');
  push(b, "-blockdev");
  push_owned(b, qvm_strbuf_steal(&sb));
  if (!abs) b->oom = true;
  free(abs);
}

/* The VM's own disk: disk.qcow2, over the image (read-only) when there is
 * one. Its header names the image too, but QEMU takes the backing given
 * here; vm_image_verify_drives checks the header all the same. */
static bool is_vm_disk(const vm_drive *d) { return !strcmp(d->path, "disk.qcow2"); }

static void add_vm_disk(argv_builder *b, const vm_argv_input *in, const vm_drive *d) {
  const vm_spec *s = in->spec;
  if (s->image) {
    blockdev base = {.node = "base",
                     .path = s->image,
                     .format = s->image_format,
                     .readonly = true,
                     .follow = s->allow_backing};
    add_blockdev(b, in, &base);
  }
  blockdev disk = {.node = "disk",
                   .path = d->path,
                   .format = d->format,
                   .readonly = d->readonly,
                   .backing = s->image ? "base" : NULL};
  add_blockdev(b, in, &disk);
}

static void add_drive(argv_builder *b, const vm_argv_input *in, const vm_drive *d, size_t index) {
  bool cdrom = d->media == VM_MEDIA_CDROM;
  char node[32];
  if (is_vm_disk(d)) {
    snprintf(node, sizeof node, "disk");
    add_vm_disk(b, in, d);
  } else {
    snprintf(node, sizeof node, "drive%zu", index);
    blockdev bd = {.node = node,
                   .path = d->path,
                   .format = d->format,
                   .readonly = cdrom || d->readonly,
                   .follow = in->spec->allow_backing};
    add_blockdev(b, in, &bd);
  }
  push(b, "-device");
  /* CD-ROMs sit on virtio-scsi: Debian's cloud kernel has no AHCI driver,
   * and SeaBIOS and OVMF both boot from it. A scsi-cd takes a -blockdev
   * node as a disk does: it needs no -drive (its media would be changed by
   * device id, diskN, which qvm never does). */
  if (cdrom)
    pushf(b, "scsi-cd,bus=scsi0.0,drive=%s,id=disk%zu,bootindex=%zu", node, index, index + 1);
  else
    pushf(b, "virtio-blk-pci,drive=%s,id=disk%zu,bootindex=%zu", node, index, index + 1);
}

static void add_drives(argv_builder *b, const vm_argv_input *in) {
  const vm_spec *s = in->spec;
  bool scsi = false;
  for (size_t i = 0; i < s->n_drives; i++) scsi |= s->drives[i].media == VM_MEDIA_CDROM;
  if (scsi) {
    push(b, "-device");
    push(b, "virtio-scsi-pci,id=scsi0");
  }
  for (size_t i = 0; i < s->n_drives; i++) add_drive(b, in, &s->drives[i], i);
  if (s->seed_iso) {
    blockdev seed = {.node = "seed", .path = s->seed_iso, .format = "raw", .readonly = true};
    add_blockdev(b, in, &seed);
    push(b, "-device");
    push(b, "virtio-blk-pci,drive=seed,id=seed-disk");
  }
}

/* Host folder mounts (vm/mount.c), virtio-9p: QEMU's local backend.
 * mapped-xattr: the guest's owners, modes, device nodes and symlinks are
 * extended attributes and plain files on the host, so nothing the guest
 * makes there is a real symlink, setuid file or device for the host; QEMU
 * 7.2 walks every path without following symlinks (CVE-2016-9602), so
 * neither '..' nor a link leaves the directory. readonly=on: QEMU refuses
 * every write (EROFS), whatever the guest mounts it as. The tag is ours
 * ("qvm" + the index); the path is escaped (commas doubled).
 * virtiofs: a vhost-user-fs device talking to the virtiofsd the shim runs
 * for that mount (vm_virtiofsd_start: its sandbox, not QEMU, enforces
 * what the guest may do there) on mount_sock_dir/qvmN.vfs. vhost-user
 * needs the guest's RAM in shared memory: a memfd backend of -m's size. */
static void add_mounts(argv_builder *b, const vm_argv_input *in) {
  const vm_spec *s = in->spec;
  for (size_t i = 0; i < s->n_mounts; i++) {
    const vm_mount *m = &s->mounts[i];
    if (m->virtiofs) {
      char *dir = in->mount_sock_dir ? vm_qemu_escape(in->mount_sock_dir) : NULL;
      push(b, "-chardev");
      pushf(b, "socket,id=vfs%zu,path=%s/" VM_MOUNT_TAG_PREFIX "%zu" VM_MOUNT_SOCK_SUFFIX, i,
            dir ? dir : "", i);
      push(b, "-device");
      pushf(b, "vhost-user-fs-pci,id=fs%zu,chardev=vfs%zu,tag=" VM_MOUNT_TAG_PREFIX "%zu", i, i, i);
      if (!dir) b->oom = true; /* vm_argv_build refused a missing dir before */
      free(dir);
      continue;
    }
    char *path = vm_qemu_escape(m->host);
    push(b, "-fsdev");
    pushf(b, "local,id=fsdev%zu,path=%s,security_model=mapped-xattr%s", i, path ? path : "",
          m->readonly ? ",readonly=on" : "");
    push(b, "-device");
    pushf(b, "virtio-9p-pci,id=fs%zu,fsdev=fsdev%zu,mount_tag=" VM_MOUNT_TAG_PREFIX "%zu", i, i, i);
    if (!path) b->oom = true;
    free(path);
  }
}

/* QEMU's JSON parser takes only UTF-8 (and no NUL, which a C string has
 * none of): strict UTF-8, without overlong forms or surrogates. */
/* How many continuation bytes follow a lead byte; -1: not a lead byte. */
static int utf8_tail(unsigned char c) {
  if (c < 0x80) return 0;
  if (c >= 0xc2 && c <= 0xdf) return 1;
  if (c >= 0xe0 && c <= 0xef) return 2;
  if (c >= 0xf0 && c <= 0xf4) return 3;
  return -1;
}

static bool utf8_valid(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    int n = utf8_tail(*p);
    if (n < 0) return false;
    unsigned cp = n ? *p & (0x3fu >> n) : *p;
    for (int i = 1; i <= n; i++) {
      if ((p[i] & 0xc0) != 0x80) return false;
      cp = cp << 6 | (p[i] & 0x3fu);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
      return false;
    p += n + 1;
  }
  return true;
}

static int blockdev_inputs_check(const vm_spec *s, qvm_error **err) {
  const char *what = NULL, *path = NULL;
  for (size_t i = 0; i < s->n_drives && !what; i++)
    if (!utf8_valid(s->drives[i].path)) what = "drive", path = s->drives[i].path;
  if (!what && s->image && !utf8_valid(s->image)) what = "disk image", path = s->image;
  if (!what && s->seed_iso && !utf8_valid(s->seed_iso)) what = "seed image", path = s->seed_iso;
  if (s->image && !s->image_format)
    return qvm_error_set(err, QVM_EINVAL,
                         "disk image '%s' has no format: qvm never lets qemu guess one", s->image);
  if (!what) return 0;
  _cleanup_free_ char *shown = qvm_text_for_terminal(path, strlen(path), 0);
  return qvm_error_set(err, QVM_EINVAL,
                       "%s path '%s' is not UTF-8, which qemu's -blockdev options (JSON) need: "
                       "rename it",
                       what, shown ? shown : "?");
}

static void add_user_net(argv_builder *b, const vm_argv_input *in) {
  const vm_spec *s = in->spec;
  qvm_strbuf sb = QVM_STRBUF_INIT;
  qvm_strbuf_puts(&sb, "user,id=net0");
  /* restrict=on: the guest reaches neither the host (10.0.2.2 is the host's
   * loopback) nor any other address; only the hostfwd forwards reach it. */
  if (s->net_restrict) qvm_strbuf_puts(&sb, ",restrict=on");
  if (s->ssh_forward && in->ssh_port)
    qvm_strbuf_printf(&sb, ",hostfwd=tcp:127.0.0.1:%u-:22", (unsigned)in->ssh_port);
  for (size_t i = 0; i < s->n_forwards; i++) {
    const vm_forward *f = &s->forwards[i];
    char *addr = vm_qemu_escape(f->host_addr);
    qvm_strbuf_printf(&sb, ",hostfwd=%s:%s:%u-:%u", f->udp ? "udp" : "tcp", addr ? addr : "",
                      (unsigned)f->host_port, (unsigned)f->guest_port);
    if (!addr) b->oom = true;
    free(addr);
  }
  push(b, "-netdev");
  push_owned(b, qvm_strbuf_steal(&sb));
}

static int add_network(argv_builder *b, const vm_argv_input *in, qvm_error **err) {
  const vm_spec *s = in->spec;
  if (s->net == VM_NET_NONE) return 0;
  if (s->net == VM_NET_USER) {
    add_user_net(b, in);
  } else {
    if (in->tap_fd < 0) return qvm_error_set(err, QVM_EINVAL, "bridge network needs a tap fd");
    push(b, "-netdev");
    pushf(b, "tap,id=net0,fd=%d", in->tap_fd);
  }
  push(b, "-device");
  pushf(b, "virtio-net-pci,netdev=net0,id=nic0,mac=%s", s->mac);
  return 0;
}

/* One virtio-serial bus for the guest agent's port and qvm's readiness port.
 *
 * The agent's (org.qemu.guest_agent.0, where qemu-guest-agent looks) is on a
 * socket QEMU listens on: qvm_vm_ip asks it for addresses.
 *
 * The readiness port (VM_READY_PORT_NAME) is there when the guest runs qvm's
 * seed, which opens it shortly before sshd starts: QEMU then sends
 * VSERPORT_CHANGE {"id": VM_READY_PORT_ID, "open": true}, which the shim
 * writes to events.jsonl and qvm up waits on. Its backend is the null chardev, so no
 * byte the guest writes there is ever read: the open itself is the message. */
static void add_virtio_serial(argv_builder *b, const vm_argv_input *in) {
  bool ready = in->spec->cloud_init;
  if (!in->qga_path && !ready) return;
  push(b, "-device");
  push(b, "virtio-serial-pci,id=vser0");
  if (in->qga_path) {
    char *path = vm_qemu_escape(in->qga_path);
    push(b, "-chardev");
    pushf(b, "socket,id=qga0,path=%s,server=on,wait=off", path ? path : "");
    push(b, "-device");
    push(b, "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0");
    if (!path) b->oom = true;
    free(path);
  }
  if (ready) {
    push(b, "-chardev");
    push(b, "null,id=ready0");
    push(b, "-device");
    push(b, "virtserialport,bus=vser0.0,chardev=ready0,id=" VM_READY_PORT_ID
            ",name=" VM_READY_PORT_NAME);
  }
}

/* "UID:GID", both decimal: QEMU would look a name up in its own passwd. */
static bool runas_valid(const char *s) {
  size_t uid = strspn(s, "0123456789");
  size_t gid = s[uid] == ':' ? strspn(s + uid + 1, "0123456789") : 0;
  return uid > 0 && uid <= 10 && gid > 0 && gid <= 10 && s[uid + 1 + gid] == '\0';
}

int vm_argv_build(vm_argv **out, const vm_argv_input *in, qvm_error **err) {
  if (!in->spec || !in->qemu)
    return qvm_error_set(err, QVM_EINVAL, "argv builder needs a spec and a binary");
  if (in->runas && !runas_valid(in->runas))
    return qvm_error_set(err, QVM_EINVAL, "qemu user '%.40s' is not UID:GID", in->runas);
  for (size_t i = 0; i < in->spec->n_drives; i++)
    if (!in->spec->drives[i].format)
      return qvm_error_set(err, QVM_EINVAL,
                           "drive '%s' has no format: qvm never lets qemu guess one",
                           in->spec->drives[i].path);
  if (vm_mounts_virtiofs(in->spec) && (!in->mount_sock_dir || !in->mount_sock_dir[0]))
    return qvm_error_set(err, QVM_EINVAL, "virtiofs mounts need a directory for their sockets");
  int r = blockdev_inputs_check(in->spec, err);
  if (r < 0) return r;
  _cleanup_(vm_argv_freep) vm_argv *a = calloc(1, sizeof *a);
  if (!a) return qvm_error_set_errno(err, ENOMEM, "cannot build the qemu command line");
  argv_builder b = {.a = a};
  push(&b, in->qemu);
  add_machine(&b, in);
  add_monitor_and_serial(&b, in);
  add_firmware(&b, in);
  add_kernel(&b, in->spec);
  add_drives(&b, in);
  r = add_network(&b, in, err);
  if (r < 0) return r;
  add_virtio_serial(&b, in);
  add_mounts(&b, in);
  push(&b, "-device");
  push(&b, "virtio-rng-pci");
  /* A new generation id at every QEMU start: a Linux guest (5.18+) reseeds
   * its RNG when it changes, which a fork resumed from one memory image
   * many times needs (docs/ARCHITECTURE.md, "Forks"). */
  push(&b, "-device");
  push(&b, "vmgenid,id=vmgenid0,guid=auto");
  if (in->incoming_fd > 0) {
    /* A fork: the guest's memory and device state from this file, no boot. */
    push(&b, "-incoming");
    pushf(&b, "fd:%d", in->incoming_fd);
  }
  if (b.oom) return qvm_error_set_errno(err, ENOMEM, "cannot build the qemu command line");
  *out = TAKE_PTR(a);
  return 0;
}

char *vm_argv_format(const vm_argv *a) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  for (size_t i = 0; i < a->argc; i++) {
    const char *arg = a->argv[i];
    bool value_follows = arg[0] == '-' && i + 1 < a->argc && a->argv[i + 1][0] != '-';
    qvm_strbuf_puts(&sb, arg);
    if (value_follows) {
      qvm_strbuf_putc(&sb, ' ');
      qvm_strbuf_puts(&sb, a->argv[++i]);
    }
    qvm_strbuf_putc(&sb, '\n');
  }
  return qvm_strbuf_steal(&sb);
}
