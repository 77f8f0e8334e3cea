/* SPDX-License-Identifier: MIT */
#ifndef QVM_IMAGE_STORE_H
#define QVM_IMAGE_STORE_H

/*
 * The content-addressed image store, under a root directory (the caller
 * gives <state>/images), 0700:
 *   sha256/<hex>      the image, read-only (0444), named by the sha256 of
 *                     its bytes (the decompressed content)
 *   meta/<hex>.json   what was recorded at import (img_meta)
 *   names.json        { "name": "sha256:<hex>", ... }
 *   tmp/              staging files, partial downloads (<key>.part), a
 *                     pull's content before commit (<key>.img) and
 *                     per-source pull locks (<key>.lock); never read as images
 *   lock              flock: shared while an image is being used (resolve +
 *                     overlay), exclusive while anything is changed
 * A file appears in sha256/ only by rename() from tmp/ after its digest
 * was checked, so a partial image is never visible. Every write of
 * names.json and meta is atomic (temp file, fsync, rename).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

typedef struct img_store img_store;

typedef struct img_meta {
  char digest[65]; /* hex sha256 of the stored bytes */
  char *format;    /* detected once at import: "qcow2", "raw", ... */
  uint64_t virtual_size;
  uint64_t file_size;
  char *source;        /* URL or path as given (credentials in a URL removed) */
  char *source_sha256; /* hex of the downloaded bytes, or NULL */
  char *source_sha512; /* hex, or NULL */
  char *verified;      /* how it was checked: "sha256", "sha512", "checksums:<url>", or NULL (not
                          verified) */
  char *compression;   /* "none", "xz", ... */
  char *tar_member;    /* or NULL */
  int64_t created_ms;  /* wall clock, ms since the epoch */
  char **names;        /* names pointing at it (filled by lookup/list) */
  size_t n_names;
} img_meta;

void img_meta_clear(img_meta *m);

/* Image names: [a-z0-9][a-z0-9._-]{0,63} (so never "sha256:..."). */
bool img_name_valid(const char *name);
int img_name_check(const char *name, qvm_error **err);

/* Opens (creating 0700 dirs as needed) the store at root. */
int img_store_open(img_store **out, const char *root, qvm_error **err);
void img_store_free(img_store *s);
const char *img_store_root(const img_store *s);

/* flock on the store's lock file, waiting at most timeout_ms (QVM_EBUSY).
 * *out_fd is released with close(). */
int img_store_lock(int *out_fd, img_store *s, bool exclusive, int timeout_ms, qvm_error **err);

/* A fresh path under tmp/ for staging (not created). */
int img_store_tmp_path(char **out, img_store *s, const char *suffix, qvm_error **err);
/* The partial-download and lock paths for a source (key: sha256 of the
 * source string, so two pulls of one URL share them). */
int img_store_source_paths(char **out_part, char **out_lock, img_store *s, const char *source,
                           qvm_error **err);

/* Moves `staged` (under tmp/) to sha256/<meta->digest> (0444) and writes
 * its meta; when the digest is already stored, `staged` is removed and the
 * old meta kept (its source fields updated if it had none). Then points
 * `name` (may be NULL) at it. Takes the exclusive lock itself. The caller
 * has checked that the digest is the file's. */
int img_store_commit(img_store *s, const char *staged, const img_meta *meta, const char *name,
                     qvm_error **err);

/* A reference: a name, "sha256:<hex>" (full) or "sha256:<prefix>" (at
 * least 12 hex digits, unique). *out filled (names included); out_path
 * (may be NULL) gets the image file's path. QVM_ENOTFOUND if unknown,
 * QVM_EINVAL if malformed or an ambiguous prefix. */
int img_store_lookup(img_meta *out, char **out_path, img_store *s, const char *ref,
                     qvm_error **err);
/* The newest image whose meta->source equals source, if any (0 and
 * out->digest[0] == '\0' if none). */
int img_store_find_source(img_meta *out, img_store *s, const char *source, qvm_error **err);
/* Every stored image, oldest first. */
int img_store_list(img_meta **out, size_t *out_n, img_store *s, qvm_error **err);
void img_meta_list_free(img_meta *list, size_t n);

/* name -> ref's image (replacing what the name pointed at). */
int img_store_tag(img_store *s, const char *ref, const char *name, qvm_error **err);
/* Removes a name; the image stays. */
int img_store_untag(img_store *s, const char *name, qvm_error **err);
/* Removes the image and every name pointing at it. The caller checked it is
 * unused while holding the exclusive lock (held_fd from img_store_lock). */
int img_store_remove_locked(img_store *s, const char *digest, qvm_error **err);
/* Partial downloads and staging files under tmp/ that are older than
 * min_age_ms and, for <key>.* files, whose <key>.lock nobody holds (lock
 * files themselves stay: unlinking one races its next taker); *out_bytes
 * gets what was freed. */
int img_store_prune_tmp(uint64_t *out_bytes, img_store *s, int64_t min_age_ms, qvm_error **err);

#endif
