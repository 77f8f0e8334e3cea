/* SPDX-License-Identifier: MIT */
/*
 * Spec checks, the user's parts, meta-data and network-config (version 2).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seed/seed_internal.h"
#include "seed/yaml_out.h"
#include "util/cleanup.h"
#include "util/fs.h"

static bool all_chars(const char *s, const char *extra) {
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && !strchr(extra, *s)) return false;
  return true;
}

static int check_hostname(const char *what, const char *h, bool dots, qvm_error **err) {
  size_t len = h ? strlen(h) : 0;
  if (len == 0 || len > (dots ? 253u : 63u) || !all_chars(h, dots ? "-." : "-") || h[0] == '-' ||
      h[0] == '.' || h[len - 1] == '-' || h[len - 1] == '.')
    return qvm_error_set(err, QVM_EINVAL, "%s '%s' is invalid", what, h ? h : "");
  return 0;
}

static int check_user(const qvm_seed_user *u, qvm_error **err) {
  const char *n = u->name ? u->name : "";
  size_t len = strlen(n);
  if (len == 0 || len > 32 || !(islower((unsigned char)n[0]) || n[0] == '_') ||
      strspn(n, "abcdefghijklmnopqrstuvwxyz0123456789_-") != len)
    return qvm_error_set(err, QVM_EINVAL, "user name '%s' is invalid", n);
  return 0;
}

static int check_host_key(const qvm_seed_host_key *k, qvm_error **err) {
  static const char *const types[] = {"ed25519", "ecdsa", "rsa"};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (k->type && !strcmp(k->type, types[i])) {
      if (!k->private_key || !k->public_key)
        return qvm_error_set(err, QVM_EINVAL, "host key '%s' needs both halves", k->type);
      return 0;
    }
  return qvm_error_set(err, QVM_EINVAL, "host key type '%s' is not ed25519, ecdsa or rsa",
                       k->type ? k->type : "");
}

/* Version 1 callers (a shorter struct: no growpart_off) are accepted; their
 * fields after epoch are never read (seed_spec_growpart_off). */
static int version_check(const qvm_seed_spec *spec, qvm_error **err) {
  if (spec && spec->version == 1) return 0;
  return QVM_OPTIONS_CHECK(spec, qvm_seed_spec, QVM_SEED_SPEC_VERSION, err);
}

bool seed_spec_growpart_off(const qvm_seed_spec *spec) {
  return spec->version >= 2 && spec->growpart_off;
}

int seed_spec_check(const qvm_seed_spec *spec, qvm_error **err) {
  int r = version_check(spec, err);
  if (r < 0) return r;
  const char *id = spec->instance_id ? spec->instance_id : "";
  if (!*id || strlen(id) > 128 || !all_chars(id, "._:-"))
    return qvm_error_set(err, QVM_EINVAL, "instance-id '%s' must be 1-128 of [A-Za-z0-9._:-]", id);
  r = check_hostname("hostname", spec->hostname, false, err);
  if (r == 0 && spec->fqdn) r = check_hostname("fqdn", spec->fqdn, true, err);
  for (size_t i = 0; r == 0 && i < spec->n_users; i++) r = check_user(&spec->users[i], err);
  for (size_t i = 0; r == 0 && i < spec->n_host_keys; i++)
    r = check_host_key(&spec->host_keys[i], err);
  for (size_t i = 0; r == 0 && i < spec->n_write_files; i++) {
    const char *p = spec->write_files[i].path;
    if (!p || p[0] != '/')
      r = qvm_error_set(err, QVM_EINVAL, "write_files path '%s' is not absolute", p ? p : "");
  }
  return r;
}

int seed_user_part(char **out, size_t *out_len, const char **out_name, const char *data, size_t len,
                   const char *name, const char *path, qvm_error **err) {
  *out = NULL;
  *out_len = 0;
  if (path) {
    int r = qvm_read_file(out, out_len, path, QVM_SEED_MAX_USER_FILE, err);
    if (r < 0) return r;
    *out_name = path;
    return 0;
  }
  if (!data) return 0;
  if (len > QVM_SEED_MAX_USER_FILE)
    return qvm_error_set(err, QVM_EINVAL, "'%s' is larger than %u bytes", name ? name : "input",
                         QVM_SEED_MAX_USER_FILE);
  if (!(*out = malloc(len + 1))) return qvm_error_set(err, QVM_ESYS, "out of memory");
  memcpy(*out, data, len);
  (*out)[len] = 0;
  *out_len = len;
  *out_name = name ? name : "user cloud-config";
  return 0;
}

char *seed_base64(const void *data, size_t len) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const unsigned char *p = data;
  char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
  if (!out) return NULL;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < len) v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < len) v |= p[i + 2];
    *o++ = tab[v >> 18];
    *o++ = tab[(v >> 12) & 63];
    *o++ = i + 1 < len ? tab[(v >> 6) & 63] : '=';
    *o++ = i + 2 < len ? tab[v & 63] : '=';
  }
  *o = 0;
  return out;
}

int qvm_seed_render_meta_data(char **out, size_t *out_len, const qvm_seed_spec *spec,
                              qvm_error **err) {
  int r = seed_spec_check(spec, err);
  if (r < 0) return r;
  yaml_out y;
  yaml_out_begin(&y, NULL);
  yaml_out_map_begin(&y);
  yaml_out_kv(&y, "instance-id", spec->instance_id);
  yaml_out_kv(&y, "local-hostname", spec->hostname);
  yaml_out_map_end(&y);
  return yaml_out_finish(&y, out, out_len, "meta-data", err);
}

static bool is_mac(const char *m) {
  if (!m || strlen(m) != 17) return false;
  for (int i = 0; i < 17; i++)
    if (i % 3 == 2 ? m[i] != ':' : !isxdigit((unsigned char)m[i])) return false;
  return true;
}

static bool is_ip(const char *s) {
  unsigned char buf[16];
  return s && (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1);
}

static bool is_cidr(const char *s) {
  const char *slash = s ? strchr(s, '/') : NULL;
  if (!slash || slash - s >= 64 || !slash[1] || strlen(slash + 1) > 3) return false;
  char addr[64];
  memcpy(addr, s, (size_t)(slash - s));
  addr[slash - s] = 0;
  unsigned char buf[16];
  bool v4 = inet_pton(AF_INET, addr, buf) == 1, v6 = inet_pton(AF_INET6, addr, buf) == 1;
  if (strspn(slash + 1, "0123456789") != strlen(slash + 1)) return false;
  int prefix = atoi(slash + 1);
  return (v4 && prefix <= 32) || (v6 && prefix <= 128);
}

static int check_network(const qvm_seed_network *n, qvm_error **err) {
  if (!is_mac(n->mac))
    return qvm_error_set(err, QVM_EINVAL, "mac '%s' is invalid", n->mac ? n->mac : "");
  if (n->dhcp4) return 0;
  if (!is_cidr(n->address))
    return qvm_error_set(err, QVM_EINVAL, "address '%s' is not ADDRESS/PREFIX",
                         n->address ? n->address : "");
  if (n->gateway && !is_ip(n->gateway))
    return qvm_error_set(err, QVM_EINVAL, "gateway '%s' is invalid", n->gateway);
  for (size_t i = 0; i < n->n_nameservers; i++)
    if (!is_ip(n->nameservers[i]))
      return qvm_error_set(err, QVM_EINVAL, "nameserver '%s' is invalid",
                           n->nameservers[i] ? n->nameservers[i] : "");
  return 0;
}

static void emit_static(yaml_out *y, const qvm_seed_network *n) {
  yaml_out_key(y, "addresses");
  yaml_out_seq_begin(y, false);
  yaml_out_str(y, n->address);
  yaml_out_seq_end(y);
  if (n->gateway) {
    yaml_out_key(y, "routes");
    yaml_out_seq_begin(y, false);
    yaml_out_map_begin(y);
    yaml_out_kv(y, "to", strchr(n->gateway, ':') ? "::/0" : "0.0.0.0/0");
    yaml_out_kv(y, "via", n->gateway);
    yaml_out_map_end(y);
    yaml_out_seq_end(y);
  }
  if (n->n_nameservers) {
    yaml_out_key(y, "nameservers");
    yaml_out_map_begin(y);
    yaml_out_kv_list(y, "addresses", n->nameservers, n->n_nameservers);
    yaml_out_map_end(y);
  }
}

int qvm_seed_render_network_config(char **out, size_t *out_len, const qvm_seed_spec *spec,
                                   qvm_error **err) {
  int r = version_check(spec, err);
  if (r < 0) return r;
  const qvm_seed_network *n = spec->network;
  if (!n) return qvm_error_set(err, QVM_EINVAL, "the spec has no network");
  r = check_network(n, err);
  if (r < 0) return r;
  char mac[18];
  for (int i = 0; i < 18; i++) mac[i] = (char)tolower((unsigned char)n->mac[i]);
  yaml_out y;
  yaml_out_begin(&y, NULL);
  yaml_out_map_begin(&y);
  yaml_out_key(&y, "version");
  yaml_out_key(&y, "2"); /* a program-chosen token: plain, read back as the integer */
  yaml_out_key(&y, "ethernets");
  yaml_out_map_begin(&y);
  yaml_out_key(&y, "qvm0");
  yaml_out_map_begin(&y);
  yaml_out_key(&y, "match");
  yaml_out_map_begin(&y);
  yaml_out_kv(&y, "macaddress", mac);
  yaml_out_map_end(&y);
  yaml_out_kv_bool(&y, "dhcp4", n->dhcp4);
  if (!n->dhcp4) emit_static(&y, n);
  /* DHCP (qvm's own VMs): IPv4 only, no IPv6 link-local address. With one,
   * systemd-networkd-wait-online, and with it cloud-init's init stage and
   * sshd, waited 1-2 s for the address's duplicate detection; qvm's
   * networks give guests no IPv6 (slirp's aside). A static configuration
   * keeps what the user gave. */
  if (n->dhcp4) {
    yaml_out_key(&y, "link-local");
    yaml_out_seq_begin(&y, true);
    yaml_out_seq_end(&y);
  }
  yaml_out_map_end(&y);
  yaml_out_map_end(&y);
  yaml_out_map_end(&y);
  return yaml_out_finish(&y, out, out_len, "network-config", err);
}
