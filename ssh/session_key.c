/* SPDX-License-Identifier: MIT */
/* Ephemeral ECDSA P-256 keys (ssh/session_key.h), from OpenSSL's libcrypto,
 * which libssh2 already uses on Debian: no curve code of qvm's own. */
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "ssh/session_key.h"

void ssh_session_key_clear(ssh_session_key *key) {
  if (!key) return;
  if (key->pem) OPENSSL_cleanse(key->pem, key->pem_len);
  free(key->pem);
  OPENSSL_cleanse(key, sizeof *key);
}

static int export_pem(ssh_session_key *out, EVP_PKEY *pk) {
  BIO *bio = BIO_new(BIO_s_secmem());
  if (!bio) return -1;
  char *data = NULL;
  long len = 0;
  int ok = PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL) == 1 &&
           (len = BIO_get_mem_data(bio, &data)) > 0 && (out->pem = malloc((size_t)len + 1));
  if (ok) {
    memcpy(out->pem, data, (size_t)len);
    out->pem[len] = 0;
    out->pem_len = (size_t)len;
  }
  BIO_free(bio); /* a secure-memory BIO wipes what it held */
  return ok ? 0 : -1;
}

int ssh_session_key_generate(ssh_session_key *out, qvm_error **err) {
  *out = (ssh_session_key){0};
  EVP_PKEY *pk = EVP_EC_gen("P-256");
  size_t qlen = 0;
  int ok = pk &&
           EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out->q,
                                           sizeof out->q, &qlen) == 1 &&
           qlen == sizeof out->q && out->q[0] == 0x04 && export_pem(out, pk) == 0;
  EVP_PKEY_free(pk);
  if (!ok) {
    ssh_session_key_clear(out);
    return qvm_error_set(err, QVM_ESYS, "cannot generate an ecdsa p-256 session key (openssl)");
  }
  return 0;
}
