/* SPDX-License-Identifier: MIT */
#include "image/hash.h"

#include <openssl/evp.h>

bool img_hash_begin(img_hash *h, bool sha512) {
  if (!h->ctx && !(h->ctx = EVP_MD_CTX_new())) return false;
  h->sha512 = sha512;
  return EVP_DigestInit_ex(h->ctx, sha512 ? EVP_sha512() : EVP_sha256(), NULL) == 1;
}

void img_hash_update(img_hash *h, const void *data, size_t len) {
  if (h->ctx && len) EVP_DigestUpdate(h->ctx, data, len);
}

void img_hash_final(img_hash *h, unsigned char out[IMG_HASH_MAX]) {
  unsigned int n = 0;
  if (h->ctx) EVP_DigestFinal_ex(h->ctx, out, &n);
}

void img_hash_free(img_hash *h) {
  EVP_MD_CTX_free(h->ctx);
  h->ctx = NULL;
}
