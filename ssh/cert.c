/* SPDX-License-Identifier: MIT */
/*
 * ssh-ed25519-cert-v01@openssh.com certificates (PROTOCOL.certkeys):
 *
 *   string  "ssh-ed25519-cert-v01@openssh.com"
 *   string  nonce (32 random bytes, so two certs never sign the same bytes)
 *   string  pk (the key certified)
 *           (ecdsa-sha2-nistp256-cert-v01@openssh.com: string "nistp256",
 *           string Q, in its place)
 *   uint64  serial
 *   uint32  type (1 user, 2 host)
 *   string  key id
 *   string  valid principals (a sequence of strings)
 *   uint64  valid after, valid before
 *   string  critical options (name/data pairs, sorted by name; data is a
 *           string holding a string)
 *   string  extensions (same shape)
 *   string  reserved ("")
 *   string  signature key (the CA's public key blob)
 *   string  signature (string "ssh-ed25519", string 64-byte signature over
 *           every byte before it)
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "ssh/cert.h"
#include "ssh/session_key.h"
#include "ssh/ssh_internal.h"
#include "ssh/wire.h"
#include "util/cleanup.h"

#define ED25519 "ssh-ed25519"
#define NONCE_LEN 32

void ssh_ed25519_blob(qvm_strbuf *sb, const unsigned char pk[crypto_sign_PUBLICKEYBYTES]) {
  ssh_put_cstring(sb, ED25519);
  ssh_put_string(sb, pk, crypto_sign_PUBLICKEYBYTES);
}

int ssh_ed25519_from_line(unsigned char pk[crypto_sign_PUBLICKEYBYTES], const char *line,
                          qvm_error **err) {
  size_t type_len = strcspn(line, " \t\r\n"), blob_len = 0;
  _cleanup_free_ unsigned char *blob = NULL;
  if (type_len != strlen(ED25519) || strncmp(line, ED25519, type_len) != 0)
    return qvm_error_set(err, QVM_EINVAL,
                         "only an ssh-ed25519 public key can be certified, not '%.*s'",
                         (int)(type_len < 64 ? type_len : 64), line);
  const char *b64 = line + type_len;
  b64 += strspn(b64, " \t");
  size_t b64_len = strcspn(b64, " \t\r\n");
  if (b64_len == 0 || b64_len > 1024 || ssh_base64_decode(&blob, &blob_len, b64, b64_len) < 0)
    return qvm_error_set(err, QVM_EINVAL, "the ssh-ed25519 key data is missing or not base64");
  ssh_reader rd = {blob, blob_len};
  const unsigned char *type, *key;
  size_t tlen, klen;
  if (!ssh_get_string(&rd, &type, &tlen) || !ssh_bytes_are(type, tlen, ED25519) ||
      !ssh_get_string(&rd, &key, &klen) || klen != crypto_sign_PUBLICKEYBYTES || rd.left != 0)
    return qvm_error_set(err, QVM_EINVAL, "the key data is not an ssh-ed25519 key");
  memcpy(pk, key, klen);
  return 0;
}

/* Printable ASCII without space: what a key id or principal may hold. */
static bool word_ok(const char *s, size_t max, const char *extra_forbidden) {
  size_t n = strnlen(s, max + 1);
  if (n == 0 || n > max) return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || strchr(extra_forbidden, s[i]))
      return false;
  return true;
}

/* One "ADDR[/BITS]" of a source-address list. */
static bool cidr_ok(const char *s, size_t len) {
  char buf[64], *slash;
  unsigned char addr[16];
  if (len == 0 || len >= sizeof buf) return false;
  memcpy(buf, s, len);
  buf[len] = 0;
  slash = strchr(buf, '/');
  if (slash) *slash++ = 0;
  int max = inet_pton(AF_INET, buf, addr) == 1    ? 32
            : inet_pton(AF_INET6, buf, addr) == 1 ? 128
                                                  : -1;
  if (max < 0) return false;
  if (!slash) return true;
  if (!*slash || strlen(slash) > 3 || strspn(slash, "0123456789") != strlen(slash)) return false;
  return atoi(slash) <= max;
}

static bool source_address_ok(const char *s) {
  size_t n = strnlen(s, SSH_CERT_MAX_SOURCE_ADDRESS + 1), count = 0;
  if (n == 0 || n > SSH_CERT_MAX_SOURCE_ADDRESS) return false;
  for (const char *p = s;; count++) {
    size_t len = strcspn(p, ",");
    if (!cidr_ok(p, len) || count >= 64) return false;
    if (!p[len]) return true;
    p += len + 1;
  }
}

int ssh_cert_spec_check(const ssh_cert_spec *spec, qvm_error **err) {
  if (spec->type != SSH_CERT_USER && spec->type != SSH_CERT_HOST)
    return qvm_error_set(err, QVM_EINVAL, "certificate type %u is unknown", spec->type);
  if (!spec->key_id || !word_ok(spec->key_id, SSH_CERT_MAX_KEY_ID, ""))
    return qvm_error_set(err, QVM_EINVAL,
                         "certificate key id must be 1 to %d printable characters without "
                         "spaces",
                         SSH_CERT_MAX_KEY_ID);
  if (spec->n_principals == 0 || spec->n_principals > SSH_CERT_MAX_PRINCIPALS)
    return qvm_error_set(err, QVM_EINVAL, "a certificate needs 1 to %d principals, not %zu",
                         SSH_CERT_MAX_PRINCIPALS, spec->n_principals);
  for (size_t i = 0; i < spec->n_principals; i++)
    if (!spec->principals[i] || !word_ok(spec->principals[i], SSH_CERT_MAX_PRINCIPAL, ",*?!"))
      return qvm_error_set(err, QVM_EINVAL,
                           "principal '%.64s' is invalid: 1 to %d printable characters without "
                           "spaces, commas or wildcards",
                           spec->principals[i] ? spec->principals[i] : "", SSH_CERT_MAX_PRINCIPAL);
  if (spec->source_address && spec->type != SSH_CERT_USER)
    return qvm_error_set(err, QVM_EINVAL, "source-address is for user certificates only");
  if (spec->source_address && !source_address_ok(spec->source_address))
    return qvm_error_set(err, QVM_EINVAL,
                         "source address '%.128s' is not a comma-separated list of addresses or "
                         "CIDRs",
                         spec->source_address);
  if (spec->valid_after >= spec->valid_before)
    return qvm_error_set(err, QVM_EINVAL, "certificate validity ends before it starts");
  if (spec->serial == 0)
    return qvm_error_set(err, QVM_EINVAL, "certificate serial 0 cannot be revoked; use 1 or more");
  return 0;
}

static void put_options(qvm_strbuf *sb, const ssh_cert_spec *spec) {
  qvm_strbuf opts = QVM_STRBUF_INIT, data = QVM_STRBUF_INIT;
  if (spec->source_address) {
    ssh_put_cstring(&opts, "source-address");
    ssh_put_cstring(&data, spec->source_address);
    ssh_put_string(&opts, data.buf, data.len);
  }
  ssh_put_string(sb, opts.buf, opts.len);
  qvm_strbuf_free(&data);
  qvm_strbuf_free(&opts);
}

static void put_extensions(qvm_strbuf *sb, const ssh_cert_spec *spec) {
  qvm_strbuf ext = QVM_STRBUF_INIT;
  if (spec->type == SSH_CERT_USER) {
    ssh_put_cstring(&ext, "permit-pty");
    ssh_put_string(&ext, "", 0);
  }
  ssh_put_string(sb, ext.buf, ext.len);
  qvm_strbuf_free(&ext);
}

static void put_body(qvm_strbuf *sb, const ssh_cert_spec *spec, const unsigned char *ca_pk) {
  unsigned char nonce[NONCE_LEN];
  qvm_strbuf principals = QVM_STRBUF_INIT, ca_blob = QVM_STRBUF_INIT;
  randombytes_buf(nonce, sizeof nonce);
  ssh_put_cstring(sb, spec->ecdsa_q ? SSH_CERT_ECDSA_P256_TYPE : SSH_CERT_ED25519_TYPE);
  ssh_put_string(sb, nonce, sizeof nonce);
  if (spec->ecdsa_q) { /* string curve, string Q */
    ssh_put_cstring(sb, "nistp256");
    ssh_put_string(sb, spec->ecdsa_q, SSH_ECDSA_P256_Q_LEN);
  } else {
    ssh_put_string(sb, spec->key, sizeof spec->key);
  }
  ssh_put_u64(sb, spec->serial);
  ssh_put_u32(sb, spec->type);
  ssh_put_cstring(sb, spec->key_id);
  for (size_t i = 0; i < spec->n_principals; i++) ssh_put_cstring(&principals, spec->principals[i]);
  ssh_put_string(sb, principals.buf, principals.len);
  ssh_put_u64(sb, spec->valid_after);
  ssh_put_u64(sb, spec->valid_before);
  put_options(sb, spec);
  put_extensions(sb, spec);
  ssh_put_string(sb, "", 0);
  ssh_ed25519_blob(&ca_blob, ca_pk);
  ssh_put_string(sb, ca_blob.buf, ca_blob.len);
  qvm_strbuf_free(&principals);
  qvm_strbuf_free(&ca_blob);
}

int ssh_cert_sign(unsigned char **out, size_t *out_len, const ssh_cert_spec *spec,
                  const unsigned char ca_sk[crypto_sign_SECRETKEYBYTES], qvm_error **err) {
  int r = ssh_cert_spec_check(spec, err);
  if (r < 0) return r;
  if (sodium_init() < 0) return qvm_error_set(err, QVM_ESYS, "libsodium failed to initialize");
  qvm_strbuf sb = QVM_STRBUF_INIT, sig_blob = QVM_STRBUF_INIT;
  unsigned char sig[crypto_sign_BYTES];
  /* libsodium's secret key is seed || public key */
  put_body(&sb, spec, ca_sk + crypto_sign_SECRETKEYBYTES - crypto_sign_PUBLICKEYBYTES);
  if (!sb.oom) {
    crypto_sign_detached(sig, NULL, (const unsigned char *)sb.buf, sb.len, ca_sk);
    ssh_put_cstring(&sig_blob, ED25519);
    ssh_put_string(&sig_blob, sig, sizeof sig);
    ssh_put_string(&sb, sig_blob.buf, sig_blob.len);
  }
  bool oom = sb.oom || sig_blob.oom;
  qvm_strbuf_free(&sig_blob);
  *out_len = sb.len;
  *out = (unsigned char *)qvm_strbuf_steal(&sb);
  if (oom || !*out) {
    free(*out);
    *out = NULL;
    return qvm_error_set(err, QVM_ESYS, "out of memory signing a certificate");
  }
  return 0;
}
