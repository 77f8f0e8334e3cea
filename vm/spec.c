/* SPDX-License-Identifier: MIT */
#include "vm/spec.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/cleanup.h"

bool qvm_vm_name_valid(const char *name) {
  if (!name || !name[0]) return false;
  size_t len = strlen(name);
  if (len > QVM_VM_NAME_MAX) return false;
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && !(i > 0 && c == '-')) return false;
  }
  return true;
}

int qvm_vm_name_check(const char *name, qvm_error **err) {
  if (qvm_vm_name_valid(name)) return 0;
  if (!name || !name[0]) return qvm_error_set(err, QVM_EINVAL, "vm name is empty");
  char shown[80];
  /* Quote at most a bounded prefix with control bytes replaced. */
  size_t j = 0;
  for (size_t i = 0; name[i] && j < sizeof shown - 4; i++)
    shown[j++] = (unsigned char)name[i] < 0x20 ? '?' : name[i];
  shown[j] = '\0';
  if (name[j]) strcpy(shown + j, "...");
  return qvm_error_set(err, QVM_EINVAL,
                       "vm name '%s' is invalid: use 1 to 63 characters of a-z, 0-9 and '-', "
                       "starting with a letter or digit",
                       shown);
}

static int size_shift(const char *suffix, unsigned *out) {
  static const char units[] = "KMGT";
  if (!suffix[0] || !strcasecmp(suffix, "B")) {
    *out = 0;
    return 0;
  }
  const char *u = strchr(units, toupper((unsigned char)suffix[0]));
  if (!u) return -1;
  const char *rest = suffix + 1;
  if (rest[0] && strcasecmp(rest, "B") && strcasecmp(rest, "iB")) return -1;
  *out = 10u * (unsigned)(u - units + 1);
  return 0;
}

int qvm_vm_size_parse(uint64_t *out, const char *what, const char *text, qvm_error **err) {
  if (!text || !text[0]) return qvm_error_set(err, QVM_EINVAL, "%s size is empty", what);
  const char *p = text;
  if (!isdigit((unsigned char)*p))
    return qvm_error_set(err, QVM_EINVAL,
                         "%s size '%s' is invalid: use a positive whole number with a "
                         "suffix K, M, G or T, such as 512M or 10G",
                         what, text);
  errno = 0;
  char *end = NULL;
  unsigned long long n = strtoull(p, &end, 10);
  unsigned shift = 0;
  if (errno == ERANGE || size_shift(end, &shift) < 0)
    return qvm_error_set(err, QVM_EINVAL,
                         errno == ERANGE ? "%s size '%s' is too large"
                                         : "%s size '%s' is invalid: use a positive whole number "
                                           "with a suffix K, M, G or T, such as 512M or 10G",
                         what, text);
  if (n == 0) return qvm_error_set(err, QVM_EINVAL, "%s size '%s' must be above zero", what, text);
  if (n > (UINT64_MAX >> shift))
    return qvm_error_set(err, QVM_EINVAL, "%s size '%s' is too large", what, text);
  *out = (uint64_t)n << shift;
  return 0;
}

const char *vm_accel_name(vm_accel a) {
  return a == VM_ACCEL_KVM ? "kvm" : a == VM_ACCEL_TCG ? "tcg" : "auto";
}
const char *vm_firmware_name(vm_firmware f) { return f == VM_FIRMWARE_UEFI ? "uefi" : "bios"; }
const char *vm_net_mode_name(vm_net_mode m) {
  return m == VM_NET_USER ? "user" : m == VM_NET_BRIDGE ? "bridge" : "none";
}

int vm_accel_parse(vm_accel *out, const char *text, qvm_error **err) {
  if (!text || !strcmp(text, "auto"))
    *out = VM_ACCEL_AUTO;
  else if (!strcmp(text, "kvm"))
    *out = VM_ACCEL_KVM;
  else if (!strcmp(text, "tcg"))
    *out = VM_ACCEL_TCG;
  else
    return qvm_error_set(err, QVM_EINVAL, "accelerator '%s' is unknown: use kvm, tcg or auto",
                         text);
  return 0;
}

int vm_firmware_parse(vm_firmware *out, const char *text, qvm_error **err) {
  if (!text || !strcmp(text, "bios"))
    *out = VM_FIRMWARE_BIOS;
  else if (!strcmp(text, "uefi"))
    *out = VM_FIRMWARE_UEFI;
  else
    return qvm_error_set(err, QVM_EINVAL, "firmware '%s' is unknown: use bios or uefi", text);
  return 0;
}

int vm_net_mode_parse(vm_net_mode *out, const char *text, qvm_error **err) {
  if (!text || !strcmp(text, "user"))
    *out = VM_NET_USER;
  else if (!strcmp(text, "none"))
    *out = VM_NET_NONE;
  else if (!strcmp(text, "bridge"))
    *out = VM_NET_BRIDGE;
  else
    return qvm_error_set(err, QVM_EINVAL, "network mode '%s' is unknown: use user, bridge or none",
                         text);
  return 0;
}

static int port_parse(uint16_t *out, const char *s, const char *text, qvm_error **err) {
  char *end = NULL;
  errno = 0;
  long v = isdigit((unsigned char)s[0]) ? strtol(s, &end, 10) : -1;
  if (v < 1 || v > 65535 || errno || (end && *end))
    return qvm_error_set(err, QVM_EINVAL, "port forward '%s' has an invalid port '%s'", text, s);
  *out = (uint16_t)v;
  return 0;
}

void vm_forward_clear(vm_forward *f) {
  free(f->host_addr);
  *f = (vm_forward){0};
}

int vm_forward_parse(vm_forward *out, const char *text, qvm_error **err) {
  _cleanup_free_ char *copy = strdup(text ? text : "");
  if (!copy) return qvm_error_set_errno(err, ENOMEM, "cannot parse port forward");
  vm_forward f = {0};
  char *proto = strchr(copy, '/');
  if (proto) {
    *proto++ = '\0';
    if (!strcmp(proto, "udp"))
      f.udp = true;
    else if (strcmp(proto, "tcp"))
      return qvm_error_set(err, QVM_EINVAL, "port forward '%s' has protocol '%s': use tcp or udp",
                           text, proto);
  }
  char *parts[3] = {0};
  size_t n = 0;
  for (char *save = NULL, *tok = strtok_r(copy, ":", &save); tok; tok = strtok_r(NULL, ":", &save))
    if (n < 3)
      parts[n++] = tok;
    else
      return qvm_error_set(err, QVM_EINVAL, "port forward '%s' is invalid", text);
  if (n < 2)
    return qvm_error_set(err, QVM_EINVAL,
                         "port forward '%s' is invalid: use [IP:]HOST:GUEST[/udp], such as 8080:80",
                         text);
  const char *addr = n == 3 ? parts[0] : "127.0.0.1";
  for (const char *p = addr; *p; p++)
    if (!isdigit((unsigned char)*p) && *p != '.')
      return qvm_error_set(err, QVM_EINVAL, "port forward '%s' has an invalid address '%s'", text,
                           addr);
  int r = port_parse(&f.host_port, parts[n - 2], text, err);
  if (r < 0) return r;
  if ((r = port_parse(&f.guest_port, parts[n - 1], text, err)) < 0) return r;
  f.host_addr = strdup(addr);
  if (!f.host_addr) return qvm_error_set_errno(err, ENOMEM, "cannot parse port forward");
  *out = f;
  return 0;
}

void vm_drive_clear(vm_drive *d) {
  free(d->path);
  free(d->format);
  *d = (vm_drive){0};
}

bool vm_format_name_valid(const char *f) {
  if (!f || !f[0] || strlen(f) > 32) return false;
  for (; *f; f++)
    if (!isalnum((unsigned char)*f) && *f != '-' && *f != '_') return false;
  return true;
}

/* Splits on the last options: a path may itself contain commas. */
int vm_drive_parse(vm_drive *out, const char *text, qvm_error **err) {
  _cleanup_free_ char *copy = strdup(text ? text : "");
  if (!copy) return qvm_error_set_errno(err, ENOMEM, "cannot parse drive");
  vm_drive d = {.media = VM_MEDIA_DISK};
  _cleanup_free_ char *format = NULL;
  for (;;) {
    char *comma = strrchr(copy, ',');
    if (!comma) break;
    const char *opt = comma + 1;
    if (!strcmp(opt, "readonly") || !strcmp(opt, "readonly=on"))
      d.readonly = true;
    else if (!strncmp(opt, "format=", 7) && vm_format_name_valid(opt + 7)) {
      free(format);
      if (!(format = strdup(opt + 7))) return qvm_error_set_errno(err, ENOMEM, "cannot parse");
    } else if (!strncmp(opt, "format=", 7))
      return qvm_error_set(err, QVM_EINVAL, "drive '%s' has an invalid format '%s'", text, opt + 7);
    else
      break;
    *comma = '\0';
  }
  if (!copy[0]) return qvm_error_set(err, QVM_EINVAL, "drive '%s' has no path", text);
  d.path = TAKE_PTR(copy);
  d.format = TAKE_PTR(format);
  *out = d;
  return 0;
}

int vm_spec_add_drive(vm_spec *spec, const char *path, const char *format, bool readonly,
                      vm_media media, qvm_error **err) {
  vm_drive *v = reallocarray(spec->drives, spec->n_drives + 1, sizeof *v);
  if (!v) return qvm_error_set_errno(err, ENOMEM, "cannot add drive");
  spec->drives = v;
  vm_drive d = {.path = strdup(path),
                .format = format ? strdup(format) : NULL,
                .readonly = readonly,
                .media = media};
  if (!d.path || (format && !d.format)) {
    vm_drive_clear(&d);
    return qvm_error_set_errno(err, ENOMEM, "cannot add drive");
  }
  spec->drives[spec->n_drives++] = d;
  return 0;
}

int vm_spec_add_forward(vm_spec *spec, const vm_forward *fwd, qvm_error **err) {
  vm_forward *v = reallocarray(spec->forwards, spec->n_forwards + 1, sizeof *v);
  if (!v) return qvm_error_set_errno(err, ENOMEM, "cannot add port forward");
  spec->forwards = v;
  vm_forward f = *fwd;
  f.host_addr = strdup(fwd->host_addr);
  if (!f.host_addr) return qvm_error_set_errno(err, ENOMEM, "cannot add port forward");
  spec->forwards[spec->n_forwards++] = f;
  return 0;
}

void vm_spec_free(vm_spec *spec) {
  if (!spec) return;
  free(spec->name);
  free(spec->machine);
  free(spec->cpu);
  free(spec->firmware_code);
  free(spec->firmware_vars);
  free(spec->kernel);
  free(spec->initrd);
  free(spec->append);
  free(spec->image);
  free(spec->image_format);
  for (size_t i = 0; i < spec->n_drives; i++) vm_drive_clear(&spec->drives[i]);
  free(spec->drives);
  free(spec->seed_iso);
  for (size_t i = 0; i < spec->n_forwards; i++) vm_forward_clear(&spec->forwards[i]);
  free(spec->forwards);
  free(spec->bridge);
  free(spec->bridge_address);
  free(spec->egress);
  vm_spec_access_clear(spec);
  vm_spec_tags_clear(spec);
  free(spec);
}

int vm_uuid_generate(char out[37], qvm_error **err) {
  uint8_t b[16];
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
    return qvm_error_set_errno(err, errno, "cannot generate a uuid");
  b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
  b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
           b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
           b[15]);
  return 0;
}

/* The MAC of a VM on user or no networking: 52:54:00 (QEMU's prefix) + 24
 * bits of a hash of the uuid. Only the guest sees it (each slirp is private),
 * so it need not be unique. A bridge VM's MAC is replaced by
 * vm_net_mac_assign (vm/net.c): 0a: + 40 bits of the uuid, unique on the
 * bridge. */
void vm_mac_from_uuid(char out[18], const char *uuid) {
  unsigned h = 2166136261u;
  for (const char *p = uuid; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
  snprintf(out, 18, "52:54:00:%02x:%02x:%02x", (h >> 16) & 0xff, (h >> 8) & 0xff, h & 0xff);
}
