/* SPDX-License-Identifier: MIT */
/* qvm_vm_create: options -> validated spec -> a VM directory, built under a
 * temporary name and renamed into place so nobody sees half a VM. */
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "vm/audit.h"
#include "util/fs.h"
#include "util/time.h"
#include "vm/access.h"
#include "vm/cpu.h"
#include "vm/handle.h"
#include "vm/image.h"
#include "vm/mount.h"
#include "vm/qemu_user.h"
#include "vm/net.h"

#define OVMF_CODE "/usr/share/OVMF/OVMF_CODE_4M.fd"
#define OVMF_VARS "/usr/share/OVMF/OVMF_VARS_4M.fd"

/* An existing regular file, made absolute. */
static int existing_file(char **out, const char *what, const char *path, qvm_error **err) {
  char buf[PATH_MAX];
  struct stat st;
  if (!path || !path[0]) return qvm_error_set(err, QVM_EINVAL, "%s path is empty", what);
  if (!realpath(path, buf) || stat(buf, &st) < 0)
    return qvm_error_set(err, QVM_ENOTFOUND, "%s '%s' not found: check the path", what, path);
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
    return qvm_error_set(err, QVM_EINVAL, "%s '%s' is not a file", what, path);
  if (!(*out = strdup(buf))) return qvm_error_set_errno(err, ENOMEM, "cannot copy a path");
  return 0;
}

static int spec_machine(vm_spec *s, const qvm_vm_create_options *o, qvm_error **err) {
  s->cpus = o->cpus ? o->cpus : VM_DEFAULT_CPUS;
  if (s->cpus > 255)
    return qvm_error_set(err, QVM_EINVAL, "cpus '%u' is out of range: use 1 to 255", o->cpus);
  uint64_t mem = o->memory ? o->memory : VM_DEFAULT_MEMORY;
  if (mem < VM_MEMORY_MIN || mem > VM_MEMORY_MAX)
    return qvm_error_set(err, QVM_EINVAL,
                         "memory size %" PRIu64 " bytes is out of range: use 16M to 16T", mem);
  s->memory_mib = (mem + (1u << 20) - 1) >> 20;
  int r = 0;
  const char *machine = o->machine ? o->machine : VM_DEFAULT_MACHINE;
  if (strcmp(machine, "q35") && strcmp(machine, "pc"))
    return qvm_error_set(err, QVM_EINVAL, "machine '%s' is unknown: use q35 or pc", machine);
  if (!(s->machine = strdup(machine))) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  const char *cpu = o->cpu ? o->cpu : VM_CPU_AUTO;
  if ((r = vm_cpu_check(cpu, err)) < 0) return r;
  if (!(s->cpu = strdup(cpu))) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  if ((r = vm_accel_parse(&s->accel, o->accel, err)) < 0) return r;
  if ((r = vm_firmware_parse(&s->firmware, o->firmware, err)) < 0) return r;
  if (s->firmware == VM_FIRMWARE_UEFI) {
    if (access(OVMF_CODE, R_OK) < 0 || access(OVMF_VARS, R_OK) < 0)
      return qvm_error_set(err, QVM_ENOTFOUND,
                           "uefi firmware '%s' not found: install the ovmf package", OVMF_CODE);
    s->firmware_code = strdup(OVMF_CODE);
    s->firmware_vars = strdup("OVMF_VARS.fd");
  }
  return 0;
}

static int spec_boot(vm_spec *s, const qvm_vm_create_options *o, qvm_error **err) {
  int r = 0;
  if (o->kernel) r = existing_file(&s->kernel, "kernel", o->kernel, err);
  if (r >= 0 && o->initrd) {
    if (!o->kernel) return qvm_error_set(err, QVM_EINVAL, "an initrd needs a kernel");
    r = existing_file(&s->initrd, "initrd", o->initrd, err);
  }
  if (r >= 0 && o->append) {
    if (!o->kernel)
      return qvm_error_set(err, QVM_EINVAL, "a kernel command line (append) needs a kernel");
    if (!(s->append = strdup(o->append))) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  }
  if (r >= 0 && o->seed_iso) r = existing_file(&s->seed_iso, "seed image", o->seed_iso, err);
  return r;
}

static int spec_network(vm_spec *s, const qvm_vm_create_options *o, qvm_error **err) {
  int r = vm_net_spec_fill(s, &o->net, err);
  if (r < 0) return r;
  s->ssh_forward = s->net == VM_NET_USER;
  if (o->n_publish && s->net != VM_NET_USER)
    return qvm_error_set(err, QVM_EINVAL, "published ports need user-mode networking");
  if (o->n_publish > VM_FORWARDS_MAX)
    return qvm_error_set(err, QVM_EINVAL, "too many published ports: at most %d", VM_FORWARDS_MAX);
  for (size_t i = 0; i < o->n_publish; i++) {
    vm_forward f;
    if ((r = vm_forward_from_publish(&f, &o->publish[i], err)) < 0) return r;
    if ((r = vm_spec_add_forward(s, &f, err)) < 0) return r;
  }
  return 0;
}

/* --drive: the format given, or detected once now and recorded. */
static int add_user_drive(vm_spec *s, const qvm_vm_drive *d, bool allow_backing, qvm_error **err) {
  _cleanup_free_ char *abs = NULL;
  vm_image_info info = {0};
  int r = existing_file(&abs, "drive", d->path, err);
  if (r >= 0 && d->format && !vm_format_name_valid(d->format))
    r = qvm_error_set(err, QVM_EINVAL, "drive format '%.40s' is invalid", d->format);
  if (r >= 0 && d->format) r = vm_image_format_check("drive", d->path, d->format, err);
  if (r >= 0) r = vm_image_check(&info, "drive", abs, d->format, allow_backing, d->path, err);
  if (r >= 0) r = vm_image_drive_check(abs, info.format, d->readonly, err);
  if (r >= 0) r = vm_spec_add_drive(s, abs, info.format, d->readonly, VM_MEDIA_DISK, err);
  vm_image_info_clear(&info);
  return r;
}

static int spec_media(vm_spec *s, const qvm_vm_create_options *o, qvm_error **err) {
  /* vm.json holds at most 64 drives, the boot disk among them. */
  if (o->n_drives > 63 || o->n_cdroms > 63 || o->n_drives + o->n_cdroms > 63)
    return qvm_error_set(err, QVM_EINVAL, "too many drives and cdroms: at most 63 in all");
  for (size_t i = 0; i < o->n_drives; i++) {
    int r = add_user_drive(s, &o->drives[i], o->allow_backing, err);
    if (r < 0) return r;
  }
  for (size_t i = 0; i < o->n_cdroms; i++) {
    _cleanup_free_ char *abs = NULL;
    int r = existing_file(&abs, "cdrom image", o->cdroms[i], err);
    if (r >= 0) r = vm_spec_add_drive(s, abs, "raw", true, VM_MEDIA_CDROM, err);
    if (r < 0) return r;
  }
  return 0;
}

/* --image names a file when it has a '/' or starts with '.'; anything else
 * goes through qvm_image_resolve (a store name, a digest, an alias or a URL,
 * and only then a file of that name in the current directory). */
static bool vm_image_ref_is_path(const char *ref) {
  if (strstr(ref, "://") || !strncmp(ref, "sha256:", 7)) return false;
  return strchr(ref, '/') || ref[0] == '.';
}

/* --image from the store (pulled first if it is an alias or URL that is not
 * there yet): the format recorded at import is the one QEMU gets. */
static int spec_store_image(vm_spec *s, uint64_t *out_size, const qvm_vm_create_options *o,
                            char **path, char **format, qvm_error **err) {
  vm_image_info info = {0};
  int r;
  if (o->image_format && strcmp(o->image_format, *format))
    return qvm_error_set(err, QVM_EINVAL,
                         "image '%s' is %s, not %s (the format recorded at import)", o->image,
                         *format, o->image_format);
  r = vm_image_check(&info, "disk image", *path, *format, o->allow_backing, NULL, err);
  if (r < 0) {
    vm_image_info_clear(&info);
    return r;
  }
  s->image = TAKE_PTR(*path);
  s->image_format = TAKE_PTR(*format);
  *out_size = info.size;
  vm_image_info_clear(&info);
  return vm_spec_add_drive(s, "disk.qcow2", "qcow2", false, VM_MEDIA_DISK, err);
}

/* --image: its format (given, or detected once now) goes into the spec, and
 * *out_size gets its virtual size. */
static int spec_image(vm_spec *s, uint64_t *out_size, const qvm_vm_create_options *o,
                      qvm_error **err) {
  vm_image_info info = {0};
  if (o->image_format && !vm_image_format_allowed(o->image_format))
    return vm_image_format_check("disk image", o->image, o->image_format, err);
  _cleanup_free_ char *path = NULL, *format = NULL;
  const char *file = o->image;
  if (!vm_image_ref_is_path(o->image)) {
    int r = qvm_image_resolve(&path, &format, o->image, o->image_pull, err);
    if (r < 0) return r;
    if (format) return spec_store_image(s, out_size, o, &path, &format, err);
    file = path; /* a file of that name */
  }
  int r = existing_file(&s->image, "disk image", file, err);
  if (r >= 0)
    r = vm_image_check(&info, "disk image", s->image, o->image_format, o->allow_backing, NULL, err);
  if (r >= 0) r = vm_image_format_check("disk image", s->image, info.format, err);
  /* Detected raw: a text file or an archive is raw to qemu-img too; not a
   * question when the vm boots from a cdrom (an installer) or a kernel. */
  if (r >= 0 && !o->image_format && !strcmp(info.format, "raw") && !o->n_cdroms && !o->kernel)
    r = vm_image_raw_looks_like_disk(s->image, err);
  if (r < 0) {
    vm_image_info_clear(&info);
    return r;
  }
  s->image_format = TAKE_PTR(info.format);
  *out_size = info.size;
  vm_image_info_clear(&info);
  return vm_spec_add_drive(s, "disk.qcow2", "qcow2", false, VM_MEDIA_DISK, err);
}

/* What each start checks, now: a directory QEMU's user cannot reach is
 * named before the first boot, not by a guest that finds it empty. */
static int mounts_reachable(const vm_spec *s, qvm_error **err) {
  _cleanup_free_ char *runas = NULL;
  int r = vm_qemu_user_runas(&runas, err);
  return r < 0 ? r : vm_mounts_verify(s, runas, err);
}

static int spec_from_options(vm_spec **out, const char *name, const qvm_vm_create_options *o,
                             uint64_t *out_image_size, qvm_error **err) {
  _cleanup_(vm_spec_freep) vm_spec *s = calloc(1, sizeof *s);
  if (!s || !(s->name = strdup(name))) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  int r = vm_uuid_generate(s->uuid, err);
  vm_mac_from_uuid(s->mac, s->uuid);
  if (r >= 0) r = spec_machine(s, o, err);
  s->allow_backing = o->allow_backing;
  if (r >= 0 && o->image_format && !o->image)
    r = qvm_error_set(err, QVM_EINVAL, "an image format needs an image");
  if (r >= 0 && o->image) r = spec_image(s, out_image_size, o, err);
  if (r >= 0 && !o->image && o->disk)
    r = vm_spec_add_drive(s, "disk.qcow2", "qcow2", false, VM_MEDIA_DISK, err);
  if (r >= 0) r = spec_boot(s, o, err);
  if (r >= 0) r = spec_media(s, o, err);
  if (r >= 0) r = spec_network(s, o, err);
  if (r >= 0) r = vm_access_spec(s, o, err);
  if (r >= 0) r = vm_spec_set_tags(s, &o->tags, err);
  if (r >= 0) r = vm_spec_set_mounts(s, o->mounts, o->n_mounts, err);
  if (r >= 0 && s->n_mounts) r = mounts_reachable(s, err);
  if (r >= 0 && !o->image && !o->disk && !o->kernel && !o->n_cdroms && !o->n_drives)
    r = qvm_error_set(err, QVM_EINVAL, "nothing to boot: no image, kernel or cdrom");
  if (r < 0) return r;
  *out = TAKE_PTR(s);
  return 0;
}

static int copy_file(const char *from, const char *to, qvm_error **err) {
  _cleanup_free_ char *data = NULL;
  size_t len = 0;
  int r = qvm_read_file(&data, &len, from, 64u << 20, err);
  return r < 0 ? r : qvm_write_file_atomic(to, data, len, 0600, err);
}

/* An empty file with mode 0600, so that a later O_CREAT elsewhere finds it
 * private whatever the umask. */
static int private_empty(const char *dir, const char *file, qvm_error **err) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  return qvm_write_file_atomic(path, "", 0, 0600, err);
}

static int populate(const char *tmp, vm_spec *s, uint64_t base, uint64_t disk, qvm_error **err) {
  char path[PATH_MAX];
  int r = 0;
  vm_image_grown grown = {0};
  snprintf(path, sizeof path, "%s/disk.qcow2", tmp);
  if (s->image) {
    if (disk && disk < base)
      return qvm_error_set(err, QVM_EINVAL, "disk size is smaller than image '%s' (%llu bytes)",
                           s->image, (unsigned long long)base);
    r = vm_image_overlay(path, s->image, s->image_format, base, disk, err);
    /* Only with qvm's seed, which then turns the guest's growpart off: a
     * guest without cloud-init keeps the partitions its image has. */
    if (r >= 0 && s->cloud_init)
      r = vm_image_grow_partition(&grown, path, s->image, s->image_format, s->allow_backing, base,
                                  disk, err);
  } else if (disk) {
    r = vm_image_blank(path, disk, err);
  }
  if (r >= 0 && s->firmware == VM_FIRMWARE_UEFI) {
    snprintf(path, sizeof path, "%s/%s", tmp, s->firmware_vars);
    r = copy_file(OVMF_VARS, path, err);
  }
  s->grow_partition = grown.grown;
  if (r >= 0) r = vm_access_populate(tmp, s, grown.grown, err);
  if (r >= 0) r = private_empty(tmp, "lock", err);
  if (r >= 0) r = private_empty(tmp, "events.jsonl", err);
  if (r < 0) return r;
  vm_record rec = {.schema_read = VM_RECORD_SCHEMA, .spec = (vm_spec *)s};
  qvm_format_rfc3339(rec.created_at, qvm_realtime_us());
  snprintf(path, sizeof path, "%s/vm.json", tmp);
  return vm_record_write(path, &rec, err);
}

int qvm_vm_create(qvm_vm **out, const char *name, const qvm_vm_create_options *opts,
                  qvm_error **err) {
  vm_paths p = {0};
  int r = QVM_OPTIONS_CHECK(opts, qvm_vm_create_options, QVM_VM_CREATE_OPTIONS_VERSION, err);
  if (r == 0) r = vm_paths_init(&p, name, err);
  if (r < 0) return r;
  _cleanup_(vm_spec_freep) vm_spec *spec = NULL;
  _cleanup_free_ char *tmp = NULL;
  uint64_t disk = opts->disk, base = 0;
  r = spec_from_options(&spec, name, opts, &base, err);
  if (r >= 0 && (opts->image || disk)) spec->disk_bytes = disk > base ? disk : base;
  if (r >= 0) r = vm_state_dirs_prepare(err);
  if (r >= 0 && access(p.dir, F_OK) == 0)
    r = qvm_error_set(err, QVM_EEXISTS, "vm '%s' already exists", name);
  if (r >= 0 && (asprintf(&tmp, "%s/.%s.create-XXXXXX", p.vms, name) < 0 || !mkdtemp(tmp)))
    r = qvm_error_set_errno(err, errno, "cannot create a directory in '%s'", p.vms);
  if (r >= 0) r = populate(tmp, spec, base, disk, err);
  if (r >= 0 && rename(tmp, p.dir) < 0)
    r = errno == EEXIST || errno == ENOTEMPTY
            ? qvm_error_set(err, QVM_EEXISTS, "vm '%s' already exists", name)
            : qvm_error_set_errno(err, errno, "cannot create '%s'", p.dir);
  if (r < 0 && tmp && tmp[0]) qvm_rm_rf(tmp, NULL);
  vm_paths_clear(&p);
  if (r < 0) {
    qvm_error_prefix(err, "cannot create vm '%s'", name);
    return r;
  }
  vm_audit_create(name, opts);
  return out ? qvm_vm_open(out, name, err) : 0;
}
