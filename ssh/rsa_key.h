/* SPDX-License-Identifier: MIT */
#ifndef QVM_SSH_RSA_KEY_H
#define QVM_SSH_RSA_KEY_H

#include <stddef.h>

#include "util/error.h"

typedef struct ssh_rsa_key {
  char *pem; /* PKCS#8 PEM private key, wiped by clear */
  size_t pem_len;
  char *public_line; /* "ssh-rsa BASE64[ COMMENT]" */
} ssh_rsa_key;

/* bits 2048..8192; comment may be NULL (none), must hold no newline. */
int ssh_rsa_generate(ssh_rsa_key *out, unsigned bits, const char *comment, qvm_error **err);
void ssh_rsa_key_clear(ssh_rsa_key *key);

#endif
