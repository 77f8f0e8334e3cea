/* SPDX-License-Identifier: MIT */
/*
 * A certificate blob can come from anyone (a -cert.pub a user hands over,
 * a guest): parse arbitrary bytes with ssh/cert_parse.c. What parses must
 * hold only bounded, printable strings and a signature that verified, so
 * signing the parsed fields again with a fresh CA must give a blob that
 * parses back to the same fields. The same bytes also go through the
 * public-line reader and, as serials, the KRL writer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ssh/cert.h"

#define FAIL() (fprintf(stderr, "fuzz_cert_parse: check at line %d failed\n", __LINE__), abort())

static void check_parsed(const ssh_cert_parsed *p) {
  if (!p->key_id || strlen(p->key_id) > SSH_CERT_MAX_KEY_ID) FAIL();
  if (p->n_principals > SSH_CERT_MAX_PRINCIPALS) FAIL();
  for (size_t i = 0; i < p->n_principals; i++)
    if (strlen(p->principals[i]) > SSH_CERT_MAX_PRINCIPAL) FAIL();
  if (p->source_address && strlen(p->source_address) > SSH_CERT_MAX_SOURCE_ADDRESS) FAIL();
}

/* Re-signs what parsed (when it passes qvm's own stricter checks). */
static void resign(const ssh_cert_parsed *p) {
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES], *blob = NULL;
  size_t len = 0;
  ssh_cert_spec spec = {.type = p->type,
                        .serial = p->serial,
                        .key_id = p->key_id,
                        .principals = (const char *const *)p->principals,
                        .n_principals = p->n_principals,
                        .valid_after = p->valid_after,
                        .valid_before = p->valid_before,
                        .source_address = p->source_address};
  memcpy(spec.key, p->key, sizeof spec.key);
  if (ssh_cert_spec_check(&spec, NULL) < 0) return;
  crypto_sign_keypair(pk, sk);
  if (ssh_cert_sign(&blob, &len, &spec, sk, NULL) < 0) FAIL();
  ssh_cert_parsed q;
  if (ssh_cert_parse(&q, blob, len, NULL) < 0) FAIL();
  if (q.serial != p->serial || strcmp(q.key_id, p->key_id) || q.n_principals != p->n_principals ||
      memcmp(q.ca_key, pk, sizeof pk))
    FAIL();
  ssh_cert_parsed_clear(&q);
  free(blob);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ssh_cert_parsed p;
  if (sodium_init() < 0) FAIL();
  if (ssh_cert_parse(&p, data, size, NULL) == 0) {
    check_parsed(&p);
    resign(&p);
    ssh_cert_parsed_clear(&p);
  }
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  unsigned char pk[crypto_sign_PUBLICKEYBYTES] = {0};
  ssh_ed25519_from_line(pk, text, NULL);
  free(text);
  size_t n = size / 8 < 4096 ? size / 8 : 4096;
  uint64_t *serials = malloc((n ? n : 1) * sizeof *serials);
  if (!serials) return 0;
  memcpy(serials, data, n * 8);
  qvm_strbuf sb = QVM_STRBUF_INIT;
  if (ssh_krl_build(&sb, pk, serials, n, 1, 1, NULL) < 0) FAIL();
  qvm_strbuf_free(&sb);
  free(serials);
  return 0;
}
