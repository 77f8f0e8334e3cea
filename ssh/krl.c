/* SPDX-License-Identifier: MIT */
/*
 * Key revocation lists (PROTOCOL.krl) revoking certificates by serial:
 *
 *   "SSHKRL\n\0"  uint32 format version (1)  uint64 krl version
 *   uint64 generated date  uint64 flags (0)  string reserved  string comment
 *   then sections: byte type, string data. One certificates section (1):
 *     string ca key blob, string reserved, then sub-sections:
 *     byte 0x21 (serial range) string { uint64 lo, uint64 hi }
 *     byte 0x20 (serial list)  string { uint64 serial ... }
 *
 * Runs of three or more consecutive serials become a range (16 bytes for
 * any length), the rest one list. The KRL names the CA, so it revokes only
 * that CA's certificates.
 */
#include <stdlib.h>
#include <string.h>

#include "ssh/cert.h"
#include "ssh/wire.h"
#include "util/cleanup.h"

#define KRL_MAGIC "SSHKRL\n\0"
#define KRL_FORMAT_VERSION 1
#define KRL_SECTION_CERTIFICATES 1
#define KRL_CERT_SERIAL_LIST 0x20
#define KRL_CERT_SERIAL_RANGE 0x21

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void put_sub(qvm_strbuf *sb, unsigned char type, const qvm_strbuf *data) {
  qvm_strbuf_putc(sb, (char)type);
  ssh_put_string(sb, data->buf, data->len);
}

/* Sorted unique serials (no 0) into the certificate section's body. */
static void put_serials(qvm_strbuf *sect, const uint64_t *s, size_t n) {
  qvm_strbuf list = QVM_STRBUF_INIT, range = QVM_STRBUF_INIT;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j + 1 < n && s[j + 1] == s[j] + 1) j++;
    if (j - i + 1 >= 3) {
      qvm_strbuf_reset(&range);
      ssh_put_u64(&range, s[i]);
      ssh_put_u64(&range, s[j]);
      put_sub(sect, KRL_CERT_SERIAL_RANGE, &range);
    } else {
      for (size_t k = i; k <= j; k++) ssh_put_u64(&list, s[k]);
    }
    i = j + 1;
  }
  if (list.len) put_sub(sect, KRL_CERT_SERIAL_LIST, &list);
  sect->oom = sect->oom || list.oom || range.oom;
  qvm_strbuf_free(&list);
  qvm_strbuf_free(&range);
}

int ssh_krl_build(qvm_strbuf *out, const unsigned char ca_pk[crypto_sign_PUBLICKEYBYTES],
                  const uint64_t *serials, size_t n, uint64_t krl_version, uint64_t generated_date,
                  qvm_error **err) {
  _cleanup_free_ uint64_t *s = NULL;
  size_t m = 0;
  if (n && !(s = malloc(n * sizeof *s))) return qvm_error_set(err, QVM_ESYS, "out of memory");
  for (size_t i = 0; i < n; i++)
    if (serials[i]) s[m++] = serials[i];
  if (m) qsort(s, m, sizeof *s, cmp_u64);
  size_t u = 0;
  for (size_t i = 0; i < m; i++)
    if (u == 0 || s[u - 1] != s[i]) s[u++] = s[i];

  qvm_strbuf_append(out, KRL_MAGIC, 8);
  ssh_put_u32(out, KRL_FORMAT_VERSION);
  ssh_put_u64(out, krl_version);
  ssh_put_u64(out, generated_date);
  ssh_put_u64(out, 0);
  ssh_put_string(out, "", 0);
  ssh_put_cstring(out, "qvm user certificate revocations");
  if (u) {
    qvm_strbuf sect = QVM_STRBUF_INIT, ca = QVM_STRBUF_INIT;
    ssh_ed25519_blob(&ca, ca_pk);
    ssh_put_string(&sect, ca.buf, ca.len);
    ssh_put_string(&sect, "", 0);
    put_serials(&sect, s, u);
    put_sub(out, KRL_SECTION_CERTIFICATES, &sect);
    out->oom = out->oom || sect.oom || ca.oom;
    qvm_strbuf_free(&sect);
    qvm_strbuf_free(&ca);
  }
  return out->oom ? qvm_error_set(err, QVM_ESYS, "out of memory building a krl") : 0;
}
