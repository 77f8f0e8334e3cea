/* SPDX-License-Identifier: MIT */
#ifndef QVM_SEED_H
#define QVM_SEED_H

/*
 * The NoCloud seed: cloud-config / meta-data / network-config rendered with
 * the libyaml emitter, and qvm's own ISO9660 writer (Rock Ridge + Joliet,
 * volume label "cidata"). Pure data -> bytes; nothing here prints or runs a
 * program. See seed/README.md for the formats and the readiness marker.
 *
 * Contract (and include/qvm/error.h for what every header shares):
 * - Ownership: rendered buffers (*out) are the caller's, free(); a
 *   qvm_seed_iso is freed with qvm_seed_iso_free(). Specs and files are
 *   only read, never kept: their strings may go once a call returns
 *   (qvm_seed_iso_add_file keeps the host path's name and reads the file
 *   when the image is written).
 * - Threads: every function is safe from several threads; one qvm_seed_iso
 *   is used by one thread at a time.
 * - Errors: QVM_EINVAL (bad spec, YAML, names, sizes; the message names the
 *   file and line), QVM_ENOTFOUND (a file that does not exist), QVM_ESYS /
 *   QVM_EPERM (reading or writing a file).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <qvm/error.h>
#include <qvm/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 2000-01-01T00:00:00Z: the timestamp of every ISO entry unless the caller
 * gives one (the CLI passes SOURCE_DATE_EPOCH when it is set). */
#define QVM_SEED_EPOCH_DEFAULT INT64_C(946684800)

/* The line cloud-init's final stage writes to the serial console, followed by
 * a space and the instance-id: "qvm-ready: cloud-init-done <instance-id>". */
#define QVM_SEED_READY_MARKER "qvm-ready: cloud-init-done"

/* The virtio-serial port (/dev/virtio-ports/NAME) the seed's last bootcmd
 * opens and closes on every boot: qvm up's signal that sshd comes next. */
#define QVM_SEED_READY_PORT "org.qvm.ready.0"

/* Caps on what is read from user-supplied files. */
#define QVM_SEED_MAX_USER_FILE (4u << 20)

/* ---- the first boot, described ---- */

typedef struct qvm_seed_user {
  const char *name;                       /* required */
  const char *groups;                     /* "sudo,adm" or NULL */
  const char *sudo;                       /* "ALL=(ALL) NOPASSWD:ALL" or NULL */
  const char *shell;                      /* "/bin/bash" or NULL */
  bool lock_passwd;                       /* true: no password login */
  const char *const *ssh_authorized_keys; /* public keys, one line each */
  size_t n_ssh_authorized_keys;
} qvm_seed_user;

/* A pre-generated guest host key, so qvm can pin it before the first boot.
 * type is "ed25519", "ecdsa" or "rsa" (cloud-init's ssh_keys names). */
typedef struct qvm_seed_host_key {
  const char *type;
  const char *private_key; /* OpenSSH PEM text */
  const char *public_key;  /* "ssh-ed25519 AAAA... comment" */
} qvm_seed_host_key;

typedef struct qvm_seed_write_file {
  const char *path;    /* absolute path in the guest */
  const void *content; /* bytes; binary content is sent base64 (encoding: b64) */
  size_t content_len;
  const char *permissions; /* "0644" or NULL */
  const char *owner;       /* "root:root" or NULL */
} qvm_seed_write_file;

typedef struct qvm_seed_network {
  const char *mac;                /* required: "52:54:00:12:34:56" */
  bool dhcp4;                     /* true: DHCP; false: the static address below */
  const char *address;            /* "192.0.2.10/24" */
  const char *gateway;            /* "192.0.2.1" or NULL */
  const char *const *nameservers; /* addresses, may be empty */
  size_t n_nameservers;
} qvm_seed_network;

/* Starts with `unsigned version`, set by QVM_SEED_SPEC_INIT; an unknown
 * version is QVM_EINVAL naming the struct. */
#define QVM_SEED_SPEC_VERSION 2
typedef struct qvm_seed_spec {
  unsigned version;        /* QVM_SEED_SPEC_VERSION */
  const char *instance_id; /* required; qvm derives it from the VM's uuid */
  const char *hostname;    /* required: meta-data local-hostname and cloud-config */
  const char *fqdn;        /* or NULL */
  bool manage_etc_hosts;

  const qvm_seed_user *users;
  size_t n_users;
  /* Keys for the image's default user (top-level ssh_authorized_keys). */
  const char *const *ssh_authorized_keys;
  size_t n_ssh_authorized_keys;
  const qvm_seed_host_key *host_keys;
  size_t n_host_keys;
  bool ssh_pwauth;   /* emitted as given (default false) */
  bool disable_root; /* emitted as given (default true) */

  const char *const *packages;
  size_t n_packages;
  bool package_update;
  const qvm_seed_write_file *write_files;
  size_t n_write_files;
  const char *const *bootcmd; /* shell lines */
  size_t n_bootcmd;
  const char *const *runcmd; /* shell lines */
  size_t n_runcmd;
  /* print QVM_SEED_READY_MARKER at the end, and open QVM_SEED_READY_PORT
   * in bootcmd (default true) */
  bool ready_marker;

  /* The user's own cloud-config (must be a YAML mapping) and shell script,
   * merged as MIME multipart; give bytes (with a name used in messages) or a
   * path (read with a QVM_SEED_MAX_USER_FILE cap). */
  const char *user_config;
  size_t user_config_len;
  const char *user_config_name;
  const char *user_config_path;
  const char *user_script;
  size_t user_script_len;
  const char *user_script_path;

  const qvm_seed_network *network; /* NULL: no network-config file */
  int64_t epoch;                   /* ISO timestamps (seconds since 1970) */

  /* Version 2. The disk's last partition already fills it (qvm grew it on
   * the host): growpart: {mode: "off"}, and the init stage skips the
   * partition tools (resizefs still grows the file system). */
  bool growpart_off;
} qvm_seed_spec;

#define QVM_SEED_SPEC_INIT                                                                         \
  {                                                                                                \
    .version = QVM_SEED_SPEC_VERSION, .disable_root = true, .ready_marker = true,                  \
    .epoch = QVM_SEED_EPOCH_DEFAULT                                                                \
  }

/* Each renders one NoCloud file into a malloc'd, NUL-terminated buffer that
 * the caller frees. */
QVM_API int qvm_seed_render_user_data(char **out, size_t *out_len, const qvm_seed_spec *spec,
                                      qvm_error **err);
QVM_API int qvm_seed_render_meta_data(char **out, size_t *out_len, const qvm_seed_spec *spec,
                                      qvm_error **err);
/* QVM_EINVAL if spec->network is NULL. */
QVM_API int qvm_seed_render_network_config(char **out, size_t *out_len, const qvm_seed_spec *spec,
                                           qvm_error **err);

/* Checks a user's cloud-config: valid YAML, one document, a mapping at the
 * top. Errors name `name` and the line. */
QVM_API int qvm_seed_check_user_config(const char *data, size_t len, const char *name,
                                       qvm_error **err);

/* ---- NoCloud files a user wrote (qvm seed build --user-data ...) ---- */

typedef enum qvm_seed_user_data_kind {
  QVM_SEED_USER_DATA_CLOUD_CONFIG = 0, /* "#cloud-config": checked as YAML */
  QVM_SEED_USER_DATA_SCRIPT,           /* "#!/interpreter": checked shebang */
  QVM_SEED_USER_DATA_MULTIPART,        /* a MIME message: headers, boundary */
  QVM_SEED_USER_DATA_OTHER,            /* another cloud-init "#..." type, or gzip */
} qvm_seed_user_data_kind;

/* Checks a user-data file by its first line: #cloud-config (one YAML
 * document, a mapping: qvm_seed_check_user_config), a #! script (an absolute
 * interpreter, no CR line ends, no NUL), a MIME message (Content-Type, a
 * multipart boundary that occurs and is closed), or another cloud-init type
 * (#include, #cloud-boothook, ...: passed as is). Anything else is QVM_EINVAL:
 * cloud-init would ignore it. Errors read "user-data 'NAME' line N: ...". */
QVM_API int qvm_seed_check_user_data(qvm_seed_user_data_kind *out, const char *data, size_t len,
                                     const char *name, qvm_error **err);
/* meta-data: one YAML document whose top is a mapping. */
QVM_API int qvm_seed_check_meta_data(const char *data, size_t len, const char *name,
                                     qvm_error **err);
/* network-config: a YAML mapping with "version: 1" or "version: 2" at the
 * top or under "network:" (or v1's "config: disabled"). */
QVM_API int qvm_seed_check_network_config(const char *data, size_t len, const char *name,
                                          qvm_error **err);

/* "Build seed.iso from this spec": renders the files and writes the cidata
 * image to path atomically (temp file, fsync, rename), mode 0600: it may
 * hold the guest's private host key. */
QVM_API int qvm_seed_build(const char *path, const qvm_seed_spec *spec, qvm_error **err);

/* ---- the ISO9660 writer ---- */

typedef struct qvm_seed_file {
  const char *name; /* path in the image: "user-data", "dir/file" */
  const void *data;
  size_t len;
} qvm_seed_file;

/* Writes files (in-memory bytes) as a "cidata" image to path, atomically,
 * with exactly `mode` (the umask does not apply: the caller decides; use
 * 0600 when the image holds a secret). */
QVM_API int qvm_seed_write_iso(const char *path, const qvm_seed_file *files, size_t n_files,
                               int64_t epoch, mode_t mode, qvm_error **err);
/* True when a file holds a private key ("...PRIVATE KEY-----", e.g. a host
 * key in cloud-config's ssh_keys). */
QVM_API bool qvm_seed_files_hold_secret(const qvm_seed_file *files, size_t n_files);

/* One part of a multipart user-data. */
typedef struct qvm_seed_part {
  const char *content_type; /* "text/cloud-config", "text/x-shellscript", ...;
                               NULL: body is a whole MIME document (its own
                               headers), nested as it is */
  const char *filename;     /* Content-Disposition's, or NULL; '"', '\\' and
                               what is not printable ASCII become '_' */
  bool merge;               /* a Merge-Type header: list(append)+
                               dict(no_replace,recurse_list)+str() */
  const void *body;
  size_t len;
} qvm_seed_part;

/* A multipart/mixed user-data of parts, in order, with the boundary
 * "==PREFIX-N==" (PREFIX: [a-z0-9-], at most 32) for the first N found in
 * no body. A body that is not all ASCII goes base64, else 8bit: cloud-init
 * parses MIME user-data as text and mangles 8-bit characters in an "8bit"
 * part. */
QVM_API int qvm_seed_render_multipart(char **out, size_t *out_len, const char *boundary_prefix,
                                      const qvm_seed_part *parts, size_t n_parts, qvm_error **err);

/* Reads back the files at the root of a seed image this writer made (its
 * Joliet names): at most QVM_SEED_READ_FILES_MAX of them, the image at most
 * 32 MiB; anything malformed or out of bounds is QVM_EINVAL. Free the array
 * with qvm_seed_files_free. */
#define QVM_SEED_READ_FILES_MAX 64u
QVM_API int qvm_seed_read_iso(qvm_seed_file **out, size_t *n_out, const char *path,
                              qvm_error **err);
QVM_API void qvm_seed_files_free(qvm_seed_file *files, size_t n_files);
/* Adds key_line (one public key line) for user to the seed image at path,
 * which keeps its user-data as made and gains a part that adds every key so
 * far at each boot (bootcmd: a guest that booted before) and at the first
 * (runcmd, after the user is made). *added is false when the key was there
 * already (the image is then untouched). The image is rewritten atomically,
 * 0600. */
QVM_API int qvm_seed_add_authorized_key(const char *iso_path, const char *user,
                                        const char *key_line, bool *added, qvm_error **err);

typedef struct qvm_seed_iso qvm_seed_iso;

/* Starts with `unsigned version`, set by QVM_SEED_ISO_OPTIONS_INIT; an
 * unknown version is QVM_EINVAL naming the struct. */
#define QVM_SEED_ISO_OPTIONS_VERSION 1
typedef struct qvm_seed_iso_options {
  unsigned version;      /* QVM_SEED_ISO_OPTIONS_VERSION */
  const char *volume_id; /* at most 16 ASCII characters; default "cidata" */
  int64_t epoch;         /* timestamp of every entry, 1970..2155 */
} qvm_seed_iso_options;

#define QVM_SEED_ISO_OPTIONS_INIT                                                                  \
  {                                                                                                \
    .version = QVM_SEED_ISO_OPTIONS_VERSION, .volume_id = "cidata",                                \
    .epoch = QVM_SEED_EPOCH_DEFAULT                                                                \
  }

/* opts may be NULL for the defaults. */
QVM_API int qvm_seed_iso_new(qvm_seed_iso **out, const qvm_seed_iso_options *opts, qvm_error **err);
QVM_API void qvm_seed_iso_free(qvm_seed_iso *iso);
/* Adds a file whose bytes are copied now. path uses '/' between components;
 * missing parent directories are created. */
QVM_API int qvm_seed_iso_add_data(qvm_seed_iso *iso, const char *path, const void *data, size_t len,
                                  qvm_error **err);
/* Adds a file streamed from host_path when the image is written (its size
 * must not change in between). */
QVM_API int qvm_seed_iso_add_file(qvm_seed_iso *iso, const char *path, const char *host_path,
                                  qvm_error **err);
/* Adds an (empty) directory. */
QVM_API int qvm_seed_iso_add_dir(qvm_seed_iso *iso, const char *path, qvm_error **err);
/* Writes the whole image to fd, sequentially. Same inputs, same bytes. */
QVM_API int qvm_seed_iso_write_fd(qvm_seed_iso *iso, int fd, qvm_error **err);
/* Same into a malloc'd buffer. */
QVM_API int qvm_seed_iso_write_buffer(uint8_t **out, size_t *out_len, qvm_seed_iso *iso,
                                      qvm_error **err);

static inline void qvm_seed_iso_freep(qvm_seed_iso **p) {
  if (*p) qvm_seed_iso_free(*p);
}

#ifdef __cplusplus
}
#endif
#endif
