/* SPDX-License-Identifier: MIT */
#ifndef QVM_IMAGE_CATALOG_H
#define QVM_IMAGE_CATALOG_H

/*
 * Aliases ("debian-12", "ubuntu-24.04", ...) for vendors' image URLs and
 * their checksum files, built in, plus a user catalog file (YAML) that adds
 * or overrides entries:
 *
 *   images:
 *     debian-12:
 *       url: https://cloud.debian.org/.../debian-12-generic-amd64.qcow2
 *       checksums: https://cloud.debian.org/.../SHA512SUMS
 *       description: Debian 12 (bookworm) generic cloud image
 *     mine:
 *       url: http://mirror.lab/mine.qcow2
 *       sha256: 0123...   (instead of checksums)
 *
 * An entry has url and exactly one of checksums, sha256, sha512. Unknown
 * keys, bad aliases (img_name_valid), non-http(s)/file URLs and bad hex are
 * errors naming the file and line.
 */
#include <stddef.h>

#include "util/error.h"

typedef struct img_catalog_entry {
  char *alias;
  char *url;
  char *checksums; /* URL of a SHA256SUMS / SHA512SUMS file, or NULL */
  char *sha256;    /* hex, or NULL */
  char *sha512;    /* hex, or NULL */
  char *description;
  char *origin; /* "builtin" or the user file's path */
} img_catalog_entry;

typedef struct img_catalog {
  img_catalog_entry *entries; /* sorted by alias */
  size_t n;
} img_catalog;

/* Built-in entries, then user_file's (NULL or missing file: none). */
int img_catalog_load(img_catalog *out, const char *user_file, qvm_error **err);
void img_catalog_clear(img_catalog *c);
const img_catalog_entry *img_catalog_find(const img_catalog *c, const char *alias);

/* The digest a checksum file lists for `filename`, in GNU ("<hex>  name",
 * "<hex> *name") or BSD ("SHA256 (name) = <hex>") form. The algorithm
 * comes from the hex length (64: sha256, 128: sha512). *out_alg is
 * "sha256" or "sha512". QVM_ENOTFOUND when the file lists no such name
 * (never a skip), QVM_EINVAL when it lists it twice with different
 * digests. */
int img_checksums_find(char out_hex[129], const char **out_alg, const char *text, size_t len,
                       const char *filename, qvm_error **err);

#endif
