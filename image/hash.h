/* SPDX-License-Identifier: MIT */
#ifndef QVM_IMAGE_HASH_H
#define QVM_IMAGE_HASH_H

/*
 * Streaming sha256/sha512 for images, on OpenSSL's libcrypto (EVP), which
 * uses the CPU's SHA extensions: 1467 MB/s here against 296 MB/s for
 * libsodium's portable sha256 (bench/image and docs/ARCHITECTURE.md), so
 * that hashing keeps up with a download instead of bounding it. libcurl
 * already links libcrypto. Keys, signatures and everything else stay on
 * libsodium.
 */
#include <stdbool.h>
#include <stddef.h>

#define IMG_HASH_MAX 64

typedef struct img_hash {
  void *ctx; /* EVP_MD_CTX; NULL until the first img_hash_begin */
  bool sha512;
} img_hash;

/* (Re)starts the hash; false only when out of memory. */
bool img_hash_begin(img_hash *h, bool sha512);
void img_hash_update(img_hash *h, const void *data, size_t len);
/* Writes 32 (sha256) or 64 (sha512) bytes. */
void img_hash_final(img_hash *h, unsigned char out[IMG_HASH_MAX]);
/* Frees the context; h may be reused with img_hash_begin. */
void img_hash_free(img_hash *h);

#endif
