/* SPDX-License-Identifier: MIT */
/*
 * A strict parser of ssh-ed25519-cert-v01@openssh.com blobs (the layout is
 * in cert.c). The bytes may come from anyone (a file a user hands over, a
 * guest), so every length is bounded by what is left, every string qvm keeps
 * must be printable, nothing may follow the signature, and the signature
 * must verify with the CA key the certificate names.
 */
#include <stdlib.h>
#include <string.h>

#include "ssh/cert.h"
#include "ssh/wire.h"

#define ED25519 "ssh-ed25519"

void ssh_cert_parsed_clear(ssh_cert_parsed *p) {
  free(p->key_id);
  for (size_t i = 0; i < p->n_principals; i++) free(p->principals[i]);
  free(p->source_address);
  memset(p, 0, sizeof *p);
}

/* A copy of a printable string of at most max bytes, or NULL. */
static char *printable_dup(const unsigned char *s, size_t len, size_t max) {
  if (len == 0 || len > max) return NULL;
  for (size_t i = 0; i < len; i++)
    if (s[i] < 0x20 || s[i] >= 0x7f) return NULL;
  char *out = malloc(len + 1);
  if (out) {
    memcpy(out, s, len);
    out[len] = 0;
  }
  return out;
}

static bool get_ed25519_blob(ssh_reader *r, unsigned char out[crypto_sign_PUBLICKEYBYTES]) {
  const unsigned char *blob, *type, *key;
  size_t blen, tlen, klen;
  if (!ssh_get_string(r, &blob, &blen)) return false;
  ssh_reader b = {blob, blen};
  if (!ssh_get_string(&b, &type, &tlen) || !ssh_bytes_are(type, tlen, ED25519) ||
      !ssh_get_string(&b, &key, &klen) || klen != crypto_sign_PUBLICKEYBYTES || b.left)
    return false;
  memcpy(out, key, klen);
  return true;
}

static int parse_principals(ssh_cert_parsed *out, ssh_reader *r, qvm_error **err) {
  const unsigned char *list, *s;
  size_t len, slen;
  if (!ssh_get_string(r, &list, &len))
    return qvm_error_set(err, QVM_EINVAL, "certificate is truncated in its principals");
  ssh_reader l = {list, len};
  while (l.left) {
    if (out->n_principals >= SSH_CERT_MAX_PRINCIPALS)
      return qvm_error_set(err, QVM_EINVAL, "certificate has more than %d principals",
                           SSH_CERT_MAX_PRINCIPALS);
    if (!ssh_get_string(&l, &s, &slen) ||
        !(out->principals[out->n_principals] = printable_dup(s, slen, SSH_CERT_MAX_PRINCIPAL)))
      return qvm_error_set(err, QVM_EINVAL, "certificate has a malformed principal");
    out->n_principals++;
  }
  return 0;
}

/* Name/data pairs; names strictly increasing (sorted, unique). */
static int parse_pairs(ssh_cert_parsed *out, ssh_reader *r, bool critical, qvm_error **err) {
  const char *what = critical ? "critical option" : "extension";
  const unsigned char *all, *name, *data, *prev = NULL, *inner;
  size_t len, nlen, dlen, prev_len = 0, ilen;
  if (!ssh_get_string(r, &all, &len))
    return qvm_error_set(err, QVM_EINVAL, "certificate is truncated in its %ss", what);
  ssh_reader l = {all, len};
  while (l.left) {
    if (!ssh_get_string(&l, &name, &nlen) || !ssh_get_string(&l, &data, &dlen) || nlen == 0)
      return qvm_error_set(err, QVM_EINVAL, "certificate has a malformed %s", what);
    size_t m = nlen < prev_len ? nlen : prev_len;
    int c = prev ? memcmp(prev, name, m) : -1;
    if (prev && (c > 0 || (c == 0 && prev_len >= nlen)))
      return qvm_error_set(err, QVM_EINVAL, "certificate %ss are not sorted or repeat", what);
    prev = name, prev_len = nlen;
    if (!critical) {
      if (++out->n_extensions > 64)
        return qvm_error_set(err, QVM_EINVAL, "certificate has too many extensions");
      if (ssh_bytes_are(name, nlen, "permit-pty")) out->permit_pty = true;
      continue;
    }
    ssh_reader d = {data, dlen};
    if (!ssh_bytes_are(name, nlen, "source-address") || !ssh_get_string(&d, &inner, &ilen) ||
        d.left || !(out->source_address = printable_dup(inner, ilen, SSH_CERT_MAX_SOURCE_ADDRESS)))
      return qvm_error_set(err, QVM_EINVAL, "certificate has an unknown or malformed %s", what);
  }
  return 0;
}

static int parse_head(ssh_cert_parsed *out, ssh_reader *r, qvm_error **err) {
  const unsigned char *type, *nonce, *key, *id;
  size_t tlen, nlen, klen, idlen;
  if (!ssh_get_string(r, &type, &tlen) || !ssh_bytes_are(type, tlen, SSH_CERT_ED25519_TYPE))
    return qvm_error_set(err, QVM_EINVAL, "not an " SSH_CERT_ED25519_TYPE " certificate");
  if (!ssh_get_string(r, &nonce, &nlen) || nlen < 16 || nlen > 64 ||
      !ssh_get_string(r, &key, &klen) || klen != crypto_sign_PUBLICKEYBYTES ||
      !ssh_get_u64(r, &out->serial) || !ssh_get_u32(r, &out->type))
    return qvm_error_set(err, QVM_EINVAL, "certificate is truncated or malformed in its key");
  memcpy(out->key, key, klen);
  if (out->type != SSH_CERT_USER && out->type != SSH_CERT_HOST)
    return qvm_error_set(err, QVM_EINVAL, "certificate type %u is unknown", out->type);
  if (!ssh_get_string(r, &id, &idlen) ||
      !(out->key_id = printable_dup(id, idlen, SSH_CERT_MAX_KEY_ID)))
    return qvm_error_set(err, QVM_EINVAL, "certificate key id is missing or not printable");
  return 0;
}

static int parse_signature(ssh_cert_parsed *out, ssh_reader *r, const unsigned char *blob,
                           qvm_error **err) {
  const unsigned char *reserved, *sig_blob, *type, *sig;
  size_t rlen, slen, tlen, siglen;
  if (!ssh_get_string(r, &reserved, &rlen) || rlen != 0 || !get_ed25519_blob(r, out->ca_key))
    return qvm_error_set(err, QVM_EINVAL, "certificate signature key is not an ed25519 key");
  size_t signed_len = (size_t)(r->p - blob);
  if (!ssh_get_string(r, &sig_blob, &slen) || r->left)
    return qvm_error_set(err, QVM_EINVAL, "certificate signature is missing or followed by bytes");
  ssh_reader s = {sig_blob, slen};
  if (!ssh_get_string(&s, &type, &tlen) || !ssh_bytes_are(type, tlen, ED25519) ||
      !ssh_get_string(&s, &sig, &siglen) || siglen != crypto_sign_BYTES || s.left)
    return qvm_error_set(err, QVM_EINVAL, "certificate signature is malformed");
  if (crypto_sign_verify_detached(sig, blob, signed_len, out->ca_key) != 0)
    return qvm_error_set(err, QVM_EINVAL, "certificate signature does not verify");
  return 0;
}

int ssh_cert_parse(ssh_cert_parsed *out, const unsigned char *blob, size_t len, qvm_error **err) {
  memset(out, 0, sizeof *out);
  if (len > SSH_CERT_MAX_BLOB)
    return qvm_error_set(err, QVM_EINVAL, "certificate is larger than %d bytes", SSH_CERT_MAX_BLOB);
  if (sodium_init() < 0) return qvm_error_set(err, QVM_ESYS, "libsodium failed to initialize");
  ssh_reader r = {blob, len};
  int rc = parse_head(out, &r, err);
  if (rc >= 0) rc = parse_principals(out, &r, err);
  if (rc >= 0 && (!ssh_get_u64(&r, &out->valid_after) || !ssh_get_u64(&r, &out->valid_before)))
    rc = qvm_error_set(err, QVM_EINVAL, "certificate is truncated in its validity");
  if (rc >= 0) rc = parse_pairs(out, &r, true, err);
  if (rc >= 0) rc = parse_pairs(out, &r, false, err);
  if (rc >= 0) rc = parse_signature(out, &r, blob, err);
  if (rc < 0) ssh_cert_parsed_clear(out);
  return rc;
}
