/* SPDX-License-Identifier: MIT */
/* The OpenSSH command line and ssh_config stanza equivalent to a session. */
#include <string.h>

#include "ssh/ssh_internal.h"

static int check(const qvm_ssh_options *opts, qvm_error **err) {
  if (!opts->host || !opts->known_hosts || !opts->identity)
    return qvm_error_set(err, QVM_EINVAL, "openssh equivalent needs host, key and known_hosts");
  return 0;
}

int qvm_ssh_openssh_command(char **out, const qvm_ssh_options *opts, qvm_error **err) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  int r = check(opts, err);
  if (r < 0) return r;
  qvm_strbuf_puts(&sb, "ssh -i ");
  ssh_shell_quote(&sb, opts->identity);
  qvm_strbuf_puts(&sb, " -o IdentitiesOnly=yes -o UserKnownHostsFile=");
  ssh_shell_quote(&sb, opts->known_hosts);
  qvm_strbuf_puts(&sb, " -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes"
                       " -o HostKeyAlias=");
  ssh_shell_quote(&sb, ssh_host_alias(opts));
  qvm_strbuf_printf(&sb, " -p %d ", opts->port > 0 ? opts->port : 22);
  qvm_strbuf_printf(&sb, "%s@%s", opts->user ? opts->user : "root", opts->host);
  *out = qvm_strbuf_steal(&sb);
  return *out ? 0 : qvm_error_set(err, QVM_ESYS, "out of memory");
}

/* ssh_config values are quoted with double quotes; refuse what cannot be. */
static bool config_safe(const char *s) { return !strpbrk(s, "\"\n\r"); }

int qvm_ssh_openssh_config(char **out, const char *host_alias, const qvm_ssh_options *opts,
                           qvm_error **err) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  int r = check(opts, err);
  if (r < 0) return r;
  if (!host_alias || !*host_alias || strpbrk(host_alias, " \t\"\n\r") ||
      !config_safe(opts->identity) || !config_safe(opts->known_hosts) || !config_safe(opts->host))
    return qvm_error_set(err, QVM_EINVAL, "ssh_config stanza for '%s' cannot be quoted",
                         host_alias ? host_alias : "");
  qvm_strbuf_printf(&sb,
                    "Host %s\n"
                    "  HostName %s\n"
                    "  Port %d\n"
                    "  User %s\n"
                    "  IdentityFile \"%s\"\n"
                    "  IdentitiesOnly yes\n"
                    "  UserKnownHostsFile \"%s\"\n"
                    "  GlobalKnownHostsFile /dev/null\n"
                    "  StrictHostKeyChecking yes\n"
                    "  HostKeyAlias %s\n",
                    host_alias, opts->host, opts->port > 0 ? opts->port : 22,
                    opts->user ? opts->user : "root", opts->identity, opts->known_hosts,
                    ssh_host_alias(opts));
  *out = qvm_strbuf_steal(&sb);
  return *out ? 0 : qvm_error_set(err, QVM_ESYS, "out of memory");
}
