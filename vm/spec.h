/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_SPEC_H
#define QVM_VM_SPEC_H

/*
 * A VM's spec: what `qvm create` was asked for, validated and normalized
 * (absolute paths, sizes in MiB). It is stored in vm.json and turned into a
 * QEMU command line by vm/argv.c.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "net/net.h"
#include "util/cleanup.h"
#include "util/error.h"
#include <qvm/vm.h>

typedef enum vm_accel { VM_ACCEL_AUTO, VM_ACCEL_KVM, VM_ACCEL_TCG } vm_accel;
typedef enum vm_firmware { VM_FIRMWARE_BIOS, VM_FIRMWARE_UEFI } vm_firmware;
typedef enum vm_net_mode { VM_NET_NONE, VM_NET_USER, VM_NET_BRIDGE } vm_net_mode;
typedef enum vm_media { VM_MEDIA_DISK, VM_MEDIA_CDROM } vm_media;

typedef struct vm_drive {
  char *path;   /* absolute, or relative to the VM's directory (its overlay) */
  char *format; /* "qcow2", "raw", ... */
  bool readonly;
  vm_media media;
} vm_drive;

typedef struct vm_forward {
  char *host_addr; /* "127.0.0.1" unless given */
  uint16_t host_port;
  uint16_t guest_port;
  bool udp;
} vm_forward;

/* A provision step ("[sudo:]shell:CMD", "[sudo:]script:PATH",
 * "[sudo:]file:SRC:DST"); vm/access.c. */
typedef enum vm_step_kind { VM_STEP_SHELL, VM_STEP_SCRIPT, VM_STEP_FILE } vm_step_kind;

typedef struct vm_step {
  vm_step_kind kind;
  bool sudo;
  char *text;        /* shell: the command; script, file: the local path */
  char *destination; /* file: the guest path */
} vm_step;

typedef struct vm_label {
  char *key, *value;
} vm_label;

/* A host directory shared over virtio-9p or virtiofs (vm/mount.c); its
 * mount tag is "qvm" + its index. */
typedef struct vm_mount {
  char *host;  /* absolute, resolved at create */
  char *guest; /* absolute guest path */
  bool readonly;
  bool virtiofs; /* vm.json "transport": "virtiofs"; false: "9p" (also when absent) */
} vm_mount;

typedef struct vm_spec {
  char *name;
  char uuid[37];
  char mac[18];
  unsigned cpus;
  uint64_t memory_mib;
  char *machine; /* "q35" or "pc" */
  char *cpu;     /* vm/cpu.h: "auto", "legacy" (NULL: a record without it) or a model */
  vm_accel accel;
  vm_firmware firmware;
  char *firmware_code; /* uefi: read-only OVMF code */
  char *firmware_vars; /* uefi: the VM's own copy, relative to its directory */
  char *kernel;
  char *initrd;
  char *append;
  /* --image: the base under the overlay, its format (the user's, or detected
   * once at create; also pinned in the overlay's header as backing_fmt) and
   * whether the user let images name other files (--allow-backing). */
  char *image;
  char *image_format;
  bool allow_backing;
  /* disk.qcow2's virtual size as qvm last set it (create, qvm resize); 0:
   * not recorded (no disk.qcow2, or a vm created before it was). */
  uint64_t disk_bytes;
  vm_drive *drives; /* boot disk first, then --drive, then --cdrom; each with a format */
  size_t n_drives;
  char *seed_iso;
  vm_net_mode net;
  bool ssh_forward;  /* user net: guest port 22 on a free 127.0.0.1 port */
  bool net_restrict; /* user net: slirp restrict=on, only forwards reach the guest */
  vm_forward *forwards;
  size_t n_forwards;
  char *bridge;         /* bridge net: the bridge's name */
  char *bridge_address; /* qvm's DHCP: the bridge's own address, "10.77.0.1/24" */
  bool dhcp_external;   /* the bridge is served by someone else's DHCP */
  bool nat;             /* masquerade the bridge's subnet to the uplink */
  /* An isolated port (net/isolate.c): "isolated", "allow_egress". */
  bool isolated;
  qvm_net_egress *egress;
  size_t n_egress;
  /* Guest access (vm/access.c): "access" in vm.json. */
  bool cloud_init; /* qvm generated the keys and built seed.iso */
  /* create grew the image's last partition (vm/image_grow.c) and the seed
   * turned the guest's growpart off: each start grows it after a resize. */
  bool grow_partition;
  char *user;           /* login user; NULL: "root" */
  char *hostname;       /* cloud_init only */
  bool hostkey_tofu;    /* "tofu" rather than "pinned" */
  char **cloud_configs; /* absolute paths, as given to create */
  size_t n_cloud_configs;
  char **authorized_keys; /* absolute paths of extra public keys */
  size_t n_authorized_keys;
  vm_step *steps; /* provision steps, local paths absolute */
  size_t n_steps;
  /* Tags (vm/labels.c): "labels", "agent", "sandbox" in vm.json. */
  vm_label *labels; /* sorted by key, keys unique */
  size_t n_labels;
  char *agent;           /* NULL: none */
  bool sandbox;          /* "sandbox" present */
  int64_t expires_at_us; /* sandbox.expires_at (realtime us); 0: none */
  bool checkpoint_each;  /* sandbox.checkpoint_each: a checkpoint before every user command */
  vm_mount *mounts;      /* "mounts" (vm/mount.c) */
  size_t n_mounts;
  /* Not in vm.json: strings qvm_vm_ssh_target() lends out (valid until the
   * spec is re-read). */
  char *lent_host, *lent_known_hosts, *lent_identity;
  char *lent_pem, *lent_cert; /* a sandbox's session key (wiped) and certificate */
  size_t lent_pem_len;
} vm_spec;

void vm_spec_free(vm_spec *spec);
QVM_DEFINE_CLEANUP(vm_spec, vm_spec_free)

const char *vm_accel_name(vm_accel a);
const char *vm_firmware_name(vm_firmware f);
const char *vm_net_mode_name(vm_net_mode m);
int vm_accel_parse(vm_accel *out, const char *text, qvm_error **err);
int vm_firmware_parse(vm_firmware *out, const char *text, qvm_error **err);
int vm_net_mode_parse(vm_net_mode *out, const char *text, qvm_error **err);

/* "[IP:]HOST:GUEST[/tcp|/udp]" */
int vm_forward_parse(vm_forward *out, const char *text, qvm_error **err);
void vm_forward_clear(vm_forward *f);
/* A public qvm_vm_publish checked (IPv4 address or "", ports 1..65535,
 * tcp/udp) and as a forward; out->host_addr points into p or at a literal. */
int vm_forward_from_publish(vm_forward *out, const qvm_vm_publish *p, qvm_error **err);
/* "127.0.0.1:8080:80/tcp" */
void vm_forward_format(char buf[40], const vm_forward *f);
#define VM_FORWARDS_MAX 64
/* A format name QEMU could take: [A-Za-z0-9_-]{1,32}. */
bool vm_format_name_valid(const char *format);
/* "PATH[,format=FMT][,readonly]"; the path is kept as given. */
int vm_drive_parse(vm_drive *out, const char *text, qvm_error **err);
void vm_drive_clear(vm_drive *d);

int vm_spec_add_drive(vm_spec *spec, const char *path, const char *format, bool readonly,
                      vm_media media, qvm_error **err);
int vm_spec_add_forward(vm_spec *spec, const vm_forward *fwd, qvm_error **err);

/* Spec <-> JSON. from_json validates everything: vm.json is a user file. */
struct json_object *vm_spec_to_json(const vm_spec *spec);
int vm_spec_from_json(vm_spec **out, struct json_object *obj, qvm_error **err);

/* Provision steps (vm/access.c). parse is pure: paths are kept as given. */
int vm_step_parse(vm_step *out, const char *text, qvm_error **err);
void vm_step_clear(vm_step *step);
/* "[sudo:]kind:..." back again; NULL on OOM. */
char *vm_step_format(const vm_step *step);
const char *vm_step_kind_name(vm_step_kind kind);
int vm_step_kind_parse(vm_step_kind *out, const char *text, qvm_error **err);
/* Frees the access members of spec (vm_spec_free calls it). */
void vm_spec_access_clear(vm_spec *spec);
/* Frees lent_pem (wiped first) and lent_cert. */
void vm_spec_lent_credentials_clear(vm_spec *spec);
/* The "access" member of vm.json: to and from (validated). */
struct json_object *vm_access_to_json(const vm_spec *spec);
int vm_access_from_json(vm_spec *spec, struct json_object *access, qvm_error **err);

/* Tags (vm/labels.c): copied from create options (checked, sorted), and
 * the JSON members "labels", "agent", "sandbox" (to: added to o; from:
 * validated; absent members are none). */
int vm_spec_set_tags(vm_spec *spec, const qvm_vm_tags *tags, qvm_error **err);
void vm_spec_tags_clear(vm_spec *spec);
void vm_tags_to_json(struct json_object *o, const vm_spec *spec);
int vm_tags_from_json(vm_spec *spec, struct json_object *o, qvm_error **err);
/* For info JSON: "labels" ({} when none), "agent" (null), "sandbox",
 * "expires_at", "expires_at_us" and "expires_in_s" (null unless a sandbox;
 * 0 once passed), "checkpoint_each" (false unless set). */
void vm_tags_info(struct json_object *o, const vm_spec *spec, int64_t now_us);
/* RFC 3339 UTC "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" <-> realtime microseconds. */
int vm_rfc3339_parse(int64_t *out_us, const char *text, qvm_error **err);

/* A random version-4 UUID and the locally administered MAC derived from it. */
int vm_uuid_generate(char out[37], qvm_error **err);
void vm_mac_from_uuid(char out[18], const char *uuid);

#endif
