/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_H
#define QVM_VM_H

/*
 * VM lifecycle: create, start (through a per-VM supervisor, the "shim"),
 * stop, kill, remove, list, inspect, and run in the foreground.
 *
 * State lives on disk (see docs/cli.md, "State"): under $QVM_STATE_DIR, else
 * /var/lib/qvm as root, else $XDG_DATA_HOME/qvm (~/.local/share/qvm). Sockets
 * live under $QVM_RUNTIME_DIR, else $XDG_RUNTIME_DIR/qvm, else /run/qvm.
 * Nothing here prints; every function follows include/qvm/error.h.
 *
 * Contract (and include/qvm/error.h for what every header shares):
 * - Ownership: a qvm_vm is the caller's (qvm_vm_free); strings it returns
 *   (name, dir, user, serial log path) are borrowed from it and valid until
 *   the next call on it; char ** results are the caller's (free(), or
 *   qvm_vm_names_free for a list). Options are only read during the call.
 * - Threads: one qvm_vm is used by one thread at a time; different VMs, or
 *   different qvm_vm handles of one VM, may be used in parallel (several
 *   processes too): each VM's lock serializes its lifecycle operations and
 *   waits for a bounded time (QVM_EBUSY names the holder). qvm_vm_run
 *   takes over signals: see include/qvm/error.h.
 * - Errors: QVM_EINVAL (names, sizes, options, an unknown options
 *   version), QVM_ENOTFOUND (no such VM, image, kernel), QVM_EEXISTS (a
 *   taken name; run of a running VM), QVM_ECONFLICT (the VM's state forbids
 *   it), QVM_EBUSY (locked), QVM_ETIMEOUT, QVM_EQMP (QEMU refused or exited
 *   while starting), QVM_EUNAVAIL (no KVM for "kvm", no root for a bridge,
 *   no QEMU), QVM_EPERM and QVM_ESYS (the system), with the classes
 *   include/qvm/error.h lists.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <qvm/error.h>
#include <qvm/export.h>
#include <qvm/image.h>
#include <qvm/ssh.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qvm_vm qvm_vm;

/* Names match [a-z0-9][a-z0-9-]{0,62}. */
#define QVM_VM_NAME_MAX 63
QVM_API bool qvm_vm_name_valid(const char *name);
/* QVM_EINVAL with a message quoting the name and the rule. */
QVM_API int qvm_vm_name_check(const char *name, qvm_error **err);

/* Parses "512M", "1G", "10G", "2048K", "1T", "1073741824" (bytes; an
 * optional "B" or "iB" after the suffix is accepted). Rejects empty, zero,
 * negative, fractional, unknown suffixes and overflow. `what` names the
 * option in the message ("memory", "disk"). */
QVM_API int qvm_vm_size_parse(uint64_t *out, const char *what, const char *text, qvm_error **err);

/* --- typed create options -------------------------------------------------
 * qvm_vm_create takes these structs, never a string syntax. The CLI's
 * syntaxes ("bridge=br0,dhcp=external", "8080:80/udp", "PATH,format=raw",
 * "sudo:file:SRC:DST") have one pure parser each below; the CLI and the
 * scalar forms of qvm.yaml call them, qvm.yaml's mappings fill the structs
 * directly. docs/ARCHITECTURE.md says why they live here. */

typedef enum qvm_vm_net_mode {
  QVM_VM_NET_USER, /* the default: NAT, SSH forwarded to a 127.0.0.1 port */
  QVM_VM_NET_NONE,
  QVM_VM_NET_BRIDGE, /* needs root or CAP_NET_ADMIN */
} qvm_vm_net_mode;

#define QVM_VM_BRIDGE_NAME_MAX 15 /* IFNAMSIZ - 1 */
#define QVM_VM_SUBNET_MAX 18      /* "255.255.255.255/32" */

typedef struct qvm_vm_net {
  qvm_vm_net_mode mode;
  bool restricted; /* user: the guest reaches neither the host nor any address;
                      only forwards reach it */
  char bridge[QVM_VM_BRIDGE_NAME_MAX + 1]; /* bridge: "" is qvm0 */
  bool dhcp_external;                      /* bridge: someone else's DHCP serves it */
  char subnet[QVM_VM_SUBNET_MAX + 1];      /* bridge with qvm's DHCP: the bridge's address
                                              A.B.C.D/N; "" is 10.77.0.1/24 */
  bool nat;                                /* bridge: masquerade the subnet to the uplink */
  /* bridge with qvm's DHCP: the host's nftables cut the VM's tap off from
   * every other bridge port and the host, but for DHCP, ARP, replies of
   * connections the host opened and new connections to allow_egress
   * ("A.B.C.D[/N]:PORT[/tcp|/udp]", at most QVM_VM_EGRESS_MAX). */
  bool isolated;
  const char *const *allow_egress;
  size_t n_allow_egress;
} qvm_vm_net;
#define QVM_VM_EGRESS_MAX 32

/* "user[,restrict]", "none", "bridge[=NAME][,dhcp=external|qvm][,subnet=A.B.C.D/N]";
 * NULL is user. Pure: names and subnets are checked by create. nat is not
 * part of the syntax (--nat) and is left false. */
QVM_API int qvm_vm_net_parse(qvm_vm_net *out, const char *text, qvm_error **err);

typedef enum qvm_vm_proto { QVM_VM_PROTO_TCP, QVM_VM_PROTO_UDP } qvm_vm_proto;

typedef struct qvm_vm_publish {
  char addr[16];                  /* the host address, dotted IPv4; "" is 127.0.0.1 */
  uint16_t host_port, guest_port; /* 1..65535 */
  qvm_vm_proto proto;
} qvm_vm_publish;

/* "[IP:]HOST:GUEST[/tcp|/udp]" */
QVM_API int qvm_vm_publish_parse(qvm_vm_publish *out, const char *text, qvm_error **err);

typedef struct qvm_vm_drive {
  const char *path;   /* a disk image file or block device */
  const char *format; /* NULL: detected once, at create, and recorded */
  bool readonly;
} qvm_vm_drive;

/* "PATH[,format=FMT][,readonly]" (a path may hold commas). out's strings
 * are allocated: free them with qvm_vm_drive_clear. */
QVM_API int qvm_vm_drive_parse(qvm_vm_drive *out, const char *text, qvm_error **err);
QVM_API void qvm_vm_drive_clear(qvm_vm_drive *drive);

typedef enum qvm_vm_step_kind {
  QVM_VM_STEP_SHELL,  /* text: a shell command */
  QVM_VM_STEP_SCRIPT, /* text: a local script, copied and run */
  QVM_VM_STEP_FILE,   /* text: a local file or directory, copied to destination */
} qvm_vm_step_kind;

typedef struct qvm_vm_step {
  qvm_vm_step_kind kind;
  bool sudo;
  const char *text;
  const char *destination; /* file: the path in the guest */
} qvm_vm_step;

/* "[sudo:]shell:CMD", "[sudo:]script:PATH", "[sudo:]file:SRC:DST". out's
 * strings are allocated: free them with qvm_vm_step_clear. */
QVM_API int qvm_vm_step_parse(qvm_vm_step *out, const char *text, qvm_error **err);
QVM_API void qvm_vm_step_clear(qvm_vm_step *step);

/* A host directory shared with the guest over virtio-9p (QEMU's local
 * backend, security_model=mapped-xattr; docs/ARCHITECTURE.md, "Host folder
 * mounts"), mounted by qvm's seed at `guest` at every boot. host must be an
 * existing directory (resolved with realpath at create, which records the
 * result): not /, not qvm's state or runtime dir nor a directory holding
 * either. guest is an absolute path other than /, of [A-Za-z0-9._+@/-],
 * without '.' or '..' components, at most QVM_VM_MOUNT_GUEST_MAX bytes.
 * readonly is enforced by QEMU (readonly=on), not only by the guest. */
#define QVM_VM_MOUNTS_MAX 16
#define QVM_VM_MOUNT_GUEST_MAX 255

/* A mount's transport (docs/ARCHITECTURE.md, "Host folder mounts"). */
typedef enum qvm_vm_mount_transport {
  QVM_VM_MOUNT_DEFAULT = 0, /* $QVM_MOUNT_TRANSPORT, else virtiofs when virtiofsd is installed */
  QVM_VM_MOUNT_9P,
  QVM_VM_MOUNT_VIRTIOFS,
} qvm_vm_mount_transport;

typedef struct qvm_vm_mount {
  const char *host;
  const char *guest;
  bool readonly;
  qvm_vm_mount_transport transport; /* a clone keeps its source's */
} qvm_vm_mount;

/* "HOST:GUEST[:ro|:rw]" (HOST may hold ':'; GUEST may not). Pure: GUEST
 * is checked, HOST only for being non-empty; create checks the directory.
 * out's strings are allocated: free them with qvm_vm_mount_clear. */
QVM_API int qvm_vm_mount_parse(qvm_vm_mount *out, const char *text, qvm_error **err);
QVM_API void qvm_vm_mount_clear(qvm_vm_mount *mount);

/* Labels and an agent id, on every VM (spec "labels", "agent"). A label key
 * matches [a-z0-9._/-]{1,63}; a value is printable ASCII (0x20..0x7e), at
 * most 255 bytes, maybe empty; at most QVM_VM_LABELS_MAX labels, each key
 * once. An agent id matches [A-Za-z0-9._@:-]{1,128}. */
#define QVM_VM_LABELS_MAX 64
#define QVM_VM_LABEL_KEY_MAX 63
#define QVM_VM_LABEL_VALUE_MAX 255
#define QVM_VM_AGENT_MAX 128

typedef struct qvm_vm_label {
  const char *key;
  const char *value;
} qvm_vm_label;

/* "KEY=VALUE", both checked. out's strings are allocated: free them with
 * qvm_vm_label_clear. */
QVM_API int qvm_vm_label_parse(qvm_vm_label *out, const char *text, qvm_error **err);
QVM_API void qvm_vm_label_clear(qvm_vm_label *label);
/* QVM_EINVAL quoting the text and the rule. */
QVM_API int qvm_vm_label_check(const char *key, const char *value, qvm_error **err);
QVM_API int qvm_vm_agent_check(const char *agent, qvm_error **err);

/* What marks a VM beyond its hardware: labels, agent id, and whether it is a
 * sandbox with a deadline (include/qvm/sandbox.h). */
typedef struct qvm_vm_tags {
  const qvm_vm_label *labels; /* n_labels of them */
  size_t n_labels;
  const char *agent;     /* NULL: none */
  bool sandbox;          /* made by qvm_sandbox_create (qvm sandbox destroy takes it) */
  int64_t expires_at_us; /* sandbox: realtime microseconds; its shim removes it then */
  /* sandbox only: every user command (qvm_vm_exec_command, include/qvm/sandbox.h)
   * takes a checkpoint first (create options version 4, clone options version 3) */
  bool checkpoint_each;
} qvm_vm_tags;

/* Every options struct starts with `unsigned version`, which its _INIT macro
 * sets; the library refuses a version it does not know with QVM_EINVAL
 * naming the struct. Start from the _INIT macro, then set members. */

#define QVM_VM_CREATE_OPTIONS_VERSION 6
typedef struct qvm_vm_create_options {
  unsigned version; /* QVM_VM_CREATE_OPTIONS_VERSION */
  /* The base disk image, never written to (a qcow2 overlay is): a path (it
   * has a '/' or names an existing file), or a store name, "sha256:<hex>",
   * a catalog alias or a URL (include/qvm/image.h, qvm_image_resolve: an
   * alias or URL not in the store yet is pulled first, with image_pull). */
  const char *image;
  /* Checksums and progress for a pull on first use; NULL: defaults. */
  const struct qvm_image_pull_options *image_pull;
  /* The image's format ("raw", "qcow2", ...). NULL: detected once, now, with
   * `qemu-img info`, and recorded; QEMU never probes a format at run time. */
  const char *image_format;
  /* Accept an --image or --drive that names another file QEMU would open
   * (a backing file, a qcow2 data file, a vmdk extent). Without it such an
   * image is refused: a guest can write such a header into a raw disk. */
  bool allow_backing;
  uint64_t disk;      /* overlay size in bytes; 0: the image's size */
  uint64_t memory;    /* bytes, 16 MiB to 16 TiB, rounded up to MiB; 0: 1 GiB */
  unsigned cpus;      /* 0: 1 */
  const char *kernel; /* direct kernel boot: then image is optional */
  const char *initrd;
  const char *append;
  const char *firmware;          /* "bios" (NULL) or "uefi" */
  qvm_vm_net net;                /* zero: user */
  const qvm_vm_publish *publish; /* port forwards (user net), n_publish of them */
  size_t n_publish;
  const char *const *cdroms; /* ISO paths, attached read-only */
  size_t n_cdroms;
  const qvm_vm_drive *drives; /* extra disks */
  size_t n_drives;
  const char *accel;    /* "auto" (NULL), "kvm", "tcg" */
  const char *machine;  /* "q35" (NULL) or "pc" */
  const char *seed_iso; /* NoCloud seed, attached as a read-only virtio disk */

  /* Guest access (vm/access.c). Unless no_cloud_init or seed_iso, create
   * generates the VM's client key (id_ed25519) and the guest's ed25519 host
   * key, pins the host key in the VM's known_hosts before the first boot, and
   * builds seed.iso in the VM dir (user, keys, hostname, instance-id = uuid,
   * network-config, the user's parts, the readiness marker). */
  bool no_cloud_init;               /* true: no keys, no seed (only seed_iso or nothing) */
  const char *user;                 /* guest user qvm creates; NULL: "qvm" (passwordless sudo) */
  const char *hostname;             /* NULL: the VM name */
  const char *const *cloud_configs; /* the user's cloud-config files or #! scripts, in order */
  size_t n_cloud_configs;
  const char *const *authorized_keys; /* extra public key files to authorize */
  size_t n_authorized_keys;
  const qvm_vm_step *provision; /* run in order by qvm up / qvm provision */
  size_t n_provision;
  const char *hostkey; /* "pinned" (NULL; "tofu" without a qvm seed) or "tofu" (the image
                          ignores qvm's host key) */
  qvm_vm_tags tags;    /* labels, agent, sandbox deadline (version 3; checkpoint_each 4) */
  /* QEMU's -cpu (version 5): NULL or "auto": qvm chooses at each start
   * (qemu64 under TCG, host under KVM; docs/ARCHITECTURE.md, "CPU model");
   * else MODEL[,+FEATURE|,-FEATURE|,KEY=VALUE]... */
  const char *cpu;
  /* Host directories shared with the guest, at most QVM_VM_MOUNTS_MAX
   * (version 6). */
  const qvm_vm_mount *mounts;
  size_t n_mounts;
} qvm_vm_create_options;

#define QVM_VM_CREATE_OPTIONS_INIT                                                                 \
  { .version = QVM_VM_CREATE_OPTIONS_VERSION }

/* Creates the VM's directory, vm.json and (with an image) its qcow2 overlay.
 * QVM_EEXISTS if the name is taken. out may be NULL. */
QVM_API int qvm_vm_create(qvm_vm **out, const char *name, const qvm_vm_create_options *opts,
                          qvm_error **err);
/* Reads the VM's vm.json once. QVM_ENOTFOUND if there is no such VM. Opening
 * never starts a process and never writes: what the handle says is what
 * vm.json said then, until qvm_vm_refresh or qvm_vm_reconcile (lifecycle
 * operations refresh the handle they were given). */
QVM_API int qvm_vm_open(qvm_vm **out, const char *name, qvm_error **err);
/* Re-reads vm.json into the handle. */
QVM_API int qvm_vm_refresh(qvm_vm *vm, qvm_error **err);
/* Refreshes, then makes vm.json agree with the processes: a VM whose shim
 * died while QEMU kept running gets a new shim that re-attaches to QEMU
 * (this starts a process); a VM whose shim and QEMU are both gone without a
 * record gets an exit record ("lost") and its tap and sockets removed. Does
 * nothing while another operation holds the VM's lock (it reconciles). */
QVM_API int qvm_vm_reconcile(qvm_vm *vm, qvm_error **err);
QVM_API void qvm_vm_free(qvm_vm *vm);
QVM_API const char *qvm_vm_name(const qvm_vm *vm);
/* The agent id (NULL: none) and the value of label `key` (NULL: none), as
 * the handle last read them; borrowed. */
QVM_API const char *qvm_vm_agent(const qvm_vm *vm);
QVM_API const char *qvm_vm_label_value(const qvm_vm *vm, const char *key);
/* Whether the VM has every label given (key and value) and, unless agent is
 * NULL, that agent id. */
QVM_API bool qvm_vm_matches(const qvm_vm *vm, const qvm_vm_label *labels, size_t n_labels,
                            const char *agent);

typedef enum qvm_vm_state {
  QVM_VM_CREATED,  /* never started */
  QVM_VM_STARTING, /* the shim is launching QEMU */
  QVM_VM_RUNNING,
  QVM_VM_STOPPING, /* a graceful stop is under way */
  QVM_VM_STOPPED,  /* last run ended cleanly (guest shutdown, qvm stop/kill) */
  QVM_VM_CRASHED,  /* last run ended otherwise: QEMU error, outside signal, lost */
} qvm_vm_state;

/* The state from vm.json as the handle last read it and the recorded
 * processes as they are now (whether they are alive). Does not re-read
 * vm.json: call qvm_vm_refresh first for news from other processes. */
QVM_API qvm_vm_state qvm_vm_get_state(const qvm_vm *vm);
QVM_API const char *qvm_vm_state_name(qvm_vm_state state);

#define QVM_VM_START_OPTIONS_VERSION 1
typedef struct qvm_vm_start_options {
  unsigned version; /* QVM_VM_START_OPTIONS_VERSION */
  int timeout_ms;   /* until QMP answers; default 60000 */
} qvm_vm_start_options;
#define QVM_VM_START_OPTIONS_INIT                                                                  \
  { .version = QVM_VM_START_OPTIONS_VERSION, .timeout_ms = 60000 }

/* Starts the VM's shim, which starts QEMU, and returns once QMP answered.
 * On failure the message has QEMU's reason and the tail of its log. A running
 * VM is left alone (returns 0). */
QVM_API int qvm_vm_start(qvm_vm *vm, const qvm_vm_start_options *opts, qvm_error **err);

#define QVM_VM_STOP_OPTIONS_VERSION 1
typedef struct qvm_vm_stop_options {
  unsigned version; /* QVM_VM_STOP_OPTIONS_VERSION */
  int timeout_ms;   /* ACPI powerdown grace period, then QMP quit, then SIGKILL */
} qvm_vm_stop_options;
#define QVM_VM_STOP_OPTIONS_INIT                                                                   \
  { .version = QVM_VM_STOP_OPTIONS_VERSION, .timeout_ms = 60000 }

/* Graceful stop; returns once QEMU exited and the exit was recorded. A
 * stopped VM is left alone (returns 0). */
QVM_API int qvm_vm_stop(qvm_vm *vm, const qvm_vm_stop_options *opts, qvm_error **err);
/* SIGKILL to QEMU; recorded as a stop, not a crash. */
QVM_API int qvm_vm_kill(qvm_vm *vm, qvm_error **err);
QVM_API int qvm_vm_restart(qvm_vm *vm, const qvm_vm_stop_options *stop,
                           const qvm_vm_start_options *start, qvm_error **err);
/* Grows the VM's own disk (disk.qcow2) to `bytes`, a whole number of
 * 512-byte sectors, and records it in vm.json (spec.disk_bytes). A stopped
 * VM: `qemu-img resize`, after qvm checked the disk's header. A running one:
 * QMP block_resize on the node "disk", which the guest sees at once (its
 * partitions and file systems are its own to grow). Afterwards
 * qvm_vm_get_state(vm) is the state the VM was resized in (running: online).
 * The same size is a no-op. QVM_EINVAL: a smaller size (data loss; the
 * message names both sizes), a bad size, no disk.qcow2 (a kernel- or
 * cdrom-only VM); QVM_ECONFLICT: starting or stopping; QVM_EQMP: QEMU
 * refused. */
QVM_API int qvm_vm_resize(qvm_vm *vm, uint64_t bytes, qvm_error **err);
/* ---- clone (vm/clone.c) ---------------------------------------------------- */

struct qvm_up_options; /* include/qvm/up.h */
struct qvm_up_result;

typedef enum qvm_vm_clone_then {
  QVM_VM_CLONE_CREATE, /* create DST only */
  QVM_VM_CLONE_START,  /* and start it (start) */
  QVM_VM_CLONE_UP,     /* and bring it up (qvm_vm_up with up, up_result) */
} qvm_vm_clone_then;

#define QVM_VM_CLONE_OPTIONS_VERSION 3
typedef struct qvm_vm_clone_options {
  unsigned version;     /* QVM_VM_CLONE_OPTIONS_VERSION */
  const char *snapshot; /* an internal snapshot of SRC's disk; NULL: its current state */
  qvm_vm_clone_then then;
  const qvm_vm_start_options *start; /* START; NULL: defaults */
  const struct qvm_up_options *up;   /* UP; NULL: defaults */
  struct qvm_up_result *up_result;   /* UP; may be NULL */
  qvm_image_progress_fn *progress;   /* the import's phases (qvm_image_import_vm) */
  void *userdata;
  qvm_vm_tags tags;      /* DST's labels, agent, sandbox deadline; SRC's are not copied (version 2;
                            checkpoint_each 3) */
  const qvm_vm_net *net; /* DST's networking; NULL: SRC's (version 2) */
} qvm_vm_clone_options;
#define QVM_VM_CLONE_OPTIONS_INIT                                                                  \
  { .version = QVM_VM_CLONE_OPTIONS_VERSION }

/* A linked clone: SRC's disk state is imported into the store as an unnamed
 * image (qvm_image_import_vm; SRC keeps running or stays stopped), and DST is
 * created over it with SRC's recorded settings (cpus, memory, machine,
 * accelerator, firmware, kernel, network, user, host-key policy, extra
 * public keys, read-only drives and cdroms, seed image) and a fresh
 * identity: uuid, MAC, client key, pinned host key, instance-id, hostname
 * DST. Not copied: published ports (they would clash), cloud-config files
 * and provision steps (their effect is in the disk). A writable extra drive
 * is refused (both VMs would write it). The image is DST's spec image: it
 * cannot be removed while a clone uses it, and prune removes it after.
 * After a failure nothing is left (no DST, no staged file, no image that
 * only this clone made), except when DST was made and only starting or
 * bringing it up failed: DST then stays for inspection, as with up.
 * *out_json (may be NULL): {"name", "source", "snapshot", "image" (sha256:HEX),
 * "uuid", "mac", "state"}. QVM_ENOTFOUND: SRC or the snapshot unknown;
 * QVM_EEXISTS: DST taken. */
QVM_API int qvm_vm_clone(char **out_json, const char *src, const char *dst,
                         const qvm_vm_clone_options *opts, qvm_error **err);

/* ---- set (vm/set.c) -------------------------------------------------------- */

#define QVM_VM_SET_OPTIONS_VERSION 2
typedef struct qvm_vm_set_options {
  unsigned version; /* QVM_VM_SET_OPTIONS_VERSION */
  unsigned cpus;    /* 1..255; 0: unchanged */
  uint64_t memory;  /* bytes, 16M..16T (rounded up to MiB); 0: unchanged */
  const char *cpu;  /* the CPU model, as qvm_vm_create_options.cpu; NULL: unchanged (version 2) */
  /* User net: forwards to add (a host address, port and protocol not yet
   * forwarded) and to remove (matched on host address, port and protocol;
   * guest_port 0 matches any), at most 64 in all (version 2). */
  const qvm_vm_publish *publish;
  size_t n_publish;
  const qvm_vm_publish *unpublish;
  size_t n_unpublish;
} qvm_vm_set_options;
#define QVM_VM_SET_OPTIONS_INIT                                                                    \
  { .version = QVM_VM_SET_OPTIONS_VERSION }

/* Changes the VM's recorded cpus, memory and CPU model; QEMU gets them at
 * the VM's next start (a running VM keeps what it has until then).
 * *out_json (may be NULL): {"name", "changes": {"cpus": [was, now],
 * "memory_mib": [was, now], "cpu": [was, now], "ports": [[was...],
 * [now...]]}, "running": bool, "ram_snapshots": N} (a snapshot with RAM
 * taken with other memory or another CPU model cannot be restored); ports
 * as "ADDR:HOST:GUEST/PROTO". QVM_EEXISTS: a published host port is taken
 * by another forward of the VM; QVM_ENOTFOUND: an unpublished one is not
 * there. QVM_EINVAL: nothing to change or out of
 * range; QVM_ECONFLICT: the VM is starting or stopping. */
QVM_API int qvm_vm_set(char **out_json, qvm_vm *vm, const qvm_vm_set_options *opts,
                       qvm_error **err);

/* ---- fork (vm/fork.c) ------------------------------------------------------ */

#define QVM_VM_FORK_MAX 64
#define QVM_VM_FORK_OPTIONS_VERSION 1
typedef struct qvm_vm_fork_options {
  unsigned version;                /* QVM_VM_FORK_OPTIONS_VERSION */
  unsigned count;                  /* 1..QVM_VM_FORK_MAX; 0: 1 */
  const char *prefix;              /* forks are PREFIX-1..PREFIX-N; NULL: SRC's name */
  bool no_wait;                    /* return once each fork runs, without an SSH login */
  int timeout_ms;                  /* per fork: start, clock, SSH; 0: 60000 */
  qvm_image_progress_fn *progress; /* phases: pause, save, import's, create, start */
  void *userdata;
} qvm_vm_fork_options;
#define QVM_VM_FORK_OPTIONS_INIT                                                                   \
  { .version = QVM_VM_FORK_OPTIONS_VERSION, .count = 1 }

/* N forks of running SRC, resumed from its memory and device state without
 * booting (docs/ARCHITECTURE.md, "Forks"). SRC is paused for a moment: its
 * disk gets a temporary internal snapshot and QEMU saves RAM and devices to
 * a file; then it runs on. The snapshot becomes an unnamed store image (as
 * for a clone), each fork an overlay on it, and each fork's QEMU loads the
 * saved state (-incoming), its clock set from the host (guest agent).
 * A fork keeps the guest's identity: MAC, addresses, hostname, host key
 * (pinned for it under its own name), SRC's client key, instance-id, and
 * every process; each has its own user-mode network (its own SSH port) and
 * its own disk. Needs user or no networking (bridged forks would clash on
 * one MAC and IP: QVM_EINVAL, class "BridgeNetwork") and a SRC started with
 * a generation id device (every VM this qvm starts; else QVM_EINVAL, class
 * "NoVmGenId": restart SRC). After a failure nothing is left: no fork, no
 * state file, no image only this call made, and SRC runs as before.
 * *out_json (may be NULL): {"source", "image", "paused_ms", "state_bytes",
 * "forks": [{"name", "uuid", "ssh_port", "resumed_ms", "clock_ms", "ready_ms",
 * "clock"}]}: milliseconds since the fork's start began until it ran, until
 * its guest agent had set the clock (asked right after it ran, answered
 * while the SSH login goes on), and until the SSH login was done (with
 * no_wait: as resumed_ms)
 * QVM_ECONFLICT: SRC not running (class "VmNotRunning"); QVM_EEXISTS: a
 * fork's name is taken. */
QVM_API int qvm_vm_fork(char **out_json, const char *src, const qvm_vm_fork_options *opts,
                        qvm_error **err);

/* Removes everything the VM has: processes (with force), sockets, files,
 * lock. Without force a running VM gives QVM_ECONFLICT (class "VmRunning"). */
QVM_API int qvm_vm_remove(const char *name, bool force, qvm_error **err);

/* Sorted VM names; free with qvm_vm_names_free. */
QVM_API int qvm_vm_list(char ***out, size_t *out_n, qvm_error **err);
QVM_API void qvm_vm_names_free(char **names, size_t n);

/* The VM's spec and state as JSON text, one object (*out_json is the
 * caller's; free()), from vm.json as the handle last read it (see
 * qvm_vm_refresh) and the processes as they are now; docs/vm-json.md:
 * {"name","uuid","state","cpus","memory_mib","accelerator","machine","firmware",
 *  "disks":[{"path","format","readonly","media"}],"network":{...},
 *  "pid","shim_pid","started_at","uptime_s","last_exit":{...},"warnings":[...],
 *  "timings":{...}} */
QVM_API int qvm_vm_info(char **out_json, qvm_vm *vm, qvm_error **err);

/* Every VM's qvm_vm_info object in one JSON array (*out_json is the
 * caller's; free()), sorted by name as qvm_vm_list sorts them, each object
 * what qvm_vm_info gives for a handle opened now. A VM that cannot be
 * opened (removed meanwhile, or a vm.json that does not parse) is left out;
 * a sandbox past its deadline is removed as qvm_vm_list removes it. For
 * callers that list often: the info of a VM whose answer only vm.json can
 * change (no recorded process alive, not a sandbox) is kept in this process
 * and used again while a stat() of vm.json finds the same dev, inode, size,
 * mtime and ctime, so a listing costs a stat() per such VM rather than a
 * read and parse. Thread-safe. */
QVM_API int qvm_vm_list_info(char **out_json, qvm_error **err);

/* Serial log path (borrowed) and the console socket (a connected fd). */
QVM_API const char *qvm_vm_serial_log_path(const qvm_vm *vm);
QVM_API int qvm_vm_console_connect(int *out, qvm_vm *vm, qvm_error **err);
/* Copies serial.log to fd; with QVM_VM_LOGS_FOLLOW, keeps copying new output
 * (inotify) until the VM stops. The guest writes that log: unless
 * QVM_VM_LOGS_RAW, it is neutralized for a terminal (qvm_text_for_terminal,
 * line ends kept, CR LF as LF); RAW copies the bytes exactly. */
enum { QVM_VM_LOGS_FOLLOW = 1 << 0, QVM_VM_LOGS_RAW = 1 << 1 };
QVM_API int qvm_vm_logs(qvm_vm *vm, int fd, unsigned flags, qvm_error **err);

/* The guest's IPv4 address on a bridge, and where it came from (*out_source:
 * "qvm-dhcp" qvm's DHCP server sent the ACK, "dhcp-watch" the watcher saw an
 * external server's ACK, "neighbour" the host's neighbour table, "guest-agent"
 * the QEMU guest agent). Both are the caller's to free; out_source may be
 * NULL. timeout_ms 0 answers now, -1 waits forever; the wait is
 * event-driven (inotify on events.jsonl, netlink, QEMU's pidfd).
 * QVM_ETIMEOUT names what was waited for; QVM_ENOTFOUND if the VM is not
 * running or stops while waiting (class "VmNotRunning"); QVM_EINVAL for
 * user networking (class "UserNetwork": the guest is reached at
 * 127.0.0.1:<ssh_port>) or none ("NoNetwork"). */
QVM_API int qvm_vm_ip(char **out_ip, char **out_source, qvm_vm *vm, int timeout_ms,
                      qvm_error **err);

/* ---- guest access (vm/access.c) --------------------------------------------- */

/* Files in the VM's directory (qvm_vm_dir()). */
/* one JSON line per exec/ssh/provision command; the host-wide log that outlives
 * the VM is include/qvm/audit.h's */
#define QVM_VM_AUDIT_LOG "audit.jsonl"
#define QVM_VM_PROVISION_LOG "provision.log"

/* The VM's state directory (borrowed). */
QVM_API const char *qvm_vm_dir(const qvm_vm *vm);
/* The guest user qvm logs in as ("qvm" by default; "root" for a VM created
 * without qvm's cloud-init and without --user). Borrowed. */
QVM_API const char *qvm_vm_user(const qvm_vm *vm);

#define QVM_VM_SSH_OPTIONS_VERSION 1
typedef struct qvm_vm_ssh_options {
  unsigned version;     /* QVM_VM_SSH_OPTIONS_VERSION */
  int timeout_ms;       /* connect+auth overall; 0: 30000 */
  bool repin;           /* accept and pin a changed host key */
  const char *identity; /* NULL: the VM's own id_ed25519 */
  bool use_agent;
  const char *user; /* NULL: qvm_vm_user() */
} qvm_vm_ssh_options;
#define QVM_VM_SSH_OPTIONS_INIT                                                                    \
  { .version = QVM_VM_SSH_OPTIONS_VERSION }

/* Fills opts for the VM: host/port from the runtime (user net:
 * 127.0.0.1:ssh_port; bridge: qvm_vm_ip), user, the VM's known_hosts (alias =
 * VM name), host-key policy ("pinned" or "tofu" from the spec), the VM's key.
 * Strings are borrowed from vm (valid until the next call on vm). The VM must
 * be running: QVM_ECONFLICT (class "VmNotRunning") otherwise. */
QVM_API int qvm_vm_ssh_target(qvm_ssh_options *out, qvm_vm *vm, int timeout_ms, qvm_error **err);
/* qvm_vm_ssh_target + qvm_ssh_connect. A changed host key is QVM_EAUTH
 * (class HostKeyMismatch) naming the VM with both fingerprints; opts->repin
 * is the only way past it. opts may be NULL. */
QVM_API int qvm_vm_ssh_connect(qvm_ssh **out, qvm_vm *vm, const qvm_vm_ssh_options *opts,
                               qvm_error **err);
/* Runs the VM's recorded provision steps; output to on_output and
 * provision.log, commands to audit.jsonl; *out_failed = failing step
 * (1-based) or 0. No steps: returns 0 at once. */
QVM_API int qvm_vm_provision(size_t *out_failed, qvm_vm *vm, qvm_ssh *ssh,
                             qvm_ssh_output_fn on_output, void *ctx, qvm_error **err);
/* Number of recorded provision steps. */
QVM_API size_t qvm_vm_provision_count(const qvm_vm *vm);

/* ---- guest actions with audit records (vm/access_audit.c) -------------------- */

/* qvm_ssh_exec on ssh (connected to vm), with an "exec-start" record in the
 * audit log (include/qvm/audit.h) before it (argv or the command) and an
 * "exec" record after it: argv, exit, signal, duration, and the byte count
 * and sha256 of stdout and stderr, never the output. */
QVM_API int qvm_vm_exec(qvm_ssh_exec_result *out, qvm_vm *vm, qvm_ssh *ssh,
                        const qvm_ssh_exec_options *opts, qvm_error **err);
/* The same for an interactive session (qvm ssh): an "ssh-open" record
 * before, an "ssh-close" record with the outcome after. */
QVM_API int qvm_vm_shell(qvm_ssh_exec_result *out, qvm_vm *vm, qvm_ssh *ssh,
                         const qvm_ssh_exec_options *opts, qvm_error **err);
/* qvm_ssh_upload / qvm_ssh_download plus one "cp" record: direction, the
 * local path (absolute) and the remote one, bytes copied, and the sha256 of
 * the local file (null for a directory). */
QVM_API int qvm_vm_upload(qvm_vm *vm, qvm_ssh *ssh, const char *local, const char *remote,
                          const qvm_ssh_copy_options *opts, qvm_error **err);
QVM_API int qvm_vm_download(qvm_vm *vm, qvm_ssh *ssh, const char *remote, const char *local,
                            const qvm_ssh_copy_options *opts, qvm_error **err);

/* ---- events (vm/events_read.c) --------------------------------------------- */

/* The VM's event log in its directory: one JSON object per line, appended
 * by its shim (QEMU's QMP events, the shim's "qvm-*" events such as
 * "qvm-exit" when QEMU has exited, DHCP events), each with "event" (its
 * name) and "time" (RFC 3339). A line is at most QVM_VM_EVENT_LINE_MAX
 * bytes. Past its size cap the shim renames it to events.jsonl.1 (one
 * generation kept) and starts a new one. docs/shim-protocol.md. */
#define QVM_VM_EVENTS_LOG "events.jsonl"
#define QVM_VM_EVENT_LINE_MAX (64u << 10)
/* Lines handed out by one qvm_vm_events_read at most. */
#define QVM_VM_EVENTS_READ_MAX 1024

/* A position in the event log: the file (its inode; 0 before the first
 * read) and the byte offset of the next line in it. Plain data: a caller
 * may keep it and resume from it later (qvmd's Last-Event-ID). */
typedef struct qvm_vm_events_cursor {
  uint64_t file;
  uint64_t offset;
} qvm_vm_events_cursor;

/* Called once per complete line (without its '\n'; not NUL-terminated),
 * with the cursor already past that line. Return 0 to go on; anything else
 * stops the read, and qvm_vm_events_read returns it. */
typedef int (*qvm_vm_event_fn)(void *ctx, const char *line, size_t len,
                               const qvm_vm_events_cursor *next);

/* Hands the lines after *cursor to fn, oldest first, and advances *cursor
 * (at most QVM_VM_EVENTS_READ_MAX lines per call: call again while it
 * returns a positive count). The lines are the shim's but may hold
 * guest-derived strings: parse each one and skip what does not parse.
 * Rotation: when the log is a new file, the rest of the cursor's file is
 * read from events.jsonl.1 first (if it is still there), then the new one
 * from its start. A line that is not complete yet is left for the next
 * call; a line over QVM_VM_EVENT_LINE_MAX is skipped (if it has no end yet,
 * the cursor goes past what there is of it, and its rest comes later as a
 * fragment that does not parse). No log yet: 0 and *cursor unchanged.
 * Returns the number of lines handed out, fn's non-zero return, or a
 * negative QVM_E* (QVM_ESYS: the log cannot be read). */
QVM_API int qvm_vm_events_read(qvm_vm *vm, qvm_vm_events_cursor *cursor, qvm_vm_event_fn fn,
                               void *ctx, qvm_error **err);
/* The cursor at the log's current end: what a reader that wants only new
 * events starts from. No log yet: {0, 0} (a read then starts at the first
 * line of the log once there is one). */
QVM_API int qvm_vm_events_end(qvm_vm_events_cursor *out, qvm_vm *vm, qvm_error **err);

/* Exit statuses of qvm_vm_run (docs/cli.md, "qvm run"). */
enum {
  QVM_RUN_EXIT_SHUTDOWN = 0, /* the guest shut down cleanly */
  QVM_RUN_EXIT_ERROR = 1,    /* QEMU exited non-zero, or qvm failed */
  QVM_RUN_EXIT_FORCED = 124, /* the guest ignored the stop; quit/killed */
  QVM_RUN_EXIT_SIGNAL = 128, /* + N: QEMU was killed by signal N */
};

/* Runs the shim in the foreground until QEMU exits. SIGTERM/SIGINT start a
 * graceful stop (stop_timeout_ms, then quit, then SIGKILL). *out gets the
 * exit status above. QEMU does not outlive the calling process: a watchdog
 * child (reaped before this returns) ends QEMU if the process dies, even by
 * SIGKILL (SIGTERM, then SIGKILL after 5 s). */
QVM_API int qvm_vm_run(int *out, qvm_vm *vm, int stop_timeout_ms, qvm_error **err);

#ifdef __cplusplus
}
#endif
#endif
