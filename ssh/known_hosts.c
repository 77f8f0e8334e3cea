/* SPDX-License-Identifier: MIT */
/*
 * Per-VM known_hosts, owned by qvm. Each VM has its own file holding just its
 * host key(s) under the VM's name as host pattern ("<alias> <type> <base64>").
 * qvm matches on the key alone, whatever address the VM is reached at today
 * (slirp ports and DHCP addresses change; the key is what identifies the VM).
 * OpenSSH reads the same file with HostKeyAlias=<alias>.
 *
 * The file is qvm-written but parsed defensively: size cap, strict fields,
 * errors name the line.
 */
#include <string.h>

#include "ssh/ssh_internal.h"
#include "util/fs.h"

#define MAX_KNOWN_HOSTS (256u << 10)
#define TOFU_ALGORITHMS                                                                            \
  "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,ssh-rsa"

typedef struct pinned_key {
  char type[64];
  unsigned char *blob;
  size_t blob_len;
} pinned_key;

typedef struct pinned_set {
  pinned_key keys[16];
  size_t n;
} pinned_set;

static void pinned_set_clear(pinned_set *set) {
  for (size_t i = 0; i < set->n; i++) free(set->keys[i].blob);
  set->n = 0;
}

static bool alias_valid(const char *s) {
  if (!s || !*s || strlen(s) > 128) return false;
  return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
         strlen(s);
}

/* The key type named inside a blob (its first SSH string), or false. */
static bool blob_type(char *type, size_t size, const unsigned char *blob, size_t len) {
  if (len < 4) return false;
  uint32_t n = (uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 | (uint32_t)blob[2] << 8 | blob[3];
  if (n == 0 || n >= size || n > len - 4) return false;
  memcpy(type, blob + 4, n);
  type[n] = 0;
  return strspn(type, "abcdefghijklmnopqrstuvwxyz0123456789@.-") == n;
}

static int parse_line(pinned_set *set, char *line, const char *path, size_t lineno,
                      qvm_error **err) {
  char *save = NULL, *host = strtok_r(line, " \t", &save);
  char *type = host ? strtok_r(NULL, " \t", &save) : NULL;
  char *b64 = type ? strtok_r(NULL, " \t", &save) : NULL;
  pinned_key *key = &set->keys[set->n];
  if (!host || *host == '#') return 0;
  if (*host == '@' || !b64)
    return qvm_error_set(err, QVM_EINVAL, "known_hosts '%s' line %zu is malformed", path, lineno);
  if (set->n == QVM_ARRAY_SIZE(set->keys))
    return qvm_error_set(err, QVM_EINVAL, "known_hosts '%s' has too many entries", path);
  if (ssh_base64_decode(&key->blob, &key->blob_len, b64, strlen(b64)) < 0)
    return qvm_error_set(err, QVM_EINVAL, "known_hosts '%s' line %zu has invalid base64", path,
                         lineno);
  set->n++;
  if (!blob_type(key->type, sizeof(key->type), key->blob, key->blob_len) ||
      strcmp(key->type, type) != 0)
    return qvm_error_set(err, QVM_EINVAL, "known_hosts '%s' line %zu: key type '%.40s' is wrong",
                         path, lineno, type);
  return 0;
}

static int pinned_load(pinned_set *set, const char *path, qvm_error **err) {
  _cleanup_free_ char *text = NULL;
  size_t len = 0, lineno = 0;
  qvm_error *local = NULL;
  if (qvm_read_file(&text, &len, path, MAX_KNOWN_HOSTS, &local) < 0) {
    bool missing = qvm_error_code(local) == QVM_ENOTFOUND;
    if (missing) {
      qvm_error_free(local);
      return 0;
    }
    return qvm_error_propagate(err, local);
  }
  if (memchr(text, 0, len))
    return qvm_error_set(err, QVM_EINVAL, "known_hosts '%s' contains a NUL byte", path);
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    lineno++;
    line[strcspn(line, "\r")] = 0;
    int r = parse_line(set, line, path, lineno, err);
    if (r < 0) return r;
  }
  return 0;
}

char *ssh_known_hosts_algorithms(const char *path) {
  pinned_set set = {0};
  qvm_strbuf sb = QVM_STRBUF_INIT;
  if (pinned_load(&set, path, NULL) < 0 || set.n == 0) {
    pinned_set_clear(&set);
    return NULL;
  }
  for (size_t i = 0; i < set.n; i++) {
    char pattern[80];
    snprintf(pattern, sizeof(pattern), ",%s,", set.keys[i].type);
    if (sb.buf && strstr(sb.buf, pattern)) continue;
    qvm_strbuf_printf(&sb, "%s%s", sb.len ? "" : ",", set.keys[i].type);
    qvm_strbuf_putc(&sb, ',');
  }
  pinned_set_clear(&set);
  char *list = qvm_strbuf_steal(&sb);
  if (list && *list) { /* ",a,b," -> "a,b" */
    memmove(list, list + 1, strlen(list));
    list[strlen(list) - 1] = 0;
  }
  return list;
}

static int pin_write(const char *path, const char *alias, const char *type,
                     const unsigned char *blob, size_t blob_len, qvm_error **err) {
  _cleanup_free_ char *b64 = ssh_base64(blob, blob_len), *line = NULL;
  if (!alias_valid(alias))
    return qvm_error_set(err, QVM_EINVAL, "known_hosts alias '%s' is invalid", alias ? alias : "");
  if (!b64 || asprintf(&line, "%s %s %s\n", alias, type, b64) < 0)
    return qvm_error_set(err, QVM_ESYS, "out of memory");
  return qvm_write_file_atomic(path, line, strlen(line), 0600, err);
}

int qvm_ssh_known_hosts_pin(const char *known_hosts, const char *alias, const char *public_line,
                            qvm_error **err) {
  const char *b64 = strchr(public_line, ' ');
  _cleanup_free_ unsigned char *blob = NULL;
  size_t blob_len = 0;
  char type[64];
  if (b64 && ssh_base64_decode(&blob, &blob_len, b64 + 1, strcspn(b64 + 1, " \t\r\n")) == 0 &&
      blob_type(type, sizeof(type), blob, blob_len) &&
      strncmp(public_line, type, strlen(type)) == 0 && public_line[strlen(type)] == ' ')
    return pin_write(known_hosts, alias, type, blob, blob_len, err);
  return qvm_error_set(err, QVM_EINVAL, "public key '%.40s' is malformed", public_line);
}

const char *ssh_host_alias(const qvm_ssh_options *opts) {
  return opts->vm_name ? opts->vm_name : "qvm";
}

static int mismatch_error(const pinned_set *set, const char *presented, const char *type,
                          const qvm_ssh_options *opts, qvm_error **err) {
  char pinned[64];
  ssh_blob_fingerprint(pinned, sizeof(pinned), set->keys[0].blob, set->keys[0].blob_len);
  int r = qvm_error_set(err, QVM_EAUTH,
                        "host key of vm '%s' does not match the pinned key: pinned %s (%s), "
                        "presented %s (%s) at %s:%d; refusing to connect (re-pin explicitly if "
                        "the guest's key really changed)",
                        ssh_host_alias(opts), pinned, set->keys[0].type, presented, type,
                        opts->host, opts->port);
  if (err && *err) qvm_error_set_class(*err, "HostKeyMismatch");
  return r;
}

int ssh_check_host_key(qvm_ssh *ssh, const qvm_ssh_options *opts, qvm_error **err) {
  size_t len = 0;
  int kind = 0;
  const unsigned char *blob =
      (const unsigned char *)libssh2_session_hostkey(ssh->session, &len, &kind);
  char type[64];
  pinned_set set = {0};
  int r;
  if (!blob || !blob_type(type, sizeof(type), blob, len))
    return qvm_error_set(err, QVM_EPROTO, "vm '%s' presented no usable host key",
                         ssh_host_alias(opts));
  ssh_blob_fingerprint(ssh->host_fingerprint, sizeof(ssh->host_fingerprint), blob, len);
  r = pinned_load(&set, opts->known_hosts, err);
  if (r < 0) {
    pinned_set_clear(&set);
    return r;
  }
  bool match = false;
  for (size_t i = 0; i < set.n && !match; i++)
    match = set.keys[i].blob_len == len && memcmp(set.keys[i].blob, blob, len) == 0;
  if (match)
    r = 0;
  else if (opts->hostkey_policy == QVM_SSH_HOSTKEY_REPIN ||
           (set.n == 0 && opts->hostkey_policy == QVM_SSH_HOSTKEY_TOFU))
    r = pin_write(opts->known_hosts, ssh_host_alias(opts), type, blob, len, err);
  else if (set.n > 0)
    r = mismatch_error(&set, ssh->host_fingerprint, type, opts, err);
  else {
    r = qvm_error_set(err, QVM_EAUTH,
                      "no host key is pinned for vm '%s' in '%s' (presented %s); refusing to "
                      "connect",
                      ssh_host_alias(opts), opts->known_hosts, ssh->host_fingerprint);
    if (err && *err) qvm_error_set_class(*err, "HostKeyUnknown");
  }
  pinned_set_clear(&set);
  return r;
}

const char *ssh_tofu_algorithms(void) { return TOFU_ALGORITHMS; }
