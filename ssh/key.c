/* SPDX-License-Identifier: MIT */
/*
 * ed25519 keys in OpenSSH's formats, built from libsodium key pairs.
 *
 * Private key (PROTOCOL.key): "openssh-key-v1\0", cipher "none", kdf "none",
 * empty kdf options, one key, the public blob, then the private section:
 * two equal random check ints, the key type, public key, 64-byte secret
 * (seed || public), comment, and padding 1, 2, 3... to a multiple of 8.
 */
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "ssh/cert.h"
#include "ssh/ssh_internal.h"
#include "util/fs.h"

#define ED25519_TYPE "ssh-ed25519"
#define PEM_BEGIN "-----BEGIN OPENSSH PRIVATE KEY-----\n"
#define PEM_END "-----END OPENSSH PRIVATE KEY-----\n"
#define KEY_MAGIC "openssh-key-v1"
#define MAX_KEY_FILE (64u << 10)
/* What a person can do with a key qvm cannot read itself. */
#define USE_AGENT "add it to ssh-agent ('ssh-add %s') and use the agent (--agent)"

struct qvm_ssh_key {
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  unsigned char sk[crypto_sign_SECRETKEYBYTES];
  char *comment;
  char *private_text;
  char *public_line;
  char fingerprint[64];
};

void qvm_ssh_key_free(qvm_ssh_key *key) {
  if (!key) return;
  sodium_memzero(key->sk, sizeof(key->sk));
  if (key->private_text) sodium_memzero(key->private_text, strlen(key->private_text));
  free(key->private_text);
  free(key->public_line);
  free(key->comment);
  free(key);
}

char *ssh_base64(const unsigned char *data, size_t len) {
  size_t cap = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
  char *out = malloc(cap);
  if (out) sodium_bin2base64(out, cap, data, len, sodium_base64_VARIANT_ORIGINAL);
  return out;
}

int ssh_base64_decode(unsigned char **out, size_t *out_len, const char *text, size_t text_len) {
  _cleanup_free_ unsigned char *bin = malloc(text_len / 4 * 3 + 3);
  size_t n = 0;
  if (!bin) return QVM_ESYS;
  if (sodium_base642bin(bin, text_len / 4 * 3 + 3, text, text_len, "\n", &n, NULL,
                        sodium_base64_VARIANT_ORIGINAL) != 0 &&
      sodium_base642bin(bin, text_len / 4 * 3 + 3, text, text_len, "\n", &n, NULL,
                        sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0)
    return QVM_EINVAL;
  *out = TAKE_PTR(bin);
  *out_len = n;
  return 0;
}

void ssh_blob_fingerprint(char *buf, size_t size, const unsigned char *blob, size_t len) {
  unsigned char hash[crypto_hash_sha256_BYTES];
  char b64[48]; /* 43 characters for 32 bytes, unpadded */
  crypto_hash_sha256(hash, blob, len);
  sodium_bin2base64(b64, sizeof(b64), hash, sizeof(hash),
                    sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
  snprintf(buf, size, "SHA256:%.43s", b64);
}

static void put_u32(qvm_strbuf *sb, uint32_t v) {
  unsigned char b[4] = {v >> 24, v >> 16, v >> 8, v};
  qvm_strbuf_append(sb, b, 4);
}

static void put_string(qvm_strbuf *sb, const void *data, size_t len) {
  put_u32(sb, (uint32_t)len);
  qvm_strbuf_append(sb, data, len);
}

static void put_public_blob(qvm_strbuf *sb, const unsigned char *pk) {
  put_string(sb, ED25519_TYPE, strlen(ED25519_TYPE));
  put_string(sb, pk, crypto_sign_PUBLICKEYBYTES);
}

static void put_private_section(qvm_strbuf *sb, const qvm_ssh_key *key) {
  uint32_t check = randombytes_random();
  put_u32(sb, check);
  put_u32(sb, check);
  put_public_blob(sb, key->pk);
  put_string(sb, key->sk, sizeof(key->sk));
  put_string(sb, key->comment, strlen(key->comment));
  for (unsigned char pad = 1; sb->len % 8 != 0; pad++) qvm_strbuf_putc(sb, (char)pad);
}

static char *pem_wrap(const unsigned char *bin, size_t len) {
  _cleanup_free_ char *b64 = ssh_base64(bin, len);
  qvm_strbuf sb = QVM_STRBUF_INIT;
  if (!b64) return NULL;
  qvm_strbuf_puts(&sb, PEM_BEGIN);
  for (size_t i = 0, n = strlen(b64); i < n; i += 70) {
    qvm_strbuf_append(&sb, b64 + i, n - i < 70 ? n - i : 70);
    qvm_strbuf_putc(&sb, '\n');
  }
  qvm_strbuf_puts(&sb, PEM_END);
  return qvm_strbuf_steal(&sb);
}

static int key_render(qvm_ssh_key *key, qvm_error **err) {
  qvm_strbuf file = QVM_STRBUF_INIT, section = QVM_STRBUF_INIT, blob = QVM_STRBUF_INIT;
  int r = 0;
  put_public_blob(&blob, key->pk);
  put_private_section(&section, key);
  qvm_strbuf_append(&file, KEY_MAGIC, sizeof(KEY_MAGIC)); /* with its NUL */
  put_string(&file, "none", 4);
  put_string(&file, "none", 4);
  put_string(&file, "", 0);
  put_u32(&file, 1);
  put_string(&file, blob.buf, blob.len);
  put_string(&file, section.buf, section.len);
  if (!file.oom && !blob.oom && !section.oom) {
    _cleanup_free_ char *b64 = ssh_base64((unsigned char *)blob.buf, blob.len);
    key->private_text = pem_wrap((unsigned char *)file.buf, file.len);
    if (b64 && asprintf(&key->public_line, ED25519_TYPE " %s%s%s", b64, *key->comment ? " " : "",
                        key->comment) < 0)
      key->public_line = NULL;
    ssh_blob_fingerprint(key->fingerprint, sizeof(key->fingerprint), (unsigned char *)blob.buf,
                         blob.len);
  }
  if (!key->private_text || !key->public_line)
    r = qvm_error_set(err, QVM_ESYS, "out of memory rendering ssh key");
  if (section.buf) sodium_memzero(section.buf, section.len);
  if (file.buf) sodium_memzero(file.buf, file.len);
  qvm_strbuf_free(&file);
  qvm_strbuf_free(&section);
  qvm_strbuf_free(&blob);
  return r;
}

static int key_new(qvm_ssh_key **out, const char *comment, qvm_error **err) {
  if (!comment) comment = "";
  if (strpbrk(comment, "\r\n"))
    return qvm_error_set(err, QVM_EINVAL, "key comment '%s' contains a newline", comment);
  if (sodium_init() < 0) return qvm_error_set(err, QVM_ESYS, "libsodium failed to initialize");
  qvm_ssh_key *key = calloc(1, sizeof(*key));
  if (!key || !(key->comment = strdup(comment))) {
    free(key);
    return qvm_error_set(err, QVM_ESYS, "out of memory");
  }
  *out = key;
  return 0;
}

int qvm_ssh_key_generate(qvm_ssh_key **out, const char *comment, qvm_error **err) {
  _cleanup_(qvm_ssh_key_freep) qvm_ssh_key *key = NULL;
  int r = key_new(&key, comment, err);
  if (r < 0) return r;
  crypto_sign_keypair(key->pk, key->sk);
  r = key_render(key, err);
  if (r < 0) return r;
  *out = TAKE_PTR(key);
  return 0;
}

/* A bounds-checked reader over the decoded key file. */
typedef struct cursor {
  const unsigned char *p;
  size_t left;
} cursor;

static bool get_u32(cursor *c, uint32_t *v) {
  if (c->left < 4) return false;
  *v = (uint32_t)c->p[0] << 24 | (uint32_t)c->p[1] << 16 | (uint32_t)c->p[2] << 8 | c->p[3];
  c->p += 4;
  c->left -= 4;
  return true;
}

static bool get_string(cursor *c, const unsigned char **s, size_t *len) {
  uint32_t n;
  if (!get_u32(c, &n) || n > c->left) return false;
  *s = c->p;
  *len = n;
  c->p += n;
  c->left -= n;
  return true;
}

static bool string_is(const unsigned char *s, size_t len, const char *want) {
  return len == strlen(want) && memcmp(s, want, len) == 0;
}

static int parse_private_section(qvm_ssh_key *key, cursor c, const char *path, qvm_error **err) {
  uint32_t check1, check2;
  const unsigned char *type, *pk, *sk, *comment;
  size_t type_len, pk_len, sk_len, comment_len;
  if (!get_u32(&c, &check1) || !get_u32(&c, &check2) || check1 != check2 ||
      !get_string(&c, &type, &type_len) || !string_is(type, type_len, ED25519_TYPE) ||
      !get_string(&c, &pk, &pk_len) || pk_len != sizeof(key->pk) || !get_string(&c, &sk, &sk_len) ||
      sk_len != sizeof(key->sk) || !get_string(&c, &comment, &comment_len) ||
      memcmp(sk + 32, pk, 32) != 0)
    return qvm_error_set(err, QVM_EINVAL, "key '%s' has a malformed ed25519 private section", path);
  memcpy(key->pk, pk, pk_len);
  memcpy(key->sk, sk, sk_len);
  free(key->comment);
  /* Not strndup: the comment ends the blob and is not NUL-terminated. */
  key->comment = malloc(comment_len + 1);
  if (!key->comment) return qvm_error_set(err, QVM_ESYS, "out of memory");
  memcpy(key->comment, comment, comment_len);
  key->comment[comment_len] = 0;
  if (strlen(key->comment) != comment_len || strpbrk(key->comment, "\r\n")) key->comment[0] = 0;
  return 0;
}

static int parse_key_file(qvm_ssh_key *key, const unsigned char *bin, size_t len, const char *path,
                          qvm_error **err) {
  cursor c = {bin, len}, section;
  const unsigned char *cipher, *kdf, *kdfopts, *blob;
  size_t cipher_len, kdf_len, kdfopts_len, blob_len;
  uint32_t nkeys;
  if (len < sizeof(KEY_MAGIC) || memcmp(bin, KEY_MAGIC, sizeof(KEY_MAGIC)) != 0)
    return qvm_error_set(err, QVM_EINVAL, "key '%s' is not an openssh-key-v1 key", path);
  c.p += sizeof(KEY_MAGIC);
  c.left -= sizeof(KEY_MAGIC);
  if (!get_string(&c, &cipher, &cipher_len) || !get_string(&c, &kdf, &kdf_len) ||
      !get_string(&c, &kdfopts, &kdfopts_len) || !get_u32(&c, &nkeys))
    return qvm_error_set(err, QVM_EINVAL, "key '%s' is truncated", path);
  if (!string_is(cipher, cipher_len, "none") || !string_is(kdf, kdf_len, "none"))
    return qvm_error_set(err, QVM_EINVAL,
                         "key '%s' is encrypted (it has a passphrase), which qvm cannot ask "
                         "for: " USE_AGENT,
                         path, path);
  if (nkeys != 1) return qvm_error_set(err, QVM_EINVAL, "key '%s' holds %u keys", path, nkeys);
  if (!get_string(&c, &blob, &blob_len) || !get_string(&c, &section.p, &section.left))
    return qvm_error_set(err, QVM_EINVAL, "key '%s' is truncated", path);
  cursor bc = {blob, blob_len};
  const unsigned char *type;
  size_t type_len;
  if (get_string(&bc, &type, &type_len) && !string_is(type, type_len, ED25519_TYPE))
    return qvm_error_set(err, QVM_EINVAL,
                         "key '%s' is a %.*s key; qvm reads only ed25519 key files: " USE_AGENT,
                         path, (int)(type_len < 64 ? type_len : 64), (const char *)type, path);
  return parse_private_section(key, section, path, err);
}

static int pem_decode(unsigned char **out, size_t *out_len, const char *text, const char *path,
                      qvm_error **err) {
  const char *begin = strstr(text, PEM_BEGIN), *end;
  if (!begin && strstr(text, "-----BEGIN "))
    return qvm_error_set(err, QVM_EINVAL,
                         "key '%s' is not in the openssh format qvm reads (only unencrypted "
                         "ed25519): " USE_AGENT,
                         path, path);
  if (!begin) return qvm_error_set(err, QVM_EINVAL, "key '%s' is not an openssh private key", path);
  begin += strlen(PEM_BEGIN);
  end = strstr(begin, "-----END OPENSSH PRIVATE KEY-----");
  if (!end) return qvm_error_set(err, QVM_EINVAL, "key '%s' has no end marker", path);
  if (ssh_base64_decode(out, out_len, begin, (size_t)(end - begin)) < 0)
    return qvm_error_set(err, QVM_EINVAL, "key '%s' has invalid base64", path);
  return 0;
}

int qvm_ssh_key_load(qvm_ssh_key **out, const char *private_path, qvm_error **err) {
  _cleanup_(qvm_ssh_key_freep) qvm_ssh_key *key = NULL;
  _cleanup_free_ char *text = NULL;
  _cleanup_free_ unsigned char *bin = NULL;
  size_t len = 0, bin_len = 0;
  int r = qvm_read_file(&text, &len, private_path, MAX_KEY_FILE, err);
  if (r < 0) return r;
  r = key_new(&key, "", err);
  if (r >= 0) r = pem_decode(&bin, &bin_len, text, private_path, err);
  if (r >= 0) r = parse_key_file(key, bin, bin_len, private_path, err);
  if (bin) sodium_memzero(bin, bin_len);
  sodium_memzero(text, len);
  if (r < 0) return r;
  r = key_render(key, err);
  if (r < 0) return r;
  *out = TAKE_PTR(key);
  return 0;
}

const char *qvm_ssh_key_private_text(const qvm_ssh_key *key) { return key->private_text; }
const char *qvm_ssh_key_public_line(const qvm_ssh_key *key) { return key->public_line; }
const char *qvm_ssh_key_fingerprint(const qvm_ssh_key *key) { return key->fingerprint; }

int qvm_ssh_key_write(const qvm_ssh_key *key, const char *private_path, const char *public_path,
                      qvm_error **err) {
  _cleanup_free_ char *pub_default = NULL, *pub_text = NULL;
  if (!public_path) {
    if (asprintf(&pub_default, "%s.pub", private_path) < 0) pub_default = NULL;
    public_path = pub_default;
  }
  if (!public_path || asprintf(&pub_text, "%s\n", key->public_line) < 0)
    return qvm_error_set(err, QVM_ESYS, "out of memory");
  int r =
      qvm_write_file_atomic(private_path, key->private_text, strlen(key->private_text), 0600, err);
  if (r < 0) return qvm_error_prefix(err, "cannot write ssh key '%s'", private_path);
  r = qvm_write_file_atomic(public_path, pub_text, strlen(pub_text), 0644, err);
  if (r < 0) return qvm_error_prefix(err, "cannot write ssh public key '%s'", public_path);
  return 0;
}

/* Splits "type base64 [comment]" into its blob; *type_len is the type's. */
int qvm_ssh_public_line_fingerprint(char **out, const char *public_line, qvm_error **err) {
  const char *b64 = strchr(public_line, ' ');
  _cleanup_free_ unsigned char *blob = NULL;
  size_t blob_len = 0, b64_len;
  char fp[64];
  if (!b64)
    return qvm_error_set(err, QVM_EINVAL, "public key '%.40s' has no key data", public_line);
  b64++;
  b64_len = strcspn(b64, " \t\r\n");
  if (b64_len == 0 || ssh_base64_decode(&blob, &blob_len, b64, b64_len) < 0)
    return qvm_error_set(err, QVM_EINVAL, "public key '%.40s' has invalid base64", public_line);
  ssh_blob_fingerprint(fp, sizeof(fp), blob, blob_len);
  *out = strdup(fp);
  return *out ? 0 : qvm_error_set(err, QVM_ESYS, "out of memory");
}

static const char *const public_types[] = {
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-dss",
};

int qvm_ssh_public_line_check(const char *line, qvm_error **err) {
  size_t type_len = strcspn(line, " \t\r\n"), b64_len, blob_len = 0, inner_len = 0;
  const char *b64 = line + type_len;
  const unsigned char *inner;
  _cleanup_free_ unsigned char *blob = NULL;
  bool known = false;
  if (!strncmp(line, "-----BEGIN", 10))
    return qvm_error_set(err, QVM_EINVAL,
                         "a private key, not a public key line: give the .pub file");
  for (size_t i = 0; i < sizeof public_types / sizeof public_types[0]; i++)
    known =
        known || (type_len == strlen(public_types[i]) && !strncmp(line, public_types[i], type_len));
  if (!known)
    return qvm_error_set(err, QVM_EINVAL,
                         "not a public key line: it must start with a key type such as "
                         "'ssh-ed25519' or 'ssh-rsa' (as in a .pub file)");
  b64 += strspn(b64, " \t");
  b64_len = strcspn(b64, " \t\r\n");
  if (b64_len == 0 || ssh_base64_decode(&blob, &blob_len, b64, b64_len) < 0)
    return qvm_error_set(err, QVM_EINVAL, "the %.*s key data is missing or not base64",
                         (int)type_len, line);
  cursor c = {blob, blob_len};
  if (!get_string(&c, &inner, &inner_len) || inner_len != type_len ||
      memcmp(inner, line, type_len) != 0 || c.left == 0)
    return qvm_error_set(err, QVM_EINVAL, "the key data is not a %.*s key (truncated or mangled?)",
                         (int)type_len, line);
  return 0;
}

const unsigned char *ssh_key_public_bytes(const qvm_ssh_key *key) { return key->pk; }
const unsigned char *ssh_key_secret_bytes(const qvm_ssh_key *key) { return key->sk; }
