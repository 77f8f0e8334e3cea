/* SPDX-License-Identifier: MIT */
/* vm_spec <-> JSON. vm.json can be edited by a user, so every field read back
 * is type- and range-checked, and a bad one is named in the error. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "vm/cpu.h"
#include "vm/net.h"
#include "vm/spec.h"

static void put_str(struct json_object *o, const char *key, const char *v) {
  if (v) json_object_object_add(o, key, json_object_new_string(v));
}

static struct json_object *drive_to_json(const vm_drive *d) {
  struct json_object *o = json_object_new_object();
  put_str(o, "path", d->path);
  put_str(o, "format", d->format);
  json_object_object_add(o, "readonly", json_object_new_boolean(d->readonly));
  put_str(o, "media", d->media == VM_MEDIA_CDROM ? "cdrom" : "disk");
  return o;
}

static struct json_object *forward_to_json(const vm_forward *f) {
  struct json_object *o = json_object_new_object();
  put_str(o, "host_addr", f->host_addr);
  json_object_object_add(o, "host_port", json_object_new_int(f->host_port));
  json_object_object_add(o, "guest_port", json_object_new_int(f->guest_port));
  put_str(o, "proto", f->udp ? "udp" : "tcp");
  return o;
}

/* "isolated": {"allow_egress": ["A.B.C.D/N:PORT/proto", ...]} */
static struct json_object *egress_to_json(const vm_spec *s) {
  struct json_object *iso = json_object_new_object(), *a = json_object_new_array();
  for (size_t i = 0; i < s->n_egress; i++) {
    char text[QVM_NET_EGRESS_STR_MAX];
    qvm_net_egress_format(text, &s->egress[i]);
    json_object_array_add(a, json_object_new_string(text));
  }
  json_object_object_add(iso, "allow_egress", a);
  return iso;
}

static struct json_object *network_to_json(const vm_spec *s) {
  struct json_object *net = json_object_new_object();
  put_str(net, "mode", vm_net_mode_name(s->net));
  json_object_object_add(net, "ssh_forward", json_object_new_boolean(s->ssh_forward));
  struct json_object *fwds = json_object_new_array();
  for (size_t i = 0; i < s->n_forwards; i++)
    json_object_array_add(fwds, forward_to_json(&s->forwards[i]));
  json_object_object_add(net, "forwards", fwds);
  put_str(net, "bridge", s->bridge);
  if (s->net == VM_NET_USER)
    json_object_object_add(net, "restrict", json_object_new_boolean(s->net_restrict));
  if (s->net == VM_NET_BRIDGE) {
    put_str(net, "subnet", s->bridge_address);
    put_str(net, "dhcp", s->dhcp_external ? "external" : "qvm");
    json_object_object_add(net, "nat", json_object_new_boolean(s->nat));
    if (s->isolated) json_object_object_add(net, "isolated", egress_to_json(s));
  }
  return net;
}

struct json_object *vm_spec_to_json(const vm_spec *s) {
  struct json_object *o = json_object_new_object();
  put_str(o, "name", s->name);
  put_str(o, "uuid", s->uuid);
  put_str(o, "mac", s->mac);
  json_object_object_add(o, "cpus", json_object_new_int((int)s->cpus));
  json_object_object_add(o, "memory_mib", json_object_new_int64((int64_t)s->memory_mib));
  put_str(o, "machine", s->machine);
  put_str(o, "cpu", s->cpu);
  put_str(o, "accel", vm_accel_name(s->accel));
  put_str(o, "firmware", vm_firmware_name(s->firmware));
  put_str(o, "firmware_code", s->firmware_code);
  put_str(o, "firmware_vars", s->firmware_vars);
  put_str(o, "kernel", s->kernel);
  put_str(o, "initrd", s->initrd);
  put_str(o, "append", s->append);
  put_str(o, "image", s->image);
  put_str(o, "image_format", s->image_format);
  if (s->allow_backing) json_object_object_add(o, "allow_backing", json_object_new_boolean(true));
  struct json_object *drives = json_object_new_array();
  for (size_t i = 0; i < s->n_drives; i++)
    json_object_array_add(drives, drive_to_json(&s->drives[i]));
  json_object_object_add(o, "drives", drives);
  if (s->disk_bytes)
    json_object_object_add(o, "disk_bytes", json_object_new_int64((int64_t)s->disk_bytes));
  put_str(o, "seed_iso", s->seed_iso);
  json_object_object_add(o, "network", network_to_json(s));
  json_object_object_add(o, "access", vm_access_to_json(s));
  vm_tags_to_json(o, s);
  return o;
}

/* Optional string: absent or null is NULL; anything else must be a string
 * without NUL bytes and not longer than max. */
static int get_str(char **out, struct json_object *o, const char *key, size_t max, bool required,
                   qvm_error **err) {
  struct json_object *v = NULL;
  *out = NULL;
  if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
    if (required) return qvm_error_set(err, QVM_EINVAL, "'%s' is missing", key);
    return 0;
  }
  if (!json_object_is_type(v, json_type_string))
    return qvm_error_set(err, QVM_EINVAL, "'%s' is not a string", key);
  const char *s = json_object_get_string(v);
  size_t len = (size_t)json_object_get_string_len(v);
  if (strlen(s) != len || len > max || (required && len == 0))
    return qvm_error_set(err, QVM_EINVAL, "'%s' is empty, too long or holds a NUL byte", key);
  if (!(*out = strdup(s))) return qvm_error_set_errno(err, ENOMEM, "cannot read '%s'", key);
  return 0;
}

static int get_int(int64_t *out, struct json_object *o, const char *key, int64_t min, int64_t max,
                   qvm_error **err) {
  struct json_object *v = NULL;
  if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
    return qvm_error_set(err, QVM_EINVAL, "'%s' is missing or not a number", key);
  int64_t n = json_object_get_int64(v);
  if (n < min || n > max)
    return qvm_error_set(err, QVM_EINVAL, "'%s' is out of range (%lld..%lld)", key, (long long)min,
                         (long long)max);
  *out = n;
  return 0;
}

static bool get_bool(struct json_object *o, const char *key) {
  struct json_object *v = NULL;
  return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean) &&
         json_object_get_boolean(v);
}

#define PATH_LIMIT 4096

static bool uuid_valid(const char *u) {
  if (strlen(u) != 36) return false;
  for (int i = 0; i < 36; i++) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? u[i] != '-' : !isxdigit((unsigned char)u[i])) return false;
  }
  return true;
}

static bool mac_valid(const char *m) {
  if (strlen(m) != 17) return false;
  for (int i = 0; i < 17; i++)
    if (i % 3 == 2 ? m[i] != ':' : !isxdigit((unsigned char)m[i])) return false;
  return true;
}

static int drive_from_json(vm_spec *s, struct json_object *d, qvm_error **err) {
  if (!json_object_is_type(d, json_type_object))
    return qvm_error_set(err, QVM_EINVAL, "a drive is not an object");
  _cleanup_free_ char *path = NULL, *format = NULL, *media = NULL;
  int r = get_str(&path, d, "path", PATH_LIMIT, true, err);
  /* Required: QEMU must never probe a format from a disk's content. */
  if (r >= 0) r = get_str(&format, d, "format", 32, true, err);
  if (r >= 0) r = get_str(&media, d, "media", 16, false, err);
  if (r < 0) return r;
  if (!vm_format_name_valid(format))
    return qvm_error_set(err, QVM_EINVAL, "drive format '%s' is invalid", format);
  bool cdrom = media && !strcmp(media, "cdrom");
  if (media && !cdrom && strcmp(media, "disk"))
    return qvm_error_set(err, QVM_EINVAL, "drive media '%s' is unknown", media);
  return vm_spec_add_drive(s, path, format, get_bool(d, "readonly"),
                           cdrom ? VM_MEDIA_CDROM : VM_MEDIA_DISK, err);
}

static int forward_from_json(vm_spec *s, struct json_object *f, qvm_error **err) {
  if (!json_object_is_type(f, json_type_object))
    return qvm_error_set(err, QVM_EINVAL, "a port forward is not an object");
  _cleanup_free_ char *addr = NULL, *proto = NULL;
  int64_t host = 0, guest = 0;
  int r = get_str(&addr, f, "host_addr", 64, true, err);
  if (r >= 0) r = get_str(&proto, f, "proto", 8, false, err);
  if (r >= 0) r = get_int(&host, f, "host_port", 1, 65535, err);
  if (r >= 0) r = get_int(&guest, f, "guest_port", 1, 65535, err);
  if (r < 0) return r;
  for (const char *p = addr; *p; p++)
    if (!isdigit((unsigned char)*p) && *p != '.')
      return qvm_error_set(err, QVM_EINVAL, "forward address '%s' is invalid", addr);
  vm_forward fwd = {.host_addr = addr,
                    .host_port = (uint16_t)host,
                    .guest_port = (uint16_t)guest,
                    .udp = proto && !strcmp(proto, "udp")};
  return vm_spec_add_forward(s, &fwd, err);
}

static int array_each(struct json_object *o, const char *key, vm_spec *s,
                      int (*fn)(vm_spec *, struct json_object *, qvm_error **), qvm_error **err) {
  struct json_object *a = NULL;
  if (!json_object_object_get_ex(o, key, &a) || json_object_is_type(a, json_type_null)) return 0;
  if (!json_object_is_type(a, json_type_array))
    return qvm_error_set(err, QVM_EINVAL, "'%s' is not an array", key);
  size_t n = json_object_array_length(a);
  if (n > 64) return qvm_error_set(err, QVM_EINVAL, "'%s' has too many entries", key);
  for (size_t i = 0; i < n; i++) {
    int r = fn(s, json_object_array_get_idx(a, i), err);
    if (r < 0) return r;
  }
  return 0;
}

/* "isolated": absent or null (not isolated), or {"allow_egress": [...]}
 * with at most QVM_NET_EGRESS_MAX entries that parse; with qvm's DHCP only
 * (the lease binds the tap's source address). */
static int isolated_from_json(vm_spec *s, struct json_object *net, qvm_error **err) {
  struct json_object *iso = NULL, *a = NULL;
  if (!json_object_object_get_ex(net, "isolated", &iso) || json_object_is_type(iso, json_type_null))
    return 0;
  if (!json_object_is_type(iso, json_type_object))
    return qvm_error_set(err, QVM_EINVAL, "'isolated' is not an object");
  if (s->dhcp_external)
    return qvm_error_set(err, QVM_EINVAL, "'isolated' needs qvm's dhcp, not dhcp=external");
  s->isolated = true;
  if (!json_object_object_get_ex(iso, "allow_egress", &a) || json_object_is_type(a, json_type_null))
    return 0;
  if (!json_object_is_type(a, json_type_array))
    return qvm_error_set(err, QVM_EINVAL, "'allow_egress' is not an array");
  size_t n = json_object_array_length(a);
  if (n > QVM_NET_EGRESS_MAX)
    return qvm_error_set(err, QVM_EINVAL, "'allow_egress' has %zu entries, more than %d", n,
                         QVM_NET_EGRESS_MAX);
  if (n && !(s->egress = calloc(n, sizeof *s->egress)))
    return qvm_error_set_errno(err, ENOMEM, "cannot read 'allow_egress'");
  for (size_t i = 0; i < n; i++) {
    struct json_object *v = json_object_array_get_idx(a, i);
    if (!json_object_is_type(v, json_type_string) ||
        strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v))
      return qvm_error_set(err, QVM_EINVAL, "'allow_egress' entry %zu is not a string", i);
    int r = qvm_net_egress_parse(&s->egress[i], json_object_get_string(v), err);
    if (r < 0) return qvm_error_prefix(err, "'allow_egress' entry %zu", i);
    s->n_egress = i + 1;
  }
  return 0;
}

static int bridge_from_json(vm_spec *s, struct json_object *net, qvm_error **err) {
  _cleanup_free_ char *dhcp = NULL;
  int r = vm_net_bridge_name_check(s->bridge, err);
  if (r >= 0) r = get_str(&s->bridge_address, net, "subnet", 31, false, err);
  if (r >= 0) r = get_str(&dhcp, net, "dhcp", 16, false, err);
  if (r >= 0 && dhcp && strcmp(dhcp, "qvm") && strcmp(dhcp, "external"))
    r = qvm_error_set(err, QVM_EINVAL, "'dhcp' is '%s': use qvm or external", dhcp);
  s->dhcp_external = dhcp && !strcmp(dhcp, "external");
  s->nat = get_bool(net, "nat");
  if (r >= 0 && !s->dhcp_external) r = vm_net_subnet_check(s->bridge_address, err);
  if (r >= 0) r = isolated_from_json(s, net, err);
  return r;
}

static int network_from_json(vm_spec *s, struct json_object *o, qvm_error **err) {
  struct json_object *net = NULL;
  if (!json_object_object_get_ex(o, "network", &net) || !json_object_is_type(net, json_type_object))
    return qvm_error_set(err, QVM_EINVAL, "'network' is missing or not an object");
  _cleanup_free_ char *mode = NULL;
  int r = get_str(&mode, net, "mode", 16, true, err);
  if (r >= 0) r = vm_net_mode_parse(&s->net, mode, err);
  if (r >= 0) r = get_str(&s->bridge, net, "bridge", 15, false, err);
  if (r >= 0) r = array_each(net, "forwards", s, forward_from_json, err);
  s->ssh_forward = get_bool(net, "ssh_forward");
  /* A restrict that is not a boolean is an error, not a silent "off". */
  struct json_object *restrict_v = NULL;
  if (r >= 0 && json_object_object_get_ex(net, "restrict", &restrict_v) &&
      !json_object_is_type(restrict_v, json_type_boolean))
    r = qvm_error_set(err, QVM_EINVAL, "'restrict' is not a boolean");
  s->net_restrict = s->net == VM_NET_USER && get_bool(net, "restrict");
  if (r >= 0 && s->net == VM_NET_BRIDGE) r = bridge_from_json(s, net, err);
  return r;
}

static int scalars_from_json(vm_spec *s, struct json_object *o, qvm_error **err) {
  _cleanup_free_ char *uuid = NULL, *mac = NULL, *accel = NULL, *fw = NULL;
  int64_t cpus = 0, mem = 0;
  int r = get_str(&s->name, o, "name", QVM_VM_NAME_MAX, true, err);
  if (r >= 0) r = qvm_vm_name_check(s->name, err);
  if (r >= 0) r = get_str(&uuid, o, "uuid", 36, true, err);
  if (r >= 0 && !uuid_valid(uuid)) r = qvm_error_set(err, QVM_EINVAL, "uuid '%s' is invalid", uuid);
  if (r >= 0) r = get_str(&mac, o, "mac", 17, true, err);
  if (r >= 0 && !mac_valid(mac)) r = qvm_error_set(err, QVM_EINVAL, "mac '%s' is invalid", mac);
  if (r >= 0) r = get_int(&cpus, o, "cpus", 1, 255, err);
  if (r >= 0) r = get_int(&mem, o, "memory_mib", 16, 16 << 20, err);
  if (r >= 0) r = get_str(&s->machine, o, "machine", 8, true, err);
  if (r >= 0 && strcmp(s->machine, "q35") && strcmp(s->machine, "pc"))
    r = qvm_error_set(err, QVM_EINVAL, "machine '%s' is unknown", s->machine);
  if (r >= 0) r = get_str(&s->cpu, o, "cpu", VM_CPU_MAX_LEN, false, err);
  if (r >= 0 && s->cpu) r = vm_cpu_check(s->cpu, err);
  if (r >= 0) r = get_str(&accel, o, "accel", 8, true, err);
  if (r >= 0) r = vm_accel_parse(&s->accel, accel, err);
  if (r >= 0) r = get_str(&fw, o, "firmware", 8, true, err);
  if (r >= 0) r = vm_firmware_parse(&s->firmware, fw, err);
  if (r < 0) return r;
  memcpy(s->uuid, uuid, 37);
  memcpy(s->mac, mac, 18);
  s->cpus = (unsigned)cpus;
  s->memory_mib = (uint64_t)mem;
  return 0;
}

static int paths_from_json(vm_spec *s, struct json_object *o, qvm_error **err) {
  int r = get_str(&s->firmware_code, o, "firmware_code", PATH_LIMIT, false, err);
  if (r >= 0) r = get_str(&s->firmware_vars, o, "firmware_vars", PATH_LIMIT, false, err);
  if (r >= 0) r = get_str(&s->kernel, o, "kernel", PATH_LIMIT, false, err);
  if (r >= 0) r = get_str(&s->initrd, o, "initrd", PATH_LIMIT, false, err);
  if (r >= 0) r = get_str(&s->append, o, "append", 65536, false, err);
  if (r >= 0) r = get_str(&s->seed_iso, o, "seed_iso", PATH_LIMIT, false, err);
  if (r >= 0) r = get_str(&s->image, o, "image", PATH_LIMIT, false, err);
  if (r >= 0) r = get_str(&s->image_format, o, "image_format", 32, false, err);
  if (r >= 0 && s->image_format && !vm_format_name_valid(s->image_format))
    r = qvm_error_set(err, QVM_EINVAL, "image format '%s' is invalid", s->image_format);
  s->allow_backing = get_bool(o, "allow_backing");
  if (r >= 0 && s->firmware == VM_FIRMWARE_UEFI && (!s->firmware_code || !s->firmware_vars))
    r = qvm_error_set(err, QVM_EINVAL, "uefi firmware paths are missing");
  return r;
}

/* Optional: absent or null is 0 (not recorded). */
static int disk_bytes_from_json(vm_spec *s, struct json_object *o, qvm_error **err) {
  int64_t n = 0;
  struct json_object *v = NULL;
  if (!json_object_object_get_ex(o, "disk_bytes", &v) || json_object_is_type(v, json_type_null))
    return 0;
  int r = get_int(&n, o, "disk_bytes", 1, INT64_MAX, err);
  if (r >= 0) s->disk_bytes = (uint64_t)n;
  return r;
}

int vm_spec_from_json(vm_spec **out, struct json_object *o, qvm_error **err) {
  if (!o || !json_object_is_type(o, json_type_object))
    return qvm_error_set(err, QVM_EINVAL, "spec is not a json object");
  _cleanup_(vm_spec_freep) vm_spec *s = calloc(1, sizeof *s);
  if (!s) return qvm_error_set_errno(err, ENOMEM, "cannot read spec");
  int r = scalars_from_json(s, o, err);
  if (r >= 0) r = paths_from_json(s, o, err);
  if (r >= 0) r = array_each(o, "drives", s, drive_from_json, err);
  if (r >= 0) r = disk_bytes_from_json(s, o, err);
  if (r >= 0) r = network_from_json(s, o, err);
  if (r >= 0) {
    struct json_object *access = NULL;
    json_object_object_get_ex(o, "access", &access);
    r = vm_access_from_json(s, access, err);
  }
  if (r >= 0) r = vm_tags_from_json(s, o, err);
  if (r < 0) {
    qvm_error_prefix(err, "vm spec is invalid");
    return r;
  }
  *out = TAKE_PTR(s);
  return 0;
}
