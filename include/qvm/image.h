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
 *   (ENOSPC, ...).
 */
#include <stdbool.h>
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

#define QVM_IMAGE_PULL_OPTIONS_VERSION 1
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

#ifdef __cplusplus
}
#endif

#endif
