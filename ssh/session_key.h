/* SPDX-License-Identifier: MIT */
#ifndef QVM_SSH_SESSION_KEY_H
#define QVM_SSH_SESSION_KEY_H

/*
 * An ephemeral ECDSA P-256 key for one login with a certificate (qvm's own
 * sessions into sandboxes). It lives in memory only and is wiped after use.
 *
 * Why ECDSA and not ed25519 like every other key of qvm's: libssh2 1.10
 * (Debian 12) names the signature of a certificate login after the
 * certificate's type ("ssh-ed25519-cert-v01@openssh.com"), which sshd
 * rejects, except for ECDSA certificates, whose signature it names
 * "ecdsa-sha2-nistp256" as sshd expects (libssh2's plain_method_len).
 * libssh2 1.11 fixed the others; ECDSA works with both. The CA that signs
 * the certificate stays ed25519.
 */
#include <stddef.h>

#include "util/error.h"

#define SSH_ECDSA_P256_Q_LEN 65 /* 0x04 || X || Y */

typedef struct ssh_session_key {
  char *pem; /* PKCS#8 PEM private key (what libssh2 reads from memory) */
  size_t pem_len;
  unsigned char q[SSH_ECDSA_P256_Q_LEN];
} ssh_session_key;

int ssh_session_key_generate(ssh_session_key *out, qvm_error **err);
/* Wipes and frees the PEM; safe on a zeroed or cleared key. */
void ssh_session_key_clear(ssh_session_key *key);

#endif
