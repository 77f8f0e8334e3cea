/* SPDX-License-Identifier: MIT */
/*
 * The OpenSSH command line and ssh_config stanza equivalent to a session.
 *
 * Both are read by something that interprets them: a shell (`eval "$(qvm ssh
 * vm --print)"`) and ssh's config parser. The host may come from the guest
 * (its agent's or DHCP client's idea of its address), so every value is
 * checked against what its reader can carry, and refused otherwise, never
 * passed through: a host is an IP literal or a plain DNS name, a user and an
 * alias are plain words, paths carry no quote, backslash, '%' (ssh's token
 * character) or control character. The command line is shell-quoted on top.
 */
#include <arpa/inet.h>
#include <string.h>

#include "ssh/ssh_internal.h"

#define WORD_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

/* An IPv4 or IPv6 literal, or a DNS name (letters, digits, '.', '-'). */
static bool host_valid(const char *h) {
  unsigned char addr[16];
  if (inet_pton(AF_INET, h, addr) == 1 || inet_pton(AF_INET6, h, addr) == 1) return true;
  size_t n = strlen(h);
  return n > 0 && n <= 253 && h[0] != '-' && h[0] != '.' &&
         strspn(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-") == n;
}

/* A user name or host alias: one word that is no option and no pattern. */
static bool word_valid(const char *w) {
  size_t n = strlen(w);
  return n > 0 && n <= 64 && w[0] != '-' && strspn(w, WORD_CHARS) == n;
}

/* A path ssh_config can carry in double quotes, with no token expansion. */
static bool path_valid(const char *p) {
  if (!*p) return false;
  for (const unsigned char *c = (const unsigned char *)p; *c; c++)
    if (*c < 0x20 || *c == 0x7f || *c == '"' || *c == '\\' || *c == '%') return false;
  return true;
}

/* Needs double quotes in ssh_config (whitespace, quotes, '#', '=' ...). */
static bool path_plain(const char *p) { return strspn(p, WORD_CHARS "/+,:@~") == strlen(p); }

static int check(const qvm_ssh_options *in, qvm_error **err) {
  qvm_ssh_options o;
  const qvm_ssh_options *opts = &o;
  int r = ssh_options_copy(&o, in, err);
  if (r < 0) return r;
  if (o.certificate)
    return qvm_error_set(err, QVM_EINVAL,
                         "vm '%s' takes qvm's short-lived certificates only, no key file: for "
                         "OpenSSH, issue one (qvm cert issue %s -o FILE) and use ssh -i FILE",
                         ssh_host_alias(opts), ssh_host_alias(opts));
  if (!opts->host || !opts->known_hosts || !opts->identity)
    return qvm_error_set(err, QVM_EINVAL, "openssh equivalent needs host, key and known_hosts");
  const char *user = opts->user ? opts->user : "root", *alias = ssh_host_alias(opts);
  if (!host_valid(opts->host))
    return qvm_error_set(err, QVM_EINVAL,
                         "address of vm '%s' is not an ip address or host name: refusing to "
                         "print it for ssh",
                         alias);
  if (!word_valid(user))
    return qvm_error_set(err, QVM_EINVAL, "user '%s' cannot be given to ssh", user);
  if (!word_valid(alias))
    return qvm_error_set(err, QVM_EINVAL, "host alias '%s' cannot be given to ssh", alias);
  if (opts->port < 0 || opts->port > 65535)
    return qvm_error_set(err, QVM_EINVAL, "port %d is out of range", opts->port);
  if (!path_valid(opts->identity) || !path_valid(opts->known_hosts))
    return qvm_error_set(err, QVM_EINVAL,
                         "path '%s' or '%s' holds a character ssh_config cannot carry (a quote, "
                         "backslash, '%%' or control character)",
                         opts->identity, opts->known_hosts);
  return 0;
}

/* A path as an ssh_config value: as is, or in double quotes. */
static void config_path(qvm_strbuf *sb, const char *path) {
  if (path_plain(path))
    qvm_strbuf_puts(sb, path);
  else
    qvm_strbuf_printf(sb, "\"%s\"", path);
}

/* "-o KEY=PATH" for the shell: ssh parses the value like a config line. */
static void option_path(qvm_strbuf *sb, const char *key, const char *path) {
  qvm_strbuf value = QVM_STRBUF_INIT;
  config_path(&value, path);
  qvm_strbuf_printf(sb, " -o %s=", key);
  ssh_shell_quote(sb, value.buf ? value.buf : "");
  qvm_strbuf_free(&value);
}

int qvm_ssh_openssh_command(char **out, const qvm_ssh_options *opts, qvm_error **err) {
  qvm_strbuf sb = QVM_STRBUF_INIT, dest = QVM_STRBUF_INIT;
  int r = check(opts, err);
  if (r < 0) return r;
  qvm_strbuf_puts(&sb, "ssh -i ");
  ssh_shell_quote(&sb, opts->identity);
  qvm_strbuf_puts(&sb, " -o IdentitiesOnly=yes");
  option_path(&sb, "UserKnownHostsFile", opts->known_hosts);
  qvm_strbuf_puts(&sb, " -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes"
                       " -o HostKeyAlias=");
  ssh_shell_quote(&sb, ssh_host_alias(opts));
  qvm_strbuf_printf(&sb, " -p %d ", opts->port > 0 ? opts->port : 22);
  qvm_strbuf_printf(&dest, "%s@%s", opts->user ? opts->user : "root", opts->host);
  ssh_shell_quote(&sb, dest.buf ? dest.buf : "");
  qvm_strbuf_free(&dest);
  *out = qvm_strbuf_steal(&sb);
  return *out ? 0 : qvm_error_set(err, QVM_ESYS, "out of memory");
}

int qvm_ssh_openssh_config(char **out, const char *host_alias, const qvm_ssh_options *opts,
                           qvm_error **err) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  int r = check(opts, err);
  if (r < 0) return r;
  if (!host_alias || !word_valid(host_alias))
    return qvm_error_set(err, QVM_EINVAL, "ssh_config stanza for '%s' cannot be quoted",
                         host_alias ? host_alias : "");
  qvm_strbuf_printf(&sb, "Host %s\n  HostName %s\n  Port %d\n  User %s\n  IdentityFile ",
                    host_alias, opts->host, opts->port > 0 ? opts->port : 22,
                    opts->user ? opts->user : "root");
  config_path(&sb, opts->identity);
  qvm_strbuf_puts(&sb, "\n  IdentitiesOnly yes\n  UserKnownHostsFile ");
  config_path(&sb, opts->known_hosts);
  qvm_strbuf_printf(&sb,
                    "\n  GlobalKnownHostsFile /dev/null\n"
                    "  StrictHostKeyChecking yes\n"
                    "  HostKeyAlias %s\n",
                    ssh_host_alias(opts));
  *out = qvm_strbuf_steal(&sb);
  return *out ? 0 : qvm_error_set(err, QVM_ESYS, "out of memory");
}
