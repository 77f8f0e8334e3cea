/* SPDX-License-Identifier: MIT */
#ifndef QVM_IMAGE_H
#define QVM_IMAGE_H

/*
 * Images: pull from a URL, a path or a catalog alias with a verified
 * checksum into a content-addressed store (<state>/images, see
 * docs/images.md), and name, list, inspect, remove and prune what it holds.
 *
 * Contract (and include/qvm/error.h):
 * - Nothing prints; progress goes to the caller's callback.
 * - Any thread; the store's lock serializes changes across processes, and
 *   two pulls of one source coalesce (the second waits, then reuses).
 * - char ** results are the caller's (free()).
 * - Errors: QVM_EINVAL (bad reference, name, checksum, URL; a checksum
 *   mismatch names both digests; an image with a backing file without
 *   allow_backing), QVM_ENOTFOUND (no such image, alias, URL (404), or no
 *   entry for the file in a checksum file), QVM_ETIMEOUT (a stalled
 *   server), QVM_EPROTO (HTTP errors, broken archives), QVM_ECONFLICT (rm of
 *   an image a VM uses: the message names the VMs), QVM_EBUSY, QVM_ESYS
 *   (ENOSPC, ...; ECANCELED with class "Cancelled": a cancelled pull).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <qvm/error.h>
#include <qvm/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qvm_image_progress {
  const char *phase;    /* "resolve", "connect", "download", "retry", "verify", "inspect", "done" */
  uint64_t done, total; /* bytes; total 0: unknown */
  uint64_t rate;        /* bytes/s; 0: unknown */
  int64_t eta_ms;       /* -1: unknown */
  unsigned attempt;
  const char *note; /* a phase's detail (retry reason, the URL), or NULL */
} qvm_image_progress;

typedef void qvm_image_progress_fn(const qvm_image_progress *p, void *userdata);

/* Version 2 added `discover_checksums` and `cancelled`. */
#define QVM_IMAGE_PULL_OPTIONS_VERSION 2
typedef struct qvm_image_pull_options {
  unsigned version;      /* QVM_IMAGE_PULL_OPTIONS_VERSION (from _INIT) */
  const char *name;      /* a name to point at the image, or NULL (an alias names it by itself) */
  const char *sha256;    /* expected hex digest of the download, or NULL */
  const char *sha512;    /* same, sha512 */
  const char *checksums; /* URL of a SHA256SUMS / SHA512SUMS file, or NULL */
  bool allow_backing;    /* accept a qcow2/vmdk that names another file */
  bool insecure_no_checksum; /* a URL without any checksum: refused unless this */
  unsigned retries;          /* further attempts; QVM_IMAGE_RETRIES_DEFAULT */
  int stall_timeout_ms;      /* 0: 30 s */
  qvm_image_progress_fn *progress;
  void *userdata;
  /* Version 2: a remote URL with no checksum given is verified with the
   * SHA256SUMS, else SHA512SUMS, file beside it (same directory, where
   * Debian's and Ubuntu's cloud images have theirs) when that lists its
   * file name; with neither it is refused as without this. That proves the
   * download is what that server lists, no more: for a caller that cannot
   * pass checksums (vm-provisioner's imageUrl). */
  bool discover_checksums;
  /* Polled (with userdata) from the calling thread about 10 times a second
   * while bytes arrive, between attempts and between phases; true stops
   * the pull: its partial download is removed (no resume), nothing is
   * committed, and it fails with QVM_ESYS (qvm_error_errno() ECANCELED),
   * class "Cancelled". NULL: never. A pull that has committed the image
   * already succeeds. */
  bool (*cancelled)(void *userdata);
} qvm_image_pull_options;
#define QVM_IMAGE_RETRIES_DEFAULT 4u
#define QVM_IMAGE_PULL_OPTIONS_INIT                                                                \
  { .version = QVM_IMAGE_PULL_OPTIONS_VERSION, .retries = QVM_IMAGE_RETRIES_DEFAULT }

/* Pulls source (http(s):// or file:// URL, a path, or a catalog alias) into
 * the store; *out_json (may be NULL) gets the image's record (as
 * qvm_image_inspect) plus "transferred" (bytes received this time) and
 * "reused" (true when nothing was downloaded). */
QVM_API int qvm_image_pull(char **out_json, const char *source, const qvm_image_pull_options *opts,
                           qvm_error **err);

/* Removes what a pull of source left in the store's staging area (its
 * partial download, kept for a resume, and the unverified content), as
 * after a crash of the process that pulled; a pull of source under way
 * right now is QVM_EBUSY (nothing removed). *out_removed (may be NULL):
 * whether there was anything. The source is classified as by
 * qvm_image_pull (a URL, a path or a catalog alias). */
QVM_API int qvm_image_pull_discard(const char *source, bool *out_removed, qvm_error **err);

/* What --image accepts: a path (absolute, ./relative, or an existing file),
 * "sha256:<hex or unique prefix>", a store name, a catalog alias or a URL.
 * A store name wins over an alias; an alias or URL not in the store yet is
 * pulled (with opts; NULL: defaults). *out_path gets the image file,
 * *out_format its recorded format (NULL for a plain path: the caller
 * detects it once). */
QVM_API int qvm_image_resolve(char **out_path, char **out_format, const char *ref,
                              const qvm_image_pull_options *opts, qvm_error **err);

/* JSON array of the stored images, oldest first: digest, names, format,
 * virtual_size, file_size, source, verified, created, used_by (VM names). */
QVM_API int qvm_image_list(char **out_json, qvm_error **err);
/* One image by name or digest, as one object of qvm_image_list. */
QVM_API int qvm_image_inspect(char **out_json, const char *ref, qvm_error **err);
/* Points name at ref's image. */
QVM_API int qvm_image_tag(const char *ref, const char *name, qvm_error **err);
/* Removes a name (when ref is a name that other names share the image
 * with) or the image: QVM_ECONFLICT naming the VMs that use it. */
QVM_API int qvm_image_remove(const char *ref, qvm_error **err);
/* Removes images that have no name and no VM, and stale partial
 * downloads; *out_json: {"removed": [digests], "bytes": N}. */
QVM_API int qvm_image_prune(char **out_json, qvm_error **err);
/* JSON array of the catalog: alias, url, checksums|sha256|sha512,
 * description, origin ("builtin" or the user file), stored (digest or null). */
QVM_API int qvm_image_catalog(char **out_json, qvm_error **err);
/* The user catalog file's path (the caller's to free): $QVM_CATALOG, else
 * /etc/qvm/catalog.yaml as root, else $XDG_CONFIG_HOME/qvm/catalog.yaml. */
QVM_API int qvm_image_catalog_path(char **out, qvm_error **err);

/* Import from a VM ("golden images"): the VM's disk state (its disk.qcow2
 * over its image, or an internal snapshot of it) flattened into one
 * standalone qcow2 by `qemu-img convert`, committed to the store with
 * source "vm:<name>" (docs/ARCHITECTURE.md, "Clones"). The VM is never
 * written, with one exception: a running VM without a snapshot gets a
 * temporary internal snapshot (QMP, on its "disk" node) that is read and
 * deleted again, so that the image is one consistent point in time. Phases
 * "snapshot", "convert", "hash", "done". */
#define QVM_IMAGE_IMPORT_OPTIONS_VERSION 1
typedef struct qvm_image_import_options {
  unsigned version; /* QVM_IMAGE_IMPORT_OPTIONS_VERSION (from _INIT) */
  qvm_image_progress_fn *progress;
  void *userdata;
} qvm_image_import_options;
#define QVM_IMAGE_IMPORT_OPTIONS_INIT                                                              \
  { .version = QVM_IMAGE_IMPORT_OPTIONS_VERSION }

/* Imports VM vm's disk state (snapshot: an internal snapshot of its disk,
 * [A-Za-z0-9][A-Za-z0-9._-]{0,63}, or NULL: its current state) under name
 * (NULL: unnamed; `qvm image prune` removes it once no VM uses it). opts may
 * be NULL. *out_json (may be NULL): the image's record (as
 * qvm_image_inspect) plus "vm" and "snapshot". QVM_ENOTFOUND: no such VM or
 * snapshot (class "SnapshotUnknown"); QVM_EINVAL: a bad name, a VM without
 * a disk.qcow2; QVM_ECONFLICT: the VM is starting or stopping; QVM_EBUSY:
 * its lock is held. */
QVM_API int qvm_image_import_vm(char **out_json, const char *vm, const char *snapshot,
                                const char *name, const qvm_image_import_options *opts,
                                qvm_error **err);

/* Offline build: a cloud image made from distribution packages with
 * mmdebstrap (cloud-init with NoCloud only, OpenSSH, the guest agent, GRUB
 * for BIOS boot on an MBR-partitioned disk, one ext4 root partition filling
 * it), as qcow2. Needs root and mmdebstrap, mkfs.ext4 (e2fsprogs), sfdisk
 * (fdisk) and qemu-img (QVM_EUNAVAIL naming what is missing). While it runs,
 * SIGINT, SIGTERM and SIGHUP are blocked in the calling thread and handled
 * by the build: it stops, removes its temp dir and fails with QVM_ESYS
 * (qvm_error_errno() EINTR); call it from a program's main thread. */
#define QVM_IMAGE_BUILD_OPTIONS_VERSION 1
typedef struct qvm_image_build_options {
  unsigned version;            /* QVM_IMAGE_BUILD_OPTIONS_VERSION (from _INIT) */
  const char *distro;          /* "debian-12" (bookworm, NULL: this) or "debian-13" (trixie) */
  const char *const *packages; /* extra packages ([a-z0-9][a-z0-9+.-]*), at most 256 */
  size_t n_packages;
  uint64_t size;      /* virtual disk bytes, 1 GiB to 2 TiB, whole MiB; 0: 3 GiB */
  const char *mirror; /* http(s)://, file:// or copy:// URL; NULL: the host's apt
                         sources for the suite (and its -updates, -security) */
  const char *output; /* write the qcow2 to this new file instead of the store
                         (the name is then NULL) */
  /* phases "bootstrap", "filesystem", "bootloader", "convert", "done"; called
   * when one begins and about once a second while it runs */
  qvm_image_progress_fn *progress;
  void *userdata;
} qvm_image_build_options;
#define QVM_IMAGE_BUILD_OPTIONS_INIT                                                               \
  { .version = QVM_IMAGE_BUILD_OPTIONS_VERSION }

/* Builds an image and commits it to the store under name (or writes it to
 * opts->output). *out_json (may be NULL): digest, name, output, distro,
 * suite, format, virtual_size, file_size, fs_size, root_tree_bytes,
 * fs_uuid, kernel, packages (object: installed package -> version),
 * package_count, mirror (null: host sources), build_ms, bootstrap_ms. */
QVM_API int qvm_image_build(char **out_json, const char *name, const qvm_image_build_options *opts,
                            qvm_error **err);

#ifdef __cplusplus
}
#endif

#endif
