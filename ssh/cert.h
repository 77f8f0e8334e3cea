/* SPDX-License-Identifier: MIT */
#ifndef QVM_SSH_CERT_H
#define QVM_SSH_CERT_H

/*
 * OpenSSH certificates and key revocation lists, encoded by qvm itself
 * (PROTOCOL.certkeys, PROTOCOL.krl): pure functions from structs to bytes,
 * and a strict parser of certificates. ed25519 CAs; the key certified is
 * ed25519, or ECDSA P-256 for qvm's own session keys (ssh/session_key.h),
 * which only the signer handles (the parser takes ed25519 keys only).
 */
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include <qvm/ssh.h>

#include "util/error.h"
#include "util/strbuf.h"

#define SSH_CERT_ED25519_TYPE "ssh-ed25519-cert-v01@openssh.com"
#define SSH_CERT_ECDSA_P256_TYPE "ecdsa-sha2-nistp256-cert-v01@openssh.com"
#define SSH_CERT_USER 1
#define SSH_CERT_HOST 2

/* Bounds qvm puts on what it signs (OpenSSH itself takes more). */
#define SSH_CERT_MAX_KEY_ID 256
#define SSH_CERT_MAX_PRINCIPAL 64
#define SSH_CERT_MAX_PRINCIPALS 16
#define SSH_CERT_MAX_SOURCE_ADDRESS 1024
#define SSH_CERT_MAX_BLOB 8192

typedef struct ssh_cert_spec {
  uint32_t type;                                 /* SSH_CERT_USER or SSH_CERT_HOST */
  unsigned char key[crypto_sign_PUBLICKEYBYTES]; /* the ed25519 key certified */
  /* When set, the key certified is this ECDSA P-256 point (0x04 || X || Y)
   * instead of `key`: an ecdsa-sha2-nistp256-cert-v01@openssh.com. */
  const unsigned char *ecdsa_q;
  uint64_t serial;
  const char *key_id;
  const char *const *principals; /* n_principals of them */
  size_t n_principals;
  uint64_t valid_after, valid_before; /* seconds since the epoch */
  const char *source_address;         /* user certs: critical option, or NULL */
  /* user certs get permit-pty and nothing else: no forwarding, no agent */
} ssh_cert_spec;

/* Checks spec against the bounds above: key id and principals printable
 * ASCII without spaces, principals without commas, source-address a list
 * of CIDRs, valid_after < valid_before. QVM_EINVAL saying what is wrong. */
int ssh_cert_spec_check(const ssh_cert_spec *spec, qvm_error **err);

/* Signs spec with the CA's ed25519 secret key (libsodium's 64 bytes):
 * *out is the certificate blob (caller frees, *out_len its length). */
int ssh_cert_sign(unsigned char **out, size_t *out_len, const ssh_cert_spec *spec,
                  const unsigned char ca_sk[crypto_sign_SECRETKEYBYTES], qvm_error **err);

/* What ssh_cert_parse found; strings point into `strings` (NUL-separated,
 * freed by ssh_cert_parsed_clear). */
typedef struct ssh_cert_parsed {
  uint32_t type;
  unsigned char key[crypto_sign_PUBLICKEYBYTES];
  unsigned char ca_key[crypto_sign_PUBLICKEYBYTES];
  uint64_t serial, valid_after, valid_before;
  char *key_id;
  char *principals[SSH_CERT_MAX_PRINCIPALS];
  size_t n_principals;
  char *source_address; /* NULL if absent */
  bool permit_pty;
  size_t n_extensions;
} ssh_cert_parsed;

/* Parses a certificate blob strictly (every length bounded, no trailing
 * bytes, known critical options only, sorted unique option names) and
 * verifies its signature against the CA key it names. QVM_EINVAL names
 * the first thing wrong. Bytes may come from anyone. */
int ssh_cert_parse(ssh_cert_parsed *out, const unsigned char *blob, size_t len, qvm_error **err);
void ssh_cert_parsed_clear(ssh_cert_parsed *p);

/* The public key blob of an ed25519 key: string "ssh-ed25519", string pk. */
void ssh_ed25519_blob(qvm_strbuf *sb, const unsigned char pk[crypto_sign_PUBLICKEYBYTES]);
/* The 32-byte key of an "ssh-ed25519 BASE64 [comment]" line. QVM_EINVAL if
 * the line is another type or malformed. */
int ssh_ed25519_from_line(unsigned char pk[crypto_sign_PUBLICKEYBYTES], const char *line,
                          qvm_error **err);

/* A KRL (PROTOCOL.krl) revoking `serials` (any order, duplicates and 0
 * ignored) of certificates signed by ca_pk, as one certificates section of
 * ranges and lists. */
int ssh_krl_build(qvm_strbuf *out, const unsigned char ca_pk[crypto_sign_PUBLICKEYBYTES],
                  const uint64_t *serials, size_t n, uint64_t krl_version, uint64_t generated_date,
                  qvm_error **err);

/* The key pair inside a qvm_ssh_key (key.c). */
const unsigned char *ssh_key_public_bytes(const qvm_ssh_key *key);
const unsigned char *ssh_key_secret_bytes(const qvm_ssh_key *key);

#endif
