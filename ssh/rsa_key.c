/* SPDX-License-Identifier: MIT */
/* RSA key pairs for users who need them (qvm's key store, rsa-4096: Datamancy
 * vm-provisioner's keys are RSA), from OpenSSL's libcrypto: the private key as
 * PKCS#8 PEM (OpenSSH reads it), the public key as an OpenSSH line
 * "ssh-rsa BASE64 COMMENT" (RFC 4253 6.6: string "ssh-rsa", mpint e, mpint n).
 * qvm's own keys stay ed25519 (ssh/key.c). */
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "ssh/rsa_key.h"
#include "ssh/ssh_internal.h"
#include "ssh/wire.h"

/* An SSH mpint: big-endian, a leading 0 byte when the top bit is set. */
static int put_mpint(qvm_strbuf *sb, const BIGNUM *bn) {
  int n = BN_num_bytes(bn);
  if (n <= 0 || n > 2048) return -1;
  unsigned char buf[2049];
  buf[0] = 0;
  BN_bn2bin(bn, buf + 1);
  bool pad = (buf[1] & 0x80) != 0;
  ssh_put_string(sb, pad ? buf : buf + 1, (size_t)n + pad);
  return 0;
}

static int public_line(char **out, EVP_PKEY *pk, const char *comment) {
  BIGNUM *e = NULL, *n = NULL;
  qvm_strbuf blob = QVM_STRBUF_INIT;
  int r = -1;
  if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e) == 1 &&
      EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n) == 1) {
    ssh_put_cstring(&blob, "ssh-rsa");
    if (put_mpint(&blob, e) == 0 && put_mpint(&blob, n) == 0 && !blob.oom) {
      char *b64 = ssh_base64((const unsigned char *)blob.buf, blob.len);
      if (b64 && asprintf(out, "ssh-rsa %s%s%s", b64, *comment ? " " : "", comment) >= 0) r = 0;
      free(b64);
    }
  }
  BN_free(e);
  BN_free(n);
  qvm_strbuf_free(&blob);
  return r;
}

static int private_pem(char **out, size_t *out_len, EVP_PKEY *pk) {
  BIO *bio = BIO_new(BIO_s_secmem());
  char *data = NULL;
  long len = 0;
  int r = -1;
  if (bio && PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL) == 1 &&
      (len = BIO_get_mem_data(bio, &data)) > 0 && (*out = malloc((size_t)len + 1))) {
    memcpy(*out, data, (size_t)len);
    (*out)[len] = 0;
    *out_len = (size_t)len;
    r = 0;
  }
  BIO_free(bio);
  return r;
}

int ssh_rsa_generate(ssh_rsa_key *out, unsigned bits, const char *comment, qvm_error **err) {
  *out = (ssh_rsa_key){0};
  if (bits < 2048 || bits > 8192)
    return qvm_error_set(err, QVM_EINVAL, "rsa keys are 2048 to 8192 bits, not %u", bits);
  EVP_PKEY *pk = EVP_RSA_gen(bits);
  int r = pk && private_pem(&out->pem, &out->pem_len, pk) == 0 &&
                  public_line(&out->public_line, pk, comment ? comment : "") == 0
              ? 0
              : -1;
  EVP_PKEY_free(pk);
  if (r < 0) {
    ssh_rsa_key_clear(out);
    return qvm_error_set(err, QVM_ESYS, "cannot generate an rsa-%u key (openssl)", bits);
  }
  return 0;
}

void ssh_rsa_key_clear(ssh_rsa_key *key) {
  if (!key) return;
  if (key->pem) OPENSSL_cleanse(key->pem, key->pem_len);
  free(key->pem);
  free(key->public_line);
  *key = (ssh_rsa_key){0};
}
