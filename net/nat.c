/* SPDX-License-Identifier: MIT */
/* --nat: masquerade a bridge's subnet to the uplink with libnftables. One
 * table `ip qvm` holds a postrouting chain per bridge, rewritten whole in
 * one transaction each time, so ensuring it twice never duplicates a rule. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nftables/libnftables.h>

#include <qvm/net.h>

#include "util/cleanup.h"
#include "util/error.h"

static bool ifname_safe(const char *name) {
  size_t len = name ? strlen(name) : 0;
  if (len == 0 || len >= QVM_NET_IFNAME_MAX) return false;
  for (size_t i = 0; i < len; i++)
    if (!isalnum((unsigned char)name[i]) && !strchr("-_.", name[i])) return false;
  return true;
}

/* "10.77.0.1/24" -> "10.77.0.0/24" */
static int network_of(char out[32], const char *cidr, qvm_error **err) {
  char buf[32];
  unsigned prefix = 0;
  struct in_addr a;
  if (!cidr || strlen(cidr) >= sizeof buf) goto bad;
  strcpy(buf, cidr);
  char *slash = strchr(buf, '/');
  if (!slash) goto bad;
  *slash = '\0';
  char *end = NULL;
  prefix = (unsigned)strtoul(slash + 1, &end, 10);
  if (*end || slash[1] == '\0' || prefix < 1 || prefix > 32 || inet_pton(AF_INET, buf, &a) != 1)
    goto bad;
  uint32_t mask = prefix == 32 ? ~0u : ~((1u << (32 - prefix)) - 1);
  a.s_addr = htonl(ntohl(a.s_addr) & mask);
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  snprintf(out, 32, "%s/%u", buf, prefix);
  return 0;
bad:
  return qvm_error_set(err, QVM_EINVAL, "subnet '%.40s' is not ipv4/prefix", cidr ? cidr : "");
}

static int enable_forwarding(qvm_error **err) {
  _cleanup_close_ int fd = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, "1\n", 2) != 2)
    return qvm_error_set_errno(err, errno, "cannot enable ipv4 forwarding");
  return 0;
}

int qvm_net_nat_ensure(const char *bridge, const char *subnet, qvm_error **err) {
  char net[32];
  if (!ifname_safe(bridge))
    return qvm_error_set(err, QVM_EINVAL, "bridge name '%.20s' is invalid", bridge ? bridge : "");
  int r = network_of(net, subnet, err);
  if (r < 0) return r;
  if ((r = enable_forwarding(err)) < 0) return r;
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "add table ip qvm\n"
           "add chain ip qvm nat_%s { type nat hook postrouting priority srcnat; "
           "policy accept; }\n"
           "flush chain ip qvm nat_%s\n"
           "add rule ip qvm nat_%s ip saddr %s oifname != \"%s\" masquerade\n",
           bridge, bridge, bridge, net, bridge);
  struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!nft) return qvm_error_set_errno(err, ENOMEM, "cannot create an nftables context");
  nft_ctx_buffer_output(nft);
  nft_ctx_buffer_error(nft);
  if (nft_run_cmd_from_buffer(nft, cmd) != 0) {
    const char *msg = nft_ctx_get_error_buffer(nft);
    char first[200];
    snprintf(first, sizeof first, "%s", msg && msg[0] ? msg : "no message");
    first[strcspn(first, "\n")] = '\0';
    r = qvm_error_set(err, QVM_ESYS,
                      "cannot add the masquerade rule for bridge '%s' (%s): nat needs root or "
                      "CAP_NET_ADMIN and nf_tables in the kernel",
                      bridge, first);
  }
  nft_ctx_free(nft);
  return r;
}

int qvm_net_nat_remove(const char *bridge, qvm_error **err) {
  if (!ifname_safe(bridge))
    return qvm_error_set(err, QVM_EINVAL, "bridge name '%.20s' is invalid", bridge ? bridge : "");
  char cmd[256];
  snprintf(cmd, sizeof cmd, "delete chain ip qvm nat_%s\n", bridge);
  struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!nft) return qvm_error_set_errno(err, ENOMEM, "cannot create an nftables context");
  nft_ctx_buffer_output(nft);
  nft_ctx_buffer_error(nft);
  int r = nft_run_cmd_from_buffer(nft, cmd) == 0
              ? 0
              : qvm_error_set(err, QVM_ENOTFOUND, "bridge '%s' has no masquerade rule", bridge);
  nft_ctx_free(nft);
  return r;
}

int qvm_net_nat_list(char **out, qvm_error **err) {
  struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!nft) return qvm_error_set_errno(err, ENOMEM, "cannot create an nftables context");
  nft_ctx_buffer_output(nft);
  nft_ctx_buffer_error(nft);
  int r = 0;
  if (nft_run_cmd_from_buffer(nft, "list table ip qvm") != 0)
    r = qvm_error_set(err, QVM_ENOTFOUND, "there is no nftables table 'ip qvm'");
  else if (!(*out = strdup(nft_ctx_get_output_buffer(nft))))
    r = qvm_error_set_errno(err, ENOMEM, "out of memory");
  nft_ctx_free(nft);
  return r;
}
